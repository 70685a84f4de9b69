"""train-pix2pix step time: unet_256 + 70x70 PatchGAN, batch 1, --refs 0 and --refs 5, beside junyanz's pix2pix.

One step = G forward, D step (fake + real, 0.5 x BCE), G step (GAN + 100 x L1), Adam(2e-4, 0.5, 0.999).

    python benchmarks/pix2pix.py [--sizes 256,512] [--repeats 3] [--reference PATH-TO-pytorch-CycleGAN-and-pix2pix]

With --reference, junyanz's `models.networks` (define_G unet_256 / define_D basic / GANLoss vanilla,
from a local clone) builds the same networks; stylekit's --refs 0 weights are copied into them
(layers matched in execution order, shapes checked) and the eval-mode outputs compared; all
contenders are timed interleaved, best of N, on the same images. junyanz runs under glibc's default
allocator, as its users run it, and again under the stylekit CLI's allocator policy ("same allocator":
the gain of the code alone). stylekit runs in fp32 and, where
bf16 is native, also as `--amp` (bf16 autocast). One JSON line per measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import sys

import torch
import torch.nn.functional as F
from common import (
    Bench,
    add_args,
    as_reference,
    best_of,
    count_flops,
    emit,
    native_bf16,
    op_profile,
    reference_path,
    start,
)
from torch import nn

from stylekit.device import autocast
from stylekit.nets.patchgan import PatchGAN
from stylekit.nets.unet import GeneratorConfig, RefUNet
from stylekit.train.pix2pix import adam, count_params, gan_loss, memory_format

LEAVES = (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.InstanceNorm2d, nn.Linear)


def stylekit_step(g: nn.Module, d: nn.Module, a: torch.Tensor, b: torch.Tensor, refs: torch.Tensor | None, amp: bool):
    """The step of stylekit/train/pix2pix.py with its pieces: its layout (channels-last under `--amp`),
    fused Adam, `--amp` autocast (bf16 where the CPU runs it natively)."""
    device = torch.device("cpu")
    layout = memory_format(amp)
    g.to(memory_format=layout)
    d.to(memory_format=layout)
    a, b = (t.contiguous(memory_format=layout) for t in (a, b))
    opt_g = adam([p for p in g.parameters() if p.requires_grad], 2e-4, 0.5, device)
    opt_d = adam(list(d.parameters()), 2e-4, 0.5, device)

    def step() -> None:
        with autocast(device, amp):
            fake = g(a, refs)
        d.requires_grad_(True)
        opt_d.zero_grad(set_to_none=True)
        with autocast(device, amp):
            pred_fake, pred_real = d(a, fake.detach()), d(a, b)
        (0.5 * (gan_loss(pred_fake, False, "vanilla") + gan_loss(pred_real, True, "vanilla"))).backward()
        opt_d.step()
        d.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        with autocast(device, amp):
            pred = d(a, fake)
        (gan_loss(pred, True, "vanilla") + 100 * F.l1_loss(fake.float(), b)).backward()
        opt_g.step()

    return step


def junyanz_nets(size: int) -> tuple[nn.Module, nn.Module, nn.Module]:
    with contextlib.redirect_stdout(sys.stderr):  # its "initialize network with normal" lines: stdout is JSON only
        return _junyanz_nets(size)


def _junyanz_nets(size: int) -> tuple[nn.Module, nn.Module, nn.Module]:
    from models import networks  # from the --reference clone

    netg = {256: "unet_256", 128: "unet_128"}.get(size)
    if netg is None:  # junyanz names unet_128/unet_256; other sizes use UnetGenerator with log2(size) downs
        G = networks.UnetGenerator(3, 3, size.bit_length() - 1, 64, norm_layer=networks.get_norm_layer("batch"),
                                   use_dropout=True)
        networks.init_weights(G, "normal", 0.02)
    else:
        G = networks.define_G(3, 3, 64, netg, norm="batch", use_dropout=True, init_type="normal", init_gain=0.02)
    D = networks.define_D(6, 64, "basic", norm="batch", init_type="normal", init_gain=0.02)
    if "gan_mode" in inspect.signature(networks.GANLoss).parameters:
        loss = networks.GANLoss("vanilla")
    else:  # older clones: GANLoss(use_lsgan=False) is BCE on a sigmoid output
        raise SystemExit("--reference: this junyanz clone predates GANLoss(gan_mode); use a current clone")
    return G, D, loss


def junyanz_step(G: nn.Module, D: nn.Module, gan: nn.Module, a: torch.Tensor, b: torch.Tensor):
    """junyanz Pix2PixModel.optimize_parameters, written against its networks (pool_size 0, lambda_L1 100)."""
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def step() -> None:
        fake = G(a)
        for p in D.parameters():
            p.requires_grad = True
        opt_d.zero_grad()
        loss_d = (gan(D(torch.cat((a, fake), 1).detach()), False) + gan(D(torch.cat((a, b), 1)), True)) * 0.5
        loss_d.backward()
        opt_d.step()
        for p in D.parameters():
            p.requires_grad = False
        opt_g.zero_grad()
        (gan(D(torch.cat((a, fake), 1)), True) + F.l1_loss(fake, b) * 100.0).backward()
        opt_g.step()

    return step


def _leaves_in_call_order(module: nn.Module, *inputs: torch.Tensor) -> list[nn.Module]:
    order: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(m)) for m in module.modules() if isinstance(m, LEAVES)]
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        for h in hooks:
            h.remove()
    return order


def copy_weights(src: nn.Module, src_in: tuple, dst: nn.Module, dst_in: tuple, swap_skip_halves: bool = False) -> None:
    """Copy parameters and buffers layer by layer, layers paired in the order the forward calls them.

    `swap_skip_halves`: stylekit's up-convolutions read cat([up, skip]), junyanz's cat([skip, up]);
    every transposed convolution after the innermost one gets its two input-channel halves swapped.
    """
    pairs = list(zip(_leaves_in_call_order(src, *src_in), _leaves_in_call_order(dst, *dst_in), strict=True))
    seen_up = False
    with torch.no_grad():
        for s, t in pairs:
            s_state, t_state = dict(s.state_dict()), t.state_dict()
            if s_state.keys() != t_state.keys() or any(s_state[k].shape != t_state[k].shape for k in s_state):
                raise SystemExit(f"--reference: layer mismatch {s} vs {t}")
            if swap_skip_halves and isinstance(s, nn.ConvTranspose2d):
                if seen_up:
                    s_state["weight"] = torch.cat(s_state["weight"].chunk(2, dim=0)[::-1], dim=0)
                seen_up = True
            t.load_state_dict(s_state)


def run_size(bench: Bench, size: int, args: argparse.Namespace) -> None:
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(1, 3, size, size, generator=gen) * 2 - 1, torch.rand(1, 3, size, size, generator=gen) * 2 - 1
    ref_size = min(size, 128)
    refs = torch.rand(1, 5, 3, ref_size, ref_size, generator=gen)
    wanted = ["fp32", "bf16"] if native_bf16() else ["fp32"]
    fns, flops, info = {}, {}, {}
    for k in (0, 5):
        for prec in wanted:  # own networks per contender: each keeps its precision's layout
            torch.manual_seed(0)
            g = RefUNet(GeneratorConfig(size=size, refs=k, ref_size=ref_size)).train()
            d = PatchGAN().train()
            info[f"refs{k}"] = {"params_g": count_params(g), "params_d": count_params(d)}
            name = f"stylekit refs {k} {prec}"
            fns[name] = stylekit_step(g, d, a, b, refs if k else None, amp=prec == "bf16")
            flops[name] = count_flops(fns[name])
        if k == 0 and args.reference:
            G, D, gan = junyanz_nets(size)
            info["junyanz"] = {"params_g": count_params(G), "params_d": count_params(D)}
            g.eval(), G.eval(), d.eval(), D.eval()
            copy_weights(g, (a, None), G, (a,), swap_skip_halves=True)
            copy_weights(d, (a, b), D, (torch.cat((a, b), 1),))
            with torch.no_grad():
                info["junyanz"]["max_abs_diff_G_eval"] = float((g(a, None) - G(a)).abs().max())
                info["junyanz"]["max_abs_diff_D_eval"] = float((d(a, b) - D(torch.cat((a, b), 1))).abs().max())
            g.train(), G.train(), d.train(), D.train()
            fns["junyanz, same allocator"] = junyanz_step(G, D, gan, a, b)
            fns["junyanz"] = as_reference(fns["junyanz, same allocator"])
            flops["junyanz"] = flops["junyanz, same allocator"] = count_flops(fns["junyanz"])
    best = best_of(fns, args.repeats)
    if args.profile:
        for name in ("stylekit refs 0 fp32", "stylekit refs 0 bf16", "junyanz"):
            if name in fns:
                emit({"what": "train-pix2pix step: where the time goes", "size": size, "contender": name, **op_profile(fns[name])})
    config = {"size": size, "batch": 1, "ngf": 64, "ndf": 64, "netG": f"unet ({size.bit_length() - 1} downs)",
              "netD": "basic (70x70)", "threads": torch.get_num_threads(), "repeats": args.repeats,
              "stat": "min, interleaved"}
    for name, seconds in best.items():
        extra: dict[str, object] = {}
        if name.startswith("stylekit"):
            _, _, k, prec = name.split()
            extra = {**info[f"refs{k}"], "refs": int(k), "precision": prec,
                     "time_vs_refs0": round(seconds / best[f"stylekit refs 0 {prec}"], 3)}
            if "junyanz" in best:
                extra["speedup_vs_junyanz"] = round(best["junyanz"] / seconds, 3)
                extra["speedup_vs_junyanz_same_allocator"] = round(best["junyanz, same allocator"] / seconds, 3)
        elif name == "junyanz, same allocator":
            extra = {"precision": "fp32", "allocator": "as the stylekit CLI (stylekit/host_memory.py)"}
        else:
            extra = {**info["junyanz"], "precision": "fp32"}
        bench.result(f"train-pix2pix step ({name.split(',')[0].split()[0]})", config, seconds, flops=flops[name], **extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_args(parser, repeats=3, reference="junyanz/pytorch-CycleGAN-and-pix2pix", env="JUNYANZ")
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--profile", action="store_true", help="also print where each step's time goes (top ops, torch.profiler)")
    args = parser.parse_args()
    if args.device != "cpu":
        raise SystemExit("benchmarks/pix2pix.py measures the CPU step (--device cpu)")
    if args.reference:
        reference_path(args.reference)
    bench = start("pix2pix", args)
    for size in (int(s) for s in args.sizes.split(",")):
        run_size(bench, size, args)


if __name__ == "__main__":
    main()
