"""StyleGAN2 generator inference (images/s) at 64 px (channel_base 8192, batch 8) and 256 px (16384, batch 4).

    python benchmarks/stylegan.py [--repeats 3] [--threads 2] [--reference PATH-TO-stylegan2-ada-pytorch]

With --reference, NVlabs' `training.networks.Generator` (a local clone of NVlabs/stylegan2-ada-pytorch;
on CPU its ops run their reference implementations, no plugin is compiled) is built with the same
arguments, loads stylekit's state dict, and both are timed interleaved, best of N, on the same z;
the line reports the ratio and the max |difference| of the images. NVlabs runs under glibc's default
allocator, as its users run it, and again under the allocator policy of the stylekit CLI ("same
allocator": the gain of the code alone). `--variants` also times
stylekit's alternative code paths (grouped vs activation-scaled modulation, polyphase vs transposed
up-sampling). One JSON line per measurement; asserts nothing.
"""

from __future__ import annotations

import argparse

import torch
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

from stylekit.edit.generate import synthesize
from stylekit.nets.stylegan2 import ops
from stylekit.nets.stylegan2.networks import Generator

CONFIGS = [
    {"resolution": 64, "channel_base": 8192, "batch": 8},
    {"resolution": 256, "channel_base": 16384, "batch": 4},
]
MODCONV = {None: "auto", True: "grouped", False: "scaled"}


def generator_kwargs(cfg: dict) -> dict:
    return dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=cfg["resolution"], img_channels=3,
                mapping_kwargs=dict(num_layers=8),
                synthesis_kwargs=dict(channel_base=cfg["channel_base"], channel_max=512))


def nvlabs_generator(kwargs: dict, state: dict[str, torch.Tensor], device: torch.device) -> torch.nn.Module:
    from training.networks import Generator as NVGenerator  # from the --reference clone

    G = NVGenerator(**kwargs).eval().requires_grad_(False)
    G.load_state_dict(state)
    return G.to(device)


