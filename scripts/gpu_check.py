"""`make gpu-check`: the acceptance gate for a CUDA machine (docs/gpu.md, "make gpu-check").

Every command tiny on CUDA, with and without --amp; FreezeD, --metrics during training, the pix2pix
reference losses, a timm backbone; training runs with `torch.cuda.set_sync_debug_mode("warn")`, their
device-to-host syncs counted and reported per run; snapshot metrics of the trained network computed
on CUDA and on the CPU and compared within stated tolerances; 2-process (torchrun) and 2-"node"
(two torchrun agents on this box) runs where there are 2 GPUs. Prints one PASS / FAIL / SKIP row per
check (a skip says why), writes OUT/gpu-check.json, exits 1 on any FAIL, 0 otherwise, and 3 with one
line where there is no CUDA. Every job runs in its own session; on timeout its whole process group
(torchrun agents and their workers) is killed. `--bench` adds the throughput figures.

    bash scripts/gpu_check.sh [OUT] [--bench]        # OUT default: gpu-check-out
    python scripts/gpu_check.py OUT --allow-cpu       # the driver itself on a CPU (slow, for tests)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXIT_NO_CUDA = 3
JOB_TIMEOUT = 300
# Metrics of one network on CUDA vs the CPU, both in full fp32 (metrics run with TF32 off): the
# largest reduction is a VGG19 conv (512 x 3 x 3 = 4608 terms), K * eps32 = 5.5e-4 relative per
# feature; the Gram and CMMD statistics sum such features again, so 4 * K * eps32 ~ 2.2e-3.
METRIC_RTOL = 4 * 4608 * 2.0**-23
# The sync-debug wrapper: counts synchronising CUDA calls (warn mode) and where stylekit made them.
SYNC_WRAPPER = """
import atexit, collections, json, os, sys, warnings, torch
sites = collections.Counter()
def show(message, category, filename, lineno, file=None, line=None):
    if "synchronizing" in str(message):
        import traceback
        frames = [f for f in traceback.extract_stack() if "/stylekit/" in f.filename]
        sites[f"{os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else "torch"] += 1
warnings.showwarning = show
warnings.simplefilter("always")
torch.cuda.set_sync_debug_mode("warn")
atexit.register(lambda: json.dump({"syncs": sum(sites.values()), "sites": sites.most_common(5)},
                                  open(os.environ["GPU_CHECK_SYNCS"] + f".{os.environ.get('RANK', '0')}", "w")))
from stylekit.cli.app import main
sys.argv[0] = "stylekit"
main()
"""


class Skip(Exception):
    """A check that cannot run here; the message says why."""


@dataclass
class Row:
    name: str
    status: str  # PASS | FAIL | SKIP
    seconds: float
    detail: str = ""
    figures: dict[str, Any] = field(default_factory=dict)


def run_job(cmd: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Run `cmd` in a new session; on timeout kill its whole process group and raise TimeoutError."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise TimeoutError(f"timed out after {timeout:g} s; process group {proc.pid} killed") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the session `proc` leads (torchrun's workers included) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


def table(rows: list[Row]) -> str:
    width = max([len(r.name) for r in rows] + [5])
    lines = [f"{'check':<{width}}  result  seconds  detail"]
    for r in rows:
        figs = ", ".join(f"{k}={v}" for k, v in r.figures.items())
        lines.append(f"{r.name:<{width}}  {r.status:<6}  {r.seconds:>7}  {'; '.join(x for x in (r.detail, figs) if x)[:160]}")
    counts = {s: sum(r.status == s for r in rows) for s in ("PASS", "FAIL", "SKIP")}
    lines.append(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
    return "\n".join(lines)


def exit_code(rows: list[Row]) -> int:
    return 1 if any(r.status == "FAIL" for r in rows) else 0


class Check:
    """Runs the checks and keeps one Row per check."""

    def __init__(self, out: Path, device: str, gpus: int, timeout: float = JOB_TIMEOUT) -> None:
        self.out, self.device, self.gpus, self.timeout = out, device, gpus, timeout
        self.rows: list[Row] = []
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                    "STYLEKIT_HOME": os.environ.get("STYLEKIT_HOME", str(out / "home")), "STYLEKIT_OFFLINE": "1"}

    def record(self, name: str, fn: Callable[[], dict[str, Any] | None]) -> None:
        t0 = time.monotonic()
        try:
            figures = fn() or {}
            row = Row(name, "PASS", 0.0, str(figures.pop("detail", "")), figures)
        except Skip as why:
            row = Row(name, "SKIP", 0.0, str(why))
        except Exception as exc:  # a failed check is a row in the table, and the exit code
            row = Row(name, "FAIL", 0.0, f"{type(exc).__name__}: {exc}"[-400:])
        row.seconds = round(time.monotonic() - t0, 2)
        self.rows.append(row)
        print(f"[{row.status}] {name} ({row.seconds} s) {row.detail[:160]}", file=sys.stderr, flush=True)

    def stylekit(self, *args: str, launcher: list[str] | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        proc = run_job([*(launcher or [sys.executable, "-m", "stylekit"]), *args], env or self.env, self.timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"exit {proc.returncode}: {' '.join(args[:2])}: {proc.stderr.strip()[-300:]}")
        return proc

    def train(self, *args: str) -> dict[str, Any]:
        """A training command with sync debugging on: exit 0, and the syncs it made (rank 0)."""
        if self.device != "cuda":
            self.stylekit(*args)
            return {}
        marker = self.out / "syncs" / f"{len(self.rows)}"
        marker.parent.mkdir(parents=True, exist_ok=True)
        self.stylekit(*args, launcher=[sys.executable, "-c", SYNC_WRAPPER], env={**self.env, "GPU_CHECK_SYNCS": str(marker)})
        doc = json.loads(Path(f"{marker}.0").read_text())
        return {"syncs": doc["syncs"], "sync_sites": " ".join(f"{s}x{n}" for s, n in doc["sites"][:3])}


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
    """Every command tiny on the device, with and without --amp."""
    dev = ["--device", c.device]
    content, style = sorted((a["toy"] / "content").glob("*.png"))[0], sorted((a["toy"] / "pop").glob("*.png"))[0]
    for amp in ([], ["--amp"]):
        tag = " --amp" if amp else ""
        o = c.out / ("amp" if amp else "fp32")
        runs = o / "runs"
        cls = ["train-classifier", str(a["toy"]), "--epochs", "1", "--batch", "8", "--size", str(size), "--fresh", *dev, *amp]
        c.record(f"train-classifier{tag}", lambda cls=cls, runs=runs: c.train(*cls, "--out", str(runs / "cls")))
        c.record(f"train-classifier timm:efficientnet_b0{tag}", lambda cls=cls, runs=runs: c.train(
            *cls, "--backbone", "timm:efficientnet_b0", "--no-pretrained", "--out", str(runs / "cls-timm")))
        p2p = ["train-pix2pix", str(a["toy"]), "--refs", "2", "--epochs", "1", "--decay-epochs", "0", "--size", str(size),
               "--batch", "4", "--ngf", "16", "--ndf", "16", "--fresh", *dev, *amp]
        c.record(f"train-pix2pix{tag}", lambda p2p=p2p, runs=runs: c.train(*p2p, "--out", str(runs / "p2p")))
        c.record(f"train-pix2pix reference losses{tag}", lambda p2p=p2p, runs=runs: c.train(
            *p2p, "--ref-cls-weight", "0.1", "--ref-metric-weight", "0.1", "--out", str(runs / "p2p-ref")))
        sg = ["finetune-stylegan", str(a["toy"] / "pop"), "--batch", "8", "--tick-kimg", "0.016", "--snap", "1", *dev, *amp]
        c.record(f"finetune-stylegan from scratch{tag}", lambda sg=sg, runs=runs: c.train(
            *sg, "--network", "none", "--kimg", kimg, "--out", str(runs / "sg")))
        net = str(runs / "sg" / "network-final.safetensors")
        c.record(f"finetune-stylegan --freezed 2 --metrics{tag}", lambda sg=sg, runs=runs, net=net: finetune_metrics(c, sg, net, runs, kimg))
        c.record(f"generate{tag}", lambda net=net, o=o, amp=amp: _ok(c.stylekit("generate", "--network", net, "--seeds", "0-7",
                                                                               "--out", str(o / "gen"), *dev, *amp)))
        c.record(f"invert{tag}", lambda net=net, o=o, amp=amp: _ok(c.stylekit("invert", str(content), "--network", net, "--out", str(o / "inv"),
                                                                             "--loss", "mse", "--steps", "20", *dev, *amp)))
        c.record(f"styleclip{tag}", lambda net=net, o=o, amp=amp: _ok(c.stylekit(
            "styleclip", "--network", net, "--seed", "1", "--prompt", "a red square", "--clip-model", str(a["clip"]),
            "--steps", "10", "--out", str(o / "sc"), *dev, *amp)))
        c.record(f"transfer{tag}", lambda o=o, amp=amp: _ok(c.stylekit("transfer", str(content), str(style), "--out", str(o / "tr.png"),
                                                                      "--weights", str(a["vgg"]), "--size", str(size), "--steps", "20", *dev, *amp)))
        if not amp:  # score has no --amp: metrics run in full fp32
            c.record("score", lambda runs=runs: _ok(c.stylekit(
                "score", str(a["toy"] / "pop"), str(a["toy"] / "content"), "--metrics", "gram,style,cmmd", "--vgg-weights", str(a["vgg"]),
                "--clip-model", str(a["clip"]), "--style-model", str(runs / "cls"), *dev)))
    c.record("snapshot metrics CUDA vs CPU", lambda: metrics_vs_cpu(c, a, str(c.out / "fp32" / "runs" / "sg" / "network-final.safetensors")))


def _ok(_: Any) -> None:
    return None


def finetune_metrics(c: Check, sg: list[str], net: str, runs: Path, kimg: str) -> dict[str, Any]:
    """FreezeD fine-tuning from the scratch network with a snapshot metric (needs LPIPS's vgg16 weights)."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("STYLEKIT_HOME", c.env["STYLEKIT_HOME"])
    from stylekit.metrics.snapshot import missing_weights, parse_snapshot_metrics

    why = missing_weights(parse_snapshot_metrics(["ppl2_wend"]))
    if why is not None:
        raise Skip(f"snapshot metric ppl2_wend: {why}")
    figures = c.train(*sg, "--network", net, "--freezed", "2", "--metrics", "ppl2_wend", "--metric-images", "8",
                      "--kimg", kimg, "--out", str(runs / "sg-freezed"))
    lines = (runs / "sg-freezed" / "metric-ppl2_wend.jsonl").read_text().splitlines()
    if not lines:
        raise RuntimeError("no snapshot metric written")
    return {**figures, "ppl2_wend": json.loads(lines[-1])["results"]["ppl2_wend"]}


def metrics_vs_cpu(c: Check, a: dict[str, Path], net: str) -> dict[str, Any]:
    """The trained network's metrics on CUDA and on the CPU agree within METRIC_RTOL."""
    if c.device != "cuda":
        raise Skip("CPU run: nothing to compare with")
    docs = {}
    for dev in ("cuda", "cpu"):
        proc = c.stylekit("score", str(a["toy"] / "pop"), "--network", net, "--num-gen", "32", "--metrics", "gram,cmmd",
                          "--vgg-weights", str(a["vgg"]), "--clip-model", str(a["clip"]), "--device", dev, "--json")
        docs[dev] = json.loads(proc.stdout)["metrics"]
    worst = 0.0
    for name in docs["cpu"]:
        x, y = float(docs["cuda"][name]["value"]), float(docs["cpu"][name]["value"])
        rel = abs(x - y) / max(abs(y), 1e-12)
        worst = max(worst, rel)
        if rel > METRIC_RTOL:
            raise RuntimeError(f"{name}: CUDA {x:.6g} vs CPU {y:.6g}, relative {rel:.2e} > {METRIC_RTOL:.1e}")
    return {"worst_rel": f"{worst:.1e}", "rtol": f"{METRIC_RTOL:.1e}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def multi_gpu(c: Check, a: dict[str, Path], size: int, kimg: str) -> None:
    """2 processes under one torchrun; 2 "nodes" (two torchrun agents, one GPU each) on this box."""
    jobs = {
        "train-classifier resnet18": ["train-classifier", str(a["toy"]), "--epochs", "1", "--backbone", "resnet18", "--no-pretrained",
                                      "--batch", "8", "--size", str(size), "--fresh"],
        "train-pix2pix --norm batch, reference losses": ["train-pix2pix", str(a["toy"]), "--refs", "2", "--epochs", "1", "--decay-epochs", "0",
                                                         "--size", str(size), "--batch", "4", "--ngf", "16", "--ndf", "16", "--ref-metric-weight",
                                                         "0.1", "--ref-cls-weight", "0", "--fresh"],
        "finetune-stylegan": ["finetune-stylegan", str(a["toy"] / "pop"), "--network", "none", "--batch", "8", "--kimg", kimg,
                              "--tick-kimg", "0.016", "--snap", "1000", "--fresh"],
    }
    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    for name, args in jobs.items():
        out = c.out / "runs-2proc" / name.split()[0]

        def two_proc(args: list[str] = args, out: Path = out) -> None:
            if c.gpus < 2:
                raise Skip(f"needs 2 GPUs, this machine has {c.gpus}")
            c.stylekit(*args, "--out", str(out), "--device", "cuda", "--amp",
                       launcher=[*torchrun, "--standalone", "--nproc_per_node", "2", "-m", "stylekit"])

        c.record(f"torchrun 2 processes: {name}", two_proc)
    c.record("torchrun 2 nodes on this box: train-pix2pix", lambda: two_nodes(c, jobs["train-pix2pix --norm batch, reference losses"]))


def two_nodes(c: Check, args: list[str]) -> None:
    """Two torchrun agents (--nnodes 2, one GPU each) meeting at a c10d rendezvous on localhost."""
    if c.gpus < 2:
        raise Skip(f"needs 2 GPUs, this machine has {c.gpus}")
    port, out = free_port(), c.out / "runs-2node" / "p2p"
    agents = []
    for node in (0, 1):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1", "--node_rank", str(node),
               "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", "gpu-check", "-m", "stylekit",
               *args, "--out", str(out), "--device", "cuda"]
        env = {**c.env, "CUDA_VISIBLE_DEVICES": str(node), "GLOO_SOCKET_IFNAME": "lo", "NCCL_SOCKET_IFNAME": "lo"}
        agents.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True))
    deadline = time.monotonic() + c.timeout
    try:
        codes = [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in agents]
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"timed out after {c.timeout:g} s; both agents' process groups killed") from None
    finally:
        for p in agents:
            if p.poll() is None:
                kill_group(p)
    if codes != [0, 0]:
        raise RuntimeError(f"agents exited {codes}: {agents[0].stderr.read()[-300:] if agents[0].stderr else ''}")


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
    gen = [(256, 8)] if quick else [(256, 32), (1024, 8)]
    for res, batch in gen:
        c.record(f"bench StyleGAN G {res}px", lambda res=res, batch=batch: bench_generator(device, res, batch, quick))
    size = 128 if quick else 512
    c.record(f"bench pix2pix {size}px refs 5", lambda: bench_pix2pix(device, size, 5, quick, True))
    c.record(f"bench transfer {size}px", lambda: bench_transfer(c, a, size, 3 if quick else 30))
    c.record("bench FID features", lambda: bench_fid(device, quick))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", default="gpu-check-out", type=Path)
    ap.add_argument("--allow-cpu", action="store_true", help="run the driver on the CPU (a test of this script)")
    ap.add_argument("--bench", action="store_true", help="also measure throughput (docs/performance.md)")
    ap.add_argument("--timeout", type=float, default=JOB_TIMEOUT, help="seconds per job before its process group is killed")
    args = ap.parse_args(argv)
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.allow_cpu:
        print("gpu-check: no CUDA GPU on this machine (torch.cuda.is_available() is False); nothing to check", file=sys.stderr)
        return EXIT_NO_CUDA
    args.out.mkdir(parents=True, exist_ok=True)
    gpus = torch.cuda.device_count() if cuda else 0
    c = Check(args.out.resolve(), "cuda" if cuda else "cpu", gpus, args.timeout)
    t0 = time.monotonic()
    size = 64
    assets = make_assets(c.out, size)
    commands(c, assets, size, kimg="0.032")
    multi_gpu(c, assets, size, kimg="0.032")
    if args.bench:
        throughput(c, assets, not cuda)
    print(table(c.rows))
    doc = {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "gpus": gpus, "torch": torch.__version__,
           "seconds": round(time.monotonic() - t0, 1), "ok": exit_code(c.rows) == 0,
           "checks": [r.__dict__ for r in c.rows]}
    report = c.out / "gpu-check.json"
    report.write_text(json.dumps(doc, indent=1))
    print(f"report: {report}", file=sys.stderr)
    return exit_code(c.rows)


if __name__ == "__main__":
    sys.exit(main())
