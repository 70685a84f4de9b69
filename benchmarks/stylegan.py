"""StyleGAN2 and StyleGAN3 generator inference (images/s).

StyleGAN2: 64 px (channel_base 8192, batch 8) and 256 px (16384, batch 4). StyleGAN3: the T and R configs at
256 px with the published 14 layers but fewer channels (T: channel_base 8192, channel_max 256; R: 16384, 512, as
NVlabs doubles them for R), batch 2, mapping 2 layers.

    python benchmarks/stylegan.py [--repeats 3] [--threads 2] [--arch stylegan2,stylegan3] [--sizes 64,256]
        [--reference PATH-TO-stylegan2-ada-pytorch] [--reference-sg3 PATH-TO-stylegan3]

With --reference, NVlabs' `training.networks.Generator` (a local clone of NVlabs/stylegan2-ada-pytorch;
on CPU its ops run their reference implementations, no plugin is compiled) is built with the same
arguments, loads stylekit's state dict, and both are timed interleaved, best of N, on the same z;
the line reports the ratio and the max |difference| of the images. --reference-sg3 does the same with
`training.networks_stylegan3.Generator` of a clone of NVlabs/stylegan3. NVlabs runs under glibc's default
allocator, as its users run it, and again under the allocator policy of the stylekit CLI ("same
allocator": the gain of the code alone). `--variants` also times
stylekit's alternative code paths (grouped vs activation-scaled modulation, polyphase vs transposed
up-sampling; StyleGAN2 only). One JSON line per measurement; asserts nothing. `--arch` defaults to
stylegan2 alone, so `make bench` times what it did before.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import types
from collections.abc import Callable
from pathlib import Path

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
from stylekit.nets.stylegan3.networks import Generator as Generator3
from stylekit.nets.stylegan3.tiny import randomize_

CONFIGS = [
    {"resolution": 64, "channel_base": 8192, "batch": 8},
    {"resolution": 256, "channel_base": 16384, "batch": 4},
]
SG3_CONFIGS = [
    {"arch": "stylegan3-t", "resolution": 256, "channel_base": 8192, "channel_max": 256, "batch": 2},
    {"arch": "stylegan3-r", "resolution": 256, "channel_base": 16384, "channel_max": 512, "batch": 2,
     "conv_kernel": 1, "use_radial_filters": True},
]
MODCONV = {None: "auto", True: "grouped", False: "scaled"}
NVLABS_PACKAGES = ("training", "torch_utils", "dnnlib")  # the same names in both NVlabs clones


def generator_kwargs(cfg: dict) -> dict:
    return dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=cfg["resolution"], img_channels=3,
                mapping_kwargs=dict(num_layers=8),
                synthesis_kwargs=dict(channel_base=cfg["channel_base"], channel_max=512))


def sg3_generator_kwargs(cfg: dict) -> dict:
    """NVlabs stylegan3's Generator arguments (synthesis arguments flattened); T: the defaults, R: 1x1
    convolutions and radial filters."""
    layer = {k: cfg[k] for k in ("conv_kernel", "use_radial_filters") if k in cfg}
    return dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=cfg["resolution"], img_channels=3,
                mapping_kwargs=dict(num_layers=2), channel_base=cfg["channel_base"],
                channel_max=cfg["channel_max"], num_layers=14, **layer)


def import_reference(root: Path, module: str) -> types.ModuleType:
    """`module` from the clone at `root`, first on sys.path. Both NVlabs clones name their packages
    training/torch_utils/dnnlib: copies already imported from the other clone are dropped first."""
    loaded = sys.modules.get("training")
    if loaded is not None and not str(getattr(loaded, "__file__", "")).startswith(str(root) + os.sep):
        for name in [n for n in sys.modules if n.split(".")[0] in NVLABS_PACKAGES]:
            del sys.modules[name]
    if str(root) in sys.path:
        sys.path.remove(str(root))
    sys.path.insert(0, str(root))
    return importlib.import_module(module)


def nvlabs_generator(root: Path, kwargs: dict, state: dict[str, torch.Tensor], device: torch.device) -> torch.nn.Module:
    G = import_reference(root, "training.networks").Generator(**kwargs).eval().requires_grad_(False)
    G.load_state_dict(state)
    return G.to(device)


def nvlabs3_generator(root: Path, kwargs: dict, state: dict[str, torch.Tensor], device: torch.device) -> torch.nn.Module:
    if "pkg_resources" not in sys.modules and importlib.util.find_spec("pkg_resources") is None:
        # NVlabs' torch_utils/ops/conv2d_gradfix.py does `from pkg_resources import parse_version` at import;
        # pkg_resources ships with (older) setuptools, which this venv does not have. It only compares torch
        # versions, which packaging.version.parse does the same way: a stand-in module with just that.
        from packaging.version import parse

        stand_in = types.ModuleType("pkg_resources")
        stand_in.parse_version = parse  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = stand_in
    G = import_reference(root, "training.networks_stylegan3").Generator(**kwargs).eval().requires_grad_(False)
    G.load_state_dict(state)
    return G.to(device)


def side_by_side(bench: Bench, what: str, config: dict, fns: dict[str, Callable[[], torch.Tensor]],
                 batch: int, flops: int, args: argparse.Namespace, main_config: dict | None = None) -> dict[str, float]:
    """Time `fns` interleaved, best of N ("stylekit", optional "stylekit --amp", "nvlabs", "nvlabs, same
    allocator" and any variants) and emit the stylekit and --amp lines with the ratios and image differences."""
    with torch.inference_mode():
        images = {name: fns[name]().float() for name in ("stylekit", "stylekit --amp", "nvlabs") if name in fns}
        best = best_of(fns, args.repeats, bench.device)
    extra: dict[str, object] = {}
    if "nvlabs" in best:
        extra = {"nvlabs_seconds": round(best["nvlabs"], 4),
                 "nvlabs_throughput": round(batch / best["nvlabs"], 3),
                 "speedup_vs_nvlabs": round(best["nvlabs"] / best["stylekit"], 3),
                 "nvlabs_seconds_same_allocator": round(best["nvlabs, same allocator"], 4),
                 "speedup_vs_nvlabs_same_allocator": round(best["nvlabs, same allocator"] / best["stylekit"], 3),
                 "max_abs_diff_vs_nvlabs": float((images["stylekit"] - images["nvlabs"]).abs().max()),
                 "max_pixel_steps_vs_nvlabs": _pixel_steps(images["stylekit"], images["nvlabs"])}
    bench.result(what, main_config or config, best["stylekit"], items=batch, flops=flops, **extra)
    if "stylekit --amp" in best:
        amp_extra: dict[str, object] = {"speedup_vs_fp32": round(best["stylekit"] / best["stylekit --amp"], 3),
                                        "max_abs_diff_vs_fp32": float((images["stylekit --amp"] - images["stylekit"]).abs().max()),
                                        "max_pixel_steps_vs_fp32": _pixel_steps(images["stylekit --amp"], images["stylekit"])}
        if "nvlabs" in best:
            amp_extra.update(speedup_vs_nvlabs_fp32=round(best["nvlabs"] / best["stylekit --amp"], 3),
                             speedup_vs_nvlabs_fp32_same_allocator=round(best["nvlabs, same allocator"] / best["stylekit --amp"], 3),
                             max_pixel_steps_vs_nvlabs=_pixel_steps(images["stylekit --amp"], images["nvlabs"]))
        bench.result(what, {**config, "precision": "bf16 autocast (--amp)"}, best["stylekit --amp"],
                     items=batch, flops=flops, **amp_extra)
    if args.profile:
        with torch.inference_mode():
            for name in ("stylekit", "stylekit --amp"):
                if name in fns:
                    emit({"what": f"{what}: where the time goes", "config": config, "contender": name, **op_profile(fns[name])})
    return best


def contenders(G: torch.nn.Module, z: torch.Tensor, batch: int, device: torch.device,
               reference: Callable[[], torch.nn.Module] | None) -> dict[str, Callable[[], torch.Tensor]]:
    """What generate/mix run (mapping, then synthesize), the same under --amp where bf16 is native (fp32
    mapping, synthesis under bf16 autocast), and NVlabs' G(z) as its users run it and under stylekit's allocator."""
    fns = {"stylekit": lambda: synthesize(G, G.mapping(z, None, truncation_psi=0.7), "const", batch=batch)}
    if native_bf16(device):
        fns["stylekit --amp"] = lambda: synthesize(G, G.mapping(z, None, truncation_psi=0.7), "const", batch=batch, amp=True)
    if reference is not None:
        G_ref = reference()
        fns["nvlabs"] = as_reference(lambda: G_ref(z, None, truncation_psi=0.7, noise_mode="const"))
        fns["nvlabs, same allocator"] = lambda: G_ref(z, None, truncation_psi=0.7, noise_mode="const")
    return fns


def run_config(bench: Bench, cfg: dict, args: argparse.Namespace) -> None:
    device = bench.device
    torch.manual_seed(0)
    kwargs = generator_kwargs(cfg)
    G = Generator(**kwargs).eval().requires_grad_(False).to(device)
    z = torch.randn(cfg["batch"], 512, generator=torch.Generator().manual_seed(1)).to(device)
    config = {**cfg, "mapping_layers": 8, "threads": torch.get_num_threads(), "device": str(device),
              "truncation_psi": 0.7, "noise_mode": "const", "repeats": args.repeats, "stat": "min, interleaved"}
    reference = (lambda: nvlabs_generator(args.reference, kwargs, G.state_dict(), device)) if args.reference else None
    fns = contenders(G, z, cfg["batch"], device, reference)
    with torch.inference_mode():
        flops = count_flops(fns["stylekit"])
    if args.variants:
        for fused in (False, True):
            for up in ("transpose", "polyphase"):
                fns[f"stylekit {MODCONV[fused]}/{up}"] = _with_up(
                    lambda fused=fused: G(z, None, truncation_psi=0.7, noise_mode="const", fused_modconv=fused), up)
    best = side_by_side(bench, "stylegan2 G forward", config, fns, cfg["batch"], flops, args,
                        main_config={**config, "modconv": "auto", "up": ops.UP_IMPL})
    for name, seconds in best.items():
        if name.startswith("stylekit ") and name != "stylekit --amp":
            bench.result("stylegan2 G forward", {**config, "variant": name.split(" ", 1)[1]}, seconds,
                         items=cfg["batch"], flops=flops)


def run_sg3_config(bench: Bench, cfg: dict, args: argparse.Namespace) -> None:
    """StyleGAN3 T or R: non-degenerate buffers (randomize_: non-zero biases, input affine and w_avg, each
    layer's magnitude_ema the mean square of its input over a batch), the same state in NVlabs' Generator."""
    device = bench.device
    torch.manual_seed(0)
    kwargs = sg3_generator_kwargs(cfg)
    G = randomize_(Generator3(**kwargs), seed=0).eval().requires_grad_(False).to(device)
    z = torch.randn(cfg["batch"], 512, generator=torch.Generator().manual_seed(1)).to(device)
    config = {**cfg, "generator_kwargs": kwargs, "threads": torch.get_num_threads(), "device": str(device),
              "truncation_psi": 0.7, "repeats": args.repeats, "stat": "min, interleaved"}
    reference = (lambda: nvlabs3_generator(args.reference_sg3, kwargs, G.state_dict(), device)) if args.reference_sg3 else None
    fns = contenders(G, z, cfg["batch"], device, reference)
    with torch.inference_mode():
        flops = count_flops(fns["stylekit"])
    side_by_side(bench, "stylegan3 G forward", config, fns, cfg["batch"], flops, args)


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
    default_sg3 = os.environ.get("NVLABS3")
    parser.add_argument("--reference-sg3", type=Path, default=Path(default_sg3) if default_sg3 else None, metavar="PATH",
                        help="local clone of NVlabs/stylegan3: time it beside stylekit's StyleGAN3 in the same run (default: $NVLABS3)")
    parser.add_argument("--arch", default="stylegan2", help="which generators to run (stylegan2, stylegan3, comma-separated)")
    parser.add_argument("--variants", action="store_true", help="also time the alternative modconv/up-sampling paths")
    parser.add_argument("--profile", action="store_true", help="also print where stylekit's time goes (top ops, torch.profiler)")
    parser.add_argument("--sizes", default="64,256", help="which of the configurations to run (StyleGAN2: 64, 256; StyleGAN3: 256)")
    args = parser.parse_args()
    archs = set(args.arch.split(","))
    if not archs <= {"stylegan2", "stylegan3"}:
        parser.error(f"--arch {args.arch}: choose from stylegan2, stylegan3")
    if args.reference:
        args.reference = reference_path(args.reference)
    if args.reference_sg3:
        args.reference_sg3 = reference_path(args.reference_sg3)
    bench = start("stylegan", args)
    sizes = {int(s) for s in args.sizes.split(",")}
    for arch, configs, run in (("stylegan2", CONFIGS, run_config), ("stylegan3", SG3_CONFIGS, run_sg3_config)):
        for cfg in configs:
            if arch in archs and cfg["resolution"] in sizes:
                run(bench, cfg, args)


if __name__ == "__main__":
    main()
