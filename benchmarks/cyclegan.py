"""train-cyclegan step time: two resnet_9blocks generators + two 70x70 PatchGANs, batch 1, beside junyanz's CycleGAN.

One step = stylekit.train.cyclegan.CycleStep, the trainer's own step: G_AB/G_BA forward (fake, reconstruction,
identity), G step (LSGAN + 10 x cycle + 0.5 x 10 x identity L1), D step on real and pooled (50) generated
images, Adam(2e-4, 0.5, 0.999).

    python benchmarks/cyclegan.py [--sizes 256] [--repeats 5] [--device cpu|cuda] [--reference PATH-TO-pytorch-CycleGAN-and-pix2pix]

With --reference, junyanz's `models.networks` (define_G resnet_9blocks / define_D basic, instance norm,
GANLoss lsgan) and `util.image_pool.ImagePool` from a local clone build the same networks; stylekit's
weights are copied into them by name (his `model.N` keys, stylekit.nets.cyclegan.junyanz_key_map), the
eval-mode outputs compared, and his CycleGANModel.optimize_parameters sequence is timed interleaved with
stylekit's, best of N, on the same images. stylekit runs in fp32 and, where bf16 is native, as `--amp`.
One JSON line per measurement, with GFLOP/s against this machine's measured matmul peaks.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

import torch
import torch.nn.functional as F
from common import Bench, add_args, as_reference, best_of, count_flops, native_bf16, reference_path, start
from torch import nn

from stylekit.device import grad_scaler
from stylekit.nets.cyclegan import (
    ImagePool,
    PatchDiscriminator,
    count_params,
    cycle_generator,
    to_junyanz_state,
)
from stylekit.train.cyclegan import CycleStep, Discriminators, Generators, Losses
from stylekit.train.pix2pix import adam, memory_format


def stylekit_step(size: int, device: torch.device, amp: bool, a: torch.Tensor, b: torch.Tensor):
    torch.manual_seed(0)
    layout = memory_format(amp)
    g_ab, g_ba = cycle_generator(size), cycle_generator(size)
    d_a, d_b = PatchDiscriminator(), PatchDiscriminator()
    gens = Generators(g_ab, g_ba).to(device, memory_format=layout).train()
    discs = Discriminators(d_a, d_b).to(device, memory_format=layout).train()
    pools = ImagePool(50, size).to(device), ImagePool(50, size).to(device)
    step = CycleStep(gens, discs, d_a, d_b, *pools, adam(list(gens.parameters()), 2e-4, 0.5, device),
                     adam(list(discs.parameters()), 2e-4, 0.5, device), grad_scaler(device, amp), Losses(), device, amp, layout)
    a, b = (t.contiguous(memory_format=layout) for t in (a, b))
    return (lambda: step(a, b)), (g_ab, g_ba, d_a, d_b)


def junyanz_step(nets: tuple[nn.Module, ...], device: torch.device, a: torch.Tensor, b: torch.Tensor):
    """junyanz CycleGANModel.optimize_parameters, written against his networks (lambda 10/10, identity 0.5, pools 50)."""
    from models import networks  # from the --reference clone
    from util.image_pool import ImagePool as TheirPool

    with contextlib.redirect_stdout(sys.stderr):  # his "initialize network" lines: stdout is JSON only
        G_A = networks.define_G(3, 3, 64, "resnet_9blocks", norm="instance", use_dropout=False)
        G_B = networks.define_G(3, 3, 64, "resnet_9blocks", norm="instance", use_dropout=False)
        D_A = networks.define_D(3, 64, "basic", norm="instance")
        D_B = networks.define_D(3, 64, "basic", norm="instance")
    g_ab, g_ba, d_a, d_b = nets
    for theirs, ours in ((G_A, g_ab), (G_B, g_ba)):
        theirs.load_state_dict(to_junyanz_state(ours, 9, False), strict=True)
    for theirs, ours in ((D_A, d_b), (D_B, d_a)):  # his D_A judges domain B (our d_b)
        theirs.load_state_dict({k.replace("patch.net.", "model."): v for k, v in ours.state_dict().items()}, strict=True)
    nets_j = [m.to(device).train() for m in (G_A, G_B, D_A, D_B)]
    with torch.no_grad():
        g_ab.eval(), G_A.eval()
        diff = float((g_ab(a) - G_A(a)).abs().max())
        g_ab.train(), G_A.train()
    G_A, G_B, D_A, D_B = nets_j
    gan = networks.GANLoss("lsgan").to(device)
    pool_a, pool_b = TheirPool(50), TheirPool(50)
    opt_g = torch.optim.Adam([*G_A.parameters(), *G_B.parameters()], lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam([*D_A.parameters(), *D_B.parameters()], lr=2e-4, betas=(0.5, 0.999))

    def d_loss(D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        loss = (gan(D(real), True) + gan(D(fake.detach()), False)) * 0.5
        loss.backward()
        return loss

    def step() -> None:
        fake_b = G_A(a)
        rec_a = G_B(fake_b)
        fake_a = G_B(b)
        rec_b = G_A(fake_a)
        for p in [*D_A.parameters(), *D_B.parameters()]:
            p.requires_grad = False
        opt_g.zero_grad()
        loss_idt = F.l1_loss(G_A(b), b) * 10 * 0.5 + F.l1_loss(G_B(a), a) * 10 * 0.5
        loss = gan(D_A(fake_b), True) + gan(D_B(fake_a), True) + F.l1_loss(rec_a, a) * 10 + F.l1_loss(rec_b, b) * 10
        (loss + loss_idt).backward()
        opt_g.step()
        for p in [*D_A.parameters(), *D_B.parameters()]:
            p.requires_grad = True
        opt_d.zero_grad()
        d_loss(D_A, b, pool_b.query(fake_b))
        d_loss(D_B, a, pool_a.query(fake_a))
        opt_d.step()

    return step, {"params_g": count_params(G_A), "params_d": count_params(D_A), "max_abs_diff_G_eval": diff}


def run_size(bench: Bench, size: int, args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = (torch.rand(1, 3, size, size, generator=gen, device="cpu") * 2 - 1).to(device)
    b = (torch.rand(1, 3, size, size, generator=gen, device="cpu") * 2 - 1).to(device)
    wanted = ["fp32", "bf16"] if native_bf16(device) else ["fp32"]
    fns, flops, info = {}, {}, {}
    for prec in wanted:
        fn, nets = stylekit_step(size, device, prec == "bf16", a, b)
        fns[f"stylekit {prec}"] = fn
        flops[f"stylekit {prec}"] = count_flops(fn)
        info[f"stylekit {prec}"] = {"params_g": count_params(nets[0]), "params_d": count_params(nets[2]), "precision": prec}
        if prec == "fp32" and args.reference:
            fn_j, info["junyanz"] = junyanz_step(nets, device, a, b)
            fns["junyanz"] = as_reference(fn_j) if device.type == "cpu" else fn_j
            flops["junyanz"] = count_flops(fn_j)
    best = best_of(fns, args.repeats, device=device)
    config = {"size": size, "batch": 1, "ngf": 64, "ndf": 64, "netG": "resnet_9blocks", "netD": "basic (70x70)",
              "norm": "instance", "device": str(device), "threads": torch.get_num_threads() if device.type == "cpu" else None,
              "repeats": args.repeats, "stat": "min, interleaved"}
    for name, seconds in best.items():
        extra = dict(info[name])
        if name.startswith("stylekit") and "junyanz" in best:
            extra["speedup_vs_junyanz"] = round(best["junyanz"] / seconds, 3)
        bench.result(f"train-cyclegan step ({name.split()[0]})", config, seconds, flops=flops[name], **extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_args(parser, repeats=5, reference="junyanz/pytorch-CycleGAN-and-pix2pix", env="JUNYANZ")
    parser.add_argument("--sizes", default="256")
    args = parser.parse_args()
    if args.reference:
        reference_path(args.reference)
    bench = start("cyclegan", args)
    for size in (int(s) for s in args.sizes.split(",")):
        run_size(bench, size, args)


if __name__ == "__main__":
    main()
