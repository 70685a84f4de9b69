"""`make gpu-check`: prove stylekit on this machine's GPU(s) in one command (issue 12).

Runs every command tiny on CUDA with --amp, the trainers under torchrun with 2 processes when there
are >= 2 GPUs, a kill -9 + rerun resume, and throughput measurements (StyleGAN G img/s at 256 and
1024 px, pix2pix 512 px --refs 5 train it/s, transfer 512 px s/step, FID feature throughput). Prints
a pass/fail table, writes OUT/gpu-check.json with per-command timings, exits 1 on any failure and 3
(one line) without CUDA. Data and networks are generated here (toy styles, random weights): it needs
no download; the FID throughput uses the inception-fid weights when present, else is skipped.

    bash scripts/gpu_check.sh [OUT]            # OUT default: gpu-check-out
    python scripts/gpu_check.py OUT --allow-cpu --quick   # the driver itself on a CPU (slow, for tests)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXIT_NO_CUDA = 3
JOB_TIMEOUT = 240


class Check:
    """Runs the checks, keeps one row per check: name, ok, seconds, detail, figures."""

    def __init__(self, out: Path, device: str, amp: list[str]) -> None:
        self.out, self.device, self.amp = out, device, amp
        self.rows: list[dict[str, Any]] = []
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                    "STYLEKIT_HOME": os.environ.get("STYLEKIT_HOME", str(out / "home"))}

    def record(self, name: str, fn: Callable[[], dict[str, Any] | None]) -> None:
        t0 = time.monotonic()
        try:
            figures = fn() or {}
            row = {"name": name, "ok": True, "detail": figures.pop("detail", "")}
        except Exception as exc:  # a failed check is a row in the table, and the exit code
            figures, row = {}, {"name": name, "ok": False, "detail": f"{type(exc).__name__}: {exc}"[-400:]}
        row.update(seconds=round(time.monotonic() - t0, 2), figures=figures)
        self.rows.append(row)
        mark = "PASS" if row["ok"] else "FAIL"
        print(f"[{mark}] {name} ({row['seconds']} s) {row['detail'][:160]}", file=sys.stderr, flush=True)

    def stylekit(self, *args: str, launcher: list[str] | None = None) -> subprocess.CompletedProcess:
        cmd = [*(launcher or [sys.executable, "-m", "stylekit"]), *args]
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=JOB_TIMEOUT)
        if proc.returncode != 0:
            raise RuntimeError(f"exit {proc.returncode}: {' '.join(args[:2])}: {proc.stderr.strip()[-300:]}")
        return proc


def make_assets(out: Path, size: int) -> dict[str, Path]:
    sys.path.insert(0, str(ROOT / "tests"))  # the tiny CLIP builder the test suite uses
    import torch
    from clip_tiny import make_tiny_clip_dir

    from stylekit.data.toy import generate_toy_styles
    from stylekit.nets.vgg import VGGFeatures

    toy = out / "toy"
    if not toy.exists():
        generate_toy_styles(toy, size=size, per_style=16, styles=3, seed=0)
    vgg = out / "vgg19-random.pth"
    if not vgg.exists():
        body = VGGFeatures("vgg19", ["pool5"], weights=None, seed=0).body.state_dict()
        torch.save({f"features.{k}": v for k, v in body.items()}, vgg)
    clip = out / "tiny-clip"
    if not clip.exists():
        make_tiny_clip_dir(clip)
    return {"toy": toy, "vgg": vgg, "clip": clip}


def commands(c: Check, a: dict[str, Path], size: int, kimg: str) -> None:
    """Every command, tiny, with --amp on the device."""
    o, dev, amp = c.out, ["--device", c.device], c.amp
    runs = o / "runs"
    c.record("train-classifier", lambda: (c.stylekit("train-classifier", str(a["toy"]), "--out", str(runs / "cls"), "--epochs", "1",
                                                      "--batch", "8", "--size", str(size), "--fresh", *dev, *amp), None)[1])
    c.record("train-pix2pix", lambda: (c.stylekit("train-pix2pix", str(a["toy"]), "--out", str(runs / "p2p"), "--refs", "2",
                                                   "--epochs", "1", "--decay-epochs", "0", "--size", str(size), "--batch", "4", "--ngf", "16", "--ndf", "16",
                                                   "--fresh", *dev, *amp), None)[1])
    sg = ["finetune-stylegan", str(a["toy"] / "pop"), "--network", "none", "--batch", "8", "--tick-kimg", "0.016", "--snap", "1000",
          *dev, *amp]
    c.record("finetune-stylegan (from scratch, fp16 blocks)", lambda: (c.stylekit(*sg, "--kimg", kimg, "--out", str(runs / "sg"), "--fresh"), None)[1])
    c.record("resume after kill -9", lambda: resume_after_kill(c, [*sg, "--kimg", str(float(kimg) * 4), "--out", str(runs / "sg-kill")]))
    net = str(runs / "sg" / "network-final.safetensors")
    content, style = sorted((a["toy"] / "content").glob("*.png"))[0], sorted((a["toy"] / "pop").glob("*.png"))[0]
    c.record("generate", lambda: (c.stylekit("generate", "--network", net, "--seeds", "0-7", "--out", str(o / "gen"), *dev), None)[1])
    c.record("invert", lambda: (c.stylekit("invert", str(content), "--network", net, "--out", str(o / "inv"), "--loss", "mse",
                                           "--steps", "20", *dev), None)[1])
    c.record("styleclip", lambda: (c.stylekit("styleclip", "--network", net, "--seed", "1", "--prompt", "a red square",
                                              "--clip-model", str(a["clip"]), "--steps", "10", "--out", str(o / "sc"), *dev), None)[1])
    c.record("transfer", lambda: (c.stylekit("transfer", str(content), str(style), "--out", str(o / "tr.png"), "--weights",
                                             str(a["vgg"]), "--size", str(size), "--steps", "20", *dev), None)[1])
    c.record("score", lambda: (c.stylekit("score", str(a["toy"] / "pop"), str(a["toy"] / "content"), "--metrics", "gram,style,cmmd",
                                          "--vgg-weights", str(a["vgg"]), "--clip-model", str(a["clip"]), "--style-model",
                                          str(runs / "cls"), *dev), None)[1])


def resume_after_kill(c: Check, args: list[str]) -> dict[str, Any]:
    out = Path(args[args.index("--out") + 1])
    proc = subprocess.Popen([sys.executable, "-m", "stylekit", *args, "--fresh"], env=c.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + JOB_TIMEOUT
    while not (out / "checkpoints" / "latest").exists():
        if proc.poll() is not None:
            raise RuntimeError(f"finished (exit {proc.returncode}) before a checkpoint could be killed")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("no checkpoint appeared")
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rerun = c.stylekit(*args)
    if "resuming from" not in rerun.stderr:
        raise RuntimeError("the rerun did not resume")
    return {"detail": "killed after the first checkpoint; the rerun resumed and finished"}


def torchrun_jobs(c: Check, a: dict[str, Path], size: int, kimg: str) -> None:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "stylekit"]
    runs = c.out / "runs-2proc"
    for name, args in {
        "torchrun 2x train-classifier (SyncBatchNorm)": ["train-classifier", str(a["toy"]), "--out", str(runs / "cls"), "--epochs", "1",
                                                     "--backbone", "resnet18", "--no-pretrained", "--batch", "8",
                                         "--size", str(size), "--fresh"],
        "torchrun 2x train-pix2pix": ["train-pix2pix", str(a["toy"]), "--out", str(runs / "p2p"), "--refs", "2", "--epochs", "1",
                                      "--decay-epochs", "0", "--size", str(size), "--batch", "4", "--ngf", "16", "--ndf", "16", "--fresh"],
        "torchrun 2x finetune-stylegan": ["finetune-stylegan", str(a["toy"] / "pop"), "--network", "none", "--batch", "8", "--kimg", kimg,
                                          "--tick-kimg", "0.016", "--snap", "1000", "--out", str(runs / "sg"), "--fresh"],
    }.items():
        c.record(name, lambda args=args: (c.stylekit(*args, "--device", "cuda", *c.amp, launcher=launcher), None)[1])


# ----------------------------------------------------------------------------------- throughput
def _timed(step: Callable[[], Any], device: Any, warmup: int, repeats: int) -> float:
    import torch

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t0) / repeats


def bench_generator(device: Any, resolution: int, batch: int, quick: bool) -> dict[str, Any]:
    import torch

    from stylekit.nets.stylegan2.networks import Generator
    from stylekit.train.stylegan import scratch_precision

    torch.manual_seed(0)
    base = 16384 if resolution <= 256 else 32768
    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3, mapping_kwargs=dict(num_layers=8),
                  synthesis_kwargs=dict(channel_base=base, channel_max=512, **scratch_precision(True))).to(device).eval()
    z = torch.randn(batch, 512, device=device)

    @torch.no_grad()
    def step() -> None:
        G(z, None, noise_mode="const", force_fp32=device.type != "cuda")

    sec = _timed(step, device, 1 if quick else 3, 1 if quick else 10)
    return {"resolution": resolution, "batch": batch, "img_per_s": round(batch / sec, 2)}


def bench_pix2pix(device: Any, size: int, refs: int, quick: bool, amp: bool) -> dict[str, Any]:
    import torch

    from stylekit.device import autocast, grad_scaler
    from stylekit.nets.patchgan import PatchGAN
    from stylekit.nets.unet import GeneratorConfig, RefUNet
    from stylekit.train.pix2pix import gan_loss

    torch.manual_seed(0)
    g = RefUNet(GeneratorConfig(size=size, refs=refs, ref_size=min(size, 128))).to(device)
    d = PatchGAN().to(device)
    opt_g, opt_d = torch.optim.Adam(g.parameters(), 2e-4), torch.optim.Adam(d.parameters(), 2e-4)
    scaler = grad_scaler(device, amp)
    a = torch.rand(1, 3, size, size, device=device) * 2 - 1
    b = torch.rand(1, 3, size, size, device=device) * 2 - 1
    r = torch.rand(1, refs, 3, min(size, 128), min(size, 128), device=device)

    def step() -> None:  # the loop of stylekit/train/pix2pix.py
        with autocast(device, amp):
            fake = g(a, r)
            loss_d = 0.5 * (gan_loss(d(a, fake.detach()), False, "vanilla") + gan_loss(d(a, b), True, "vanilla"))
        opt_d.zero_grad(set_to_none=True)
        scaler.scale(loss_d).backward()
        scaler.step(opt_d)
        with autocast(device, amp):
            loss_g = gan_loss(d(a, fake), True, "vanilla") + 100 * (fake.float() - b).abs().mean()
        opt_g.zero_grad(set_to_none=True)
        scaler.scale(loss_g).backward()
        scaler.step(opt_g)
        scaler.update()

    sec = _timed(step, device, 1 if quick else 3, 1 if quick else 10)
    return {"size": size, "refs": refs, "batch": 1, "it_per_s": round(1 / sec, 3)}


def bench_transfer(c: Check, a: dict[str, Path], size: int, steps: int) -> dict[str, Any]:
    content, style = sorted((a["toy"] / "content").glob("*.png"))[0], sorted((a["toy"] / "pop").glob("*.png"))[0]
    t0 = time.monotonic()
    c.stylekit("transfer", str(content), str(style), "--out", str(c.out / f"tr-{size}.png"), "--weights", str(a["vgg"]),
               "--size", str(size), "--steps", str(steps), "--device", c.device)
    t1 = time.monotonic()
    c.stylekit("transfer", str(content), str(style), "--out", str(c.out / f"tr-{size}-1.png"), "--weights", str(a["vgg"]),
               "--size", str(size), "--steps", "1", "--device", c.device)
    per_step = max((t1 - t0) - (time.monotonic() - t1), 1e-9) / max(steps - 1, 1)  # start-up cancels out
    return {"size": size, "s_per_step": round(per_step, 4)}


def bench_fid(device: Any, quick: bool) -> dict[str, Any]:
    import torch

    from stylekit.errors import MissingResource
    from stylekit.metrics.fid import InceptionExtractor

    os.environ["STYLEKIT_OFFLINE"] = "1"  # measure with weights already here; never start a download
    try:
        ext = InceptionExtractor("clean", device)
        model = ext.model
    except MissingResource:
        return {"detail": "skipped: inception-fid weights missing (stylekit download inception-fid)"}
    batch = torch.rand(32, 3, 299, 299, device=device) * 255
    sec = _timed(lambda: model(batch), device, 1, 2 if quick else 10)
    return {"batch": 32, "img_per_s": round(32 / sec, 1)}


def throughput(c: Check, a: dict[str, Path], quick: bool) -> None:
    import torch

    device = torch.device(c.device)
    amp = bool(c.amp)
    gen = [(256, 8)] if quick else [(256, 32), (1024, 8)]
    for res, batch in gen:
        c.record(f"bench StyleGAN G {res}px", lambda res=res, batch=batch: bench_generator(device, res, batch, quick))
    size = 128 if quick else 512
    c.record(f"bench pix2pix {size}px refs 5", lambda: bench_pix2pix(device, size, 5, quick, amp))
    c.record(f"bench transfer {size}px", lambda: bench_transfer(c, a, size, 3 if quick else 30))
    c.record("bench FID features", lambda: bench_fid(device, quick))


def print_table(rows: list[dict[str, Any]]) -> None:
    width = max(len(r["name"]) for r in rows)
    print(f"{'check':<{width}}  result  seconds  figures")
    for r in rows:
        figs = ", ".join(f"{k}={v}" for k, v in r["figures"].items()) or r["detail"][:80]
        print(f"{r['name']:<{width}}  {'PASS' if r['ok'] else 'FAIL':<6}  {r['seconds']:>7}  {figs}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", default="gpu-check-out", type=Path)
    ap.add_argument("--allow-cpu", action="store_true", help="run the driver on the CPU (a test of this script)")
    ap.add_argument("--quick", action="store_true", help="smaller throughput measurements")
    args = ap.parse_args(argv)
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.allow_cpu:
        print("gpu-check: no CUDA GPU on this machine (torch.cuda.is_available() is False); nothing to check", file=sys.stderr)
        return EXIT_NO_CUDA
    args.out.mkdir(parents=True, exist_ok=True)
    gpus = torch.cuda.device_count() if cuda else 0
    c = Check(args.out.resolve(), "cuda" if cuda else "cpu", ["--amp"])
    t0 = time.monotonic()
    size = 64
    assets = make_assets(c.out, size)
    commands(c, assets, size, kimg="0.032")
    if gpus >= 2:
        torchrun_jobs(c, assets, size, kimg="0.032")
    throughput(c, assets, args.quick or not cuda)
    print_table(c.rows)
    doc = {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "gpus": gpus, "torch": torch.__version__,
           "seconds": round(time.monotonic() - t0, 1), "ok": all(r["ok"] for r in c.rows), "checks": c.rows}
    report = c.out / "gpu-check.json"
    report.write_text(json.dumps(doc, indent=1))
    print(f"report: {report}", file=sys.stderr)
    return 0 if doc["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