def run_config(bench: Bench, cfg: dict, args: argparse.Namespace) -> None:
    device = bench.device
    torch.manual_seed(0)
    kwargs = generator_kwargs(cfg)
    G = Generator(**kwargs).eval().requires_grad_(False).to(device)
    z = torch.randn(cfg["batch"], 512, generator=torch.Generator().manual_seed(1)).to(device)
    config = {**cfg, "mapping_layers": 8, "threads": torch.get_num_threads(), "device": str(device),
              "truncation_psi": 0.7, "noise_mode": "const", "repeats": args.repeats, "stat": "min, interleaved"}

    def ours(fused: bool | None = None):
        if fused is None:  # what generate/mix run: mapping, then synthesize (channels-last on CPU)
            return lambda: synthesize(G, G.mapping(z, None, truncation_psi=0.7), "const", batch=cfg["batch"])
        return lambda: G(z, None, truncation_psi=0.7, noise_mode="const", fused_modconv=fused)

    with torch.inference_mode():
        flops = count_flops(ours())
    fns = {"stylekit": ours()}
    if native_bf16(device):
        def amp_call():  # what generate/mix --amp run: fp32 mapping, synthesis under bf16 autocast
            return synthesize(G, G.mapping(z, None, truncation_psi=0.7), "const", batch=cfg["batch"], amp=True)
        fns["stylekit --amp"] = amp_call
    images: dict[str, torch.Tensor] = {}
    if args.reference:
        G_ref = nvlabs_generator(kwargs, G.state_dict(), device)
        fns["nvlabs"] = as_reference(lambda: G_ref(z, None, truncation_psi=0.7, noise_mode="const"))
        fns["nvlabs, same allocator"] = lambda: G_ref(z, None, truncation_psi=0.7, noise_mode="const")
    if args.variants:
        for fused in (False, True):
            for up in ("transpose", "polyphase"):
                fns[f"stylekit {MODCONV[fused]}/{up}"] = _with_up(ours(fused), up)
    with torch.inference_mode():
        for name in ("stylekit", "stylekit --amp", "nvlabs"):
            if name in fns:
                images[name] = fns[name]().float()
        best = best_of(fns, args.repeats, device)
    extra: dict[str, object] = {}
    if "nvlabs" in best:
        extra = {"nvlabs_seconds": round(best["nvlabs"], 4),
                 "nvlabs_throughput": round(cfg["batch"] / best["nvlabs"], 3),
                 "speedup_vs_nvlabs": round(best["nvlabs"] / best["stylekit"], 3),
                 "nvlabs_seconds_same_allocator": round(best["nvlabs, same allocator"], 4),
                 "speedup_vs_nvlabs_same_allocator": round(best["nvlabs, same allocator"] / best["stylekit"], 3),
                 "max_abs_diff_vs_nvlabs": float((images["stylekit"] - images["nvlabs"]).abs().max()),
                 "max_pixel_steps_vs_nvlabs": _pixel_steps(images["stylekit"], images["nvlabs"])}
    bench.result("stylegan2 G forward", {**config, "modconv": "auto", "up": ops.UP_IMPL}, best["stylekit"],
                 items=cfg["batch"], flops=flops, **extra)
    if "stylekit --amp" in best:
        amp_extra: dict[str, object] = {"max_abs_diff_vs_fp32": float((images["stylekit --amp"] - images["stylekit"]).abs().max()),
                                        "max_pixel_steps_vs_fp32": _pixel_steps(images["stylekit --amp"], images["stylekit"])}
        if "nvlabs" in best:
            amp_extra.update(speedup_vs_nvlabs_fp32=round(best["nvlabs"] / best["stylekit --amp"], 3),
                             speedup_vs_nvlabs_fp32_same_allocator=round(best["nvlabs, same allocator"] / best["stylekit --amp"], 3),
                             max_pixel_steps_vs_nvlabs=_pixel_steps(images["stylekit --amp"], images["nvlabs"]))
        bench.result("stylegan2 G forward", {**config, "precision": "bf16 autocast (--amp)"}, best["stylekit --amp"],
                     items=cfg["batch"], flops=flops, **amp_extra)
    if args.profile:
        with torch.inference_mode():
            for name in ("stylekit", "stylekit --amp"):
                if name in fns:
                    emit({"what": "stylegan2 G forward: where the time goes", "config": config, "contender": name,
                          **op_profile(fns[name])})
    for name, seconds in best.items():
        if name.startswith("stylekit ") and name != "stylekit --amp":
            bench.result("stylegan2 G forward", {**config, "variant": name.split(" ", 1)[1]}, seconds,
                         items=cfg["batch"], flops=flops)


def _pixel_steps(a: torch.Tensor, b: torch.Tensor) -> int:
    """Largest difference of the saved 8-bit images (NVlabs' x * 127.5 + 128, clamped, truncated)."""
    def u8(x: torch.Tensor) -> torch.Tensor:
        return (x * 127.5 + 128).clamp(0, 255).to(torch.uint8).int()
    return int((u8(a) - u8(b)).abs().max())


def _with_up(fn, up: str):
    def call():
        saved, ops.UP_IMPL = ops.UP_IMPL, up
        try:
            return fn()
        finally:
            ops.UP_IMPL = saved
    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_args(parser, repeats=3, reference="NVlabs/stylegan2-ada-pytorch", env="NVLABS")
    parser.add_argument("--variants", action="store_true", help="also time the alternative modconv/up-sampling paths")
    parser.add_argument("--profile", action="store_true", help="also print where stylekit's time goes (top ops, torch.profiler)")
    parser.add_argument("--sizes", default="64,256", help="which of the configurations to run (64, 256)")
    args = parser.parse_args()
    if args.reference:
        reference_path(args.reference)
    bench = start("stylegan", args)
    sizes = {int(s) for s in args.sizes.split(",")}
    for cfg in CONFIGS:
        if cfg["resolution"] in sizes:
            run_config(bench, cfg, args)


if __name__ == "__main__":
    main()
