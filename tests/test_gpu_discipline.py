"""GPU discipline proven on the CPU (issue 12): host-sync budget per training step, mixed-precision paths
executed, collectives and noise on the run's device, device-less tensors caught (tests/device_guard.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from device_guard import guard_env, run_guarded
from host_reads import HostReads
from test_finetune import make_tiny_setup, tiny_cfg

from stylekit.data.toy import generate_toy_styles

pytestmark = pytest.mark.usefixtures("one_thread")
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("disc") / "toy"
    generate_toy_styles(out, size=32, per_style=8, styles=3, seed=0)
    return out


@pytest.fixture(scope="module")
def stylegan_setup(tmp_path_factory):
    return make_tiny_setup(tmp_path_factory.mktemp("disc-sg"))


def _budget(reads: HostReads, boundaries: int) -> tuple[int, int]:
    """(steps, steps whose interval read anything): only the `boundaries` intervals may read."""
    intervals = reads.intervals()
    busy = sum(1 for n in intervals if n)
    assert busy <= boundaries, (intervals, reads.sites.most_common(8))
    return len(intervals), busy


# ----------------------------------------------------------------------------- host-sync budget
def test_stylegan_reads_nothing_per_step(stylegan_setup, tmp_path):
    from stylekit.train.stylegan import finetune_stylegan

    data, src = stylegan_setup
    # 6 minibatches of 4 (Greg at 0 and 4, Dreg at 0, one ADA adjustment), 2 ticks of 3 minibatches
    cfg = tiny_cfg(data, src, tmp_path / "sg", kimg=0.024, tick_kimg=0.012, mbstd_group=2, ada_kimg=1.0, target=0.3)
    with HostReads() as reads:
        result = finetune_stylegan(cfg)
    assert result.ticks == 2
    steps, busy = _budget(reads, boundaries=2)  # G steps: 6 Gmain + 2 Greg; reads only at the 2 ticks
    assert steps == 7 and busy <= 2


@pytest.mark.parametrize("loss", ["ce+supcon", "ce", "supcon"])  # the default first
def test_classifier_reads_only_at_boundaries(toy, tmp_path, loss):
    from stylekit.configs.classifier import ClassifierConfig
    from stylekit.train.classifier import train_classifier

    cfg = ClassifierConfig(data=toy, out=tmp_path / "cls", epochs=2, batch=4, size=32, seed=0, workers=0,
                           device="cpu", loss=loss, check_images=False)
    with HostReads() as reads:
        result = train_classifier(cfg)
    assert result.steps == 8  # 18 training images, batch 4: 4 steps per epoch
    _budget(reads, boundaries=2)  # the two epoch ends (losses, evaluation, checkpoint)


def test_pix2pix_reads_only_at_log_lines(toy, tmp_path):
    from stylekit.train.pix2pix import Pix2PixConfig, train_pix2pix

    cfg = Pix2PixConfig(data=toy, out=tmp_path / "p2p", size=32, ngf=8, ndf=8, style_dim=16, refs=1, batch=2,
                        epochs=1, decay_epochs=0, device="cpu", seed=0, val_fraction=0.25, samples=1)
    with HostReads() as reads:
        result = train_pix2pix(cfg)
    steps = result.steps
    log_lines = sum(1 for line in (tmp_path / "p2p" / "metrics.jsonl").read_text().splitlines() if '"train"' in line)
    assert steps >= 8 and log_lines < steps
    _budget(reads, boundaries=log_lines)


# ----------------------------------------------------------------------------- mixed precision
def test_amp_dtype_is_native_only(monkeypatch):
    import stylekit.device as dev

    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: False)
    assert dev.amp_dtype("cpu") is None and not dev.needs_grad_scaler("cpu", True)
    with dev.autocast(torch.device("cpu"), True):
        assert not torch.is_autocast_enabled("cpu")  # no native low precision: fp32
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: True)
    assert dev.amp_dtype("cpu") == torch.bfloat16 and not dev.needs_grad_scaler("cpu", True)
    with dev.autocast(torch.device("cpu"), True):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    # A V100/T4 emulates bf16: only the native answer counts, so fp16 + GradScaler is chosen there.
    calls = []

    def emulating(including_emulation: bool = True) -> bool:
        calls.append(including_emulation)
        return including_emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", emulating)
    assert dev.amp_dtype(torch.device("cuda", 0)) == torch.float16 and calls == [False]
    assert dev.needs_grad_scaler(torch.device("cuda", 0), True)


def test_fp16_synthesis_blocks_run_with_conv_clamp():
    from stylekit.nets.stylegan2.networks import Discriminator, Generator
    from stylekit.train.stylegan import scratch_precision

    assert scratch_precision(False) == dict(num_fp16_res=0, conv_clamp=None)
    precision = scratch_precision(True)
    torch.manual_seed(0)
    G = Generator(z_dim=32, c_dim=0, w_dim=32, img_resolution=32, img_channels=3, mapping_kwargs=dict(num_layers=2),
                  synthesis_kwargs=dict(channel_base=512, channel_max=32, **precision))
    D = Discriminator(c_dim=0, img_resolution=32, img_channels=3, channel_base=512, channel_max=32, **precision)
    fp16_blocks = [b for b in G.synthesis.children() if getattr(b, "use_fp16", False)]
    assert fp16_blocks and all(b.conv1.conv_clamp == 256 for b in fp16_blocks)
    seen: list[torch.dtype] = []
    hooks = [b.conv1.register_forward_hook(lambda m, i, o: seen.append(o.dtype)) for b in fp16_blocks]
    z = torch.randn(2, 32)
    img = G(z, None, force_fp32=False)  # the --amp path on CUDA, here executed on the CPU
    for h in hooks:
        h.remove()
    assert torch.float16 in seen and img.dtype == torch.float32 and torch.isfinite(img).all()
    logits = D(img, None, force_fp32=False)
    logits.sum().backward()
    grads = [p.grad for p in G.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    ref = G(z, None, force_fp32=True)
    assert (img - ref).abs().max() < 0.05  # the same network, fp16 rounding only


def test_grad_scaler_path_runs_in_the_classifier(toy, tmp_path, monkeypatch):
    """The fp16 + GradScaler branch (a GPU without native bf16) executed on the CPU: CPU autocast runs
    fp16 and torch.amp.GradScaler('cpu') scales, unscales and checkpoints exactly as on CUDA."""
    import stylekit.device as dev
    import stylekit.train.classifier as clf
    from stylekit.io.checkpoint import CheckpointManager

    monkeypatch.setattr(dev, "amp_dtype", lambda device: torch.float16)
    monkeypatch.setattr(clf, "amp_dtype", lambda device: torch.float16)
    seen: list[torch.dtype] = []
    real_loss = clf.style_loss

    def spy(cfg, logits, *args, **kwargs):
        seen.append(logits.dtype)
        return real_loss(cfg, logits, *args, **kwargs)

    monkeypatch.setattr(clf, "style_loss", spy)
    cfg = clf.ClassifierConfig(data=toy, out=tmp_path / "amp", epochs=1, batch=4, size=32, seed=0, workers=0,
                               device="cpu", loss="ce", amp=True, check_images=False)
    result = clf.train_classifier(cfg)
    assert result.steps == 4 and torch.float16 in seen
    latest = CheckpointManager(tmp_path / "amp" / "checkpoints").latest()
    state = torch.load(latest.path / "state.pt", weights_only=True)
    assert state["scaler"]["scale"] > 0 and state["scaler"]["_growth_tracker"] >= 0  # the scaler ran and was saved
    m = json.loads((tmp_path / "amp" / "metrics.jsonl").read_text().splitlines()[-1])
    assert m["train_loss"] == m["train_loss"] and m["train_loss"] > 0  # finite


def test_pix2pix_gan_loss_is_fp32_under_autocast():
    from stylekit.train.pix2pix import gan_loss

    pred = torch.randn(2, 1, 4, 4).to(torch.bfloat16).requires_grad_(True)
    for mode in ("vanilla", "lsgan"):
        loss = gan_loss(pred, True, mode)
        assert loss.dtype == torch.float32
        (g,) = torch.autograd.grad(loss, pred)
        ref = gan_loss(pred.detach().float().requires_grad_(True), True, mode)
        assert torch.allclose(loss, ref)


# ----------------------------------------------------------------------------- device discipline
def _finetune_job(sg: tuple[Path, Path], out: Path) -> list[str]:
    data, src = sg
    return ["finetune-stylegan", str(data), "--network", str(src), "--out", str(out / "sg"), "--device", "cpu", "--batch", "4",
            "--kimg", "0.016", "--tick-kimg", "0.008", "--snap", "1000", "--mbstd-group", "2", "--ada-kimg", "1", "--target", "0.3"]


def _trainer_jobs(toy: Path, sg: tuple[Path, Path], out: Path) -> list[list[str]]:
    return [
        _finetune_job(sg, out),
        ["train-classifier", str(toy), "--out", str(out / "cls"), "--epochs", "1", "--batch", "8", "--size", "32",
         "--workers", "0", "--device", "cpu"],
        ["train-pix2pix", str(toy), "--out", str(out / "p2p"), "--refs", "1", "--epochs", "1", "--decay-epochs", "0",
         "--size", "32", "--ngf", "8", "--ndf", "8", "--batch", "2", "--device", "cpu"],
    ]


@pytest.mark.slow
def test_every_command_runs_with_device_less_tensors_unusable(toy, stylegan_setup, tmp_path):
    from clip_tiny import make_tiny_clip_dir
    from test_invert import mixed_target, network_file, save_png, validity_generator

    from stylekit.nets.vgg import VGGFeatures

    G = validity_generator()
    net = network_file(tmp_path, G)
    save_png(mixed_target(G)[1], tmp_path / "target.png")
    clip = make_tiny_clip_dir(tmp_path / "clip")
    body = VGGFeatures("vgg19", ["pool5"], weights=None, seed=0).body.state_dict()
    vgg = tmp_path / "vgg19-random.pth"
    torch.save({f"features.{k}": v for k, v in body.items()}, vgg)
    out = tmp_path / "out"
    content, style = sorted((toy / "content").glob("*.png"))[0], sorted((toy / "pop").glob("*.png"))[0]
    jobs = _trainer_jobs(toy, stylegan_setup, out) + [
        ["generate", "--network", str(net), "--seeds", "0-3", "--out", str(out / "gen"), "--device", "cpu"],
        ["invert", str(tmp_path / "target.png"), "--network", str(net), "--out", str(out / "inv"), "--loss", "mse",
         "--steps", "4", "--w-avg-samples", "200", "--device", "cpu"],
        ["styleclip", "--network", str(net), "--latent-seed", "3", "--prompt", "a red square", "--clip-model", str(clip),
         "--steps", "3", "--out", str(out / "sc"), "--device", "cpu"],
        ["transfer", str(content), str(style), "--out", str(out / "tr.png"), "--vgg-weights", str(vgg), "--size", "32",
         "--steps", "3", "--style-layers", "relu1_1,relu2_1", "--content-layers", "relu2_1", "--device", "cpu"],
        ["score", str(toy / "pop"), str(toy / "content"), "--metrics", "gram,cmmd,style", "--vgg-weights", str(vgg),
         "--clip-model", str(clip), "--style-model", str(out / "cls"), "--device", "cpu", "--workers", "0"],
    ]
    results = run_guarded(tmp_path, jobs)
    assert [r["argv"][0] for r in results] == [j[0] for j in jobs]
    assert (out / "sg" / "network-final.safetensors").is_file() and (out / "tr.png").is_file()


@pytest.mark.slow
def test_finetune_under_torchrun_with_device_less_tensors_unusable(stylegan_setup, tmp_path):
    """The other two trainers run guarded under torchrun in their DDP equivalence tests
    (tests/test_classifier_ddp.py, tests/test_pix2pix_ddp.py): one torchrun job checks both."""
    out = tmp_path / "out"
    run_guarded(tmp_path, [_finetune_job(stylegan_setup, out)], nproc=2)  # one job per torchrun: a process group per process
    assert json.loads((out / "sg" / "config.json").read_text())["world_size"] == 2


def test_up_sampling_choice_is_measured_per_device(monkeypatch):
    from stylekit.nets.stylegan2 import ops

    x, w = torch.randn(2, 8, 8, 8), torch.randn(4, 8, 3, 3)
    assert ops.measure_up_impl(x, w, repeats=1) in ("polyphase", "transpose")
    assert ops.up_impl(x, w) == "polyphase"  # CPU: the rule measured on CPUs
    monkeypatch.setattr(ops, "UP_IMPL", "transpose")
    assert ops.up_impl(x, w) == "transpose"


def test_invert_and_styleclip_optimise_through_fp32_synthesis(tmp_path):
    """Networks with fp16 blocks (NVlabs pkls) would run them in fp16 on CUDA by default; the latent
    optimisers have no loss scaling, so they ask for fp32 explicitly."""
    from test_invert import mixed_target, validity_generator

    import stylekit.edit.invert as inv

    G = validity_generator()
    _, target = mixed_target(G)
    w_avg, w_std = inv.w_stats(G, 200)
    calls: list[object] = []
    G.synthesis.register_forward_pre_hook(lambda m, args, kwargs: calls.append(kwargs.get("force_fp32")), with_kwargs=True)
    obj = inv.Objective("mse", target * 2 - 1, 1.0, "random", torch.device("cpu"))
    inv.project(G, target, obj, space="w+", steps=2, noise_reg=0.0, initial_noise=0.0, w_avg=w_avg, w_std=w_std, log_every=1)
    assert calls and all(c is True for c in calls)


@pytest.mark.slow
def test_an_error_on_one_rank_ends_every_rank_promptly(tmp_path):
    """Rank 1 fails mid-run while rank 0 waits in a collective: rank 1 tears its group down without a
    barrier, rank 0's collective fails at once, and torchrun ends the job with an error (not after the
    30-minute collective timeout)."""
    import time

    script = Path(__file__).with_name("ddp_tiny_train.py")
    t0 = time.monotonic()
    proc = subprocess.run([str(VENV_BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", str(script), "--out",
                           str(tmp_path / "run"), "--fail-at", "5", "--fail-rank", "1"],
                          env=guard_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "injected failure on rank 1 at step 5" in proc.stderr
    assert time.monotonic() - t0 < 120
