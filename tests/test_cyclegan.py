"""train-cyclegan and the CycleGAN generators: parameter counts, junyanz state dicts, the image pool,
bad input, resume after a kill, and applying a generator (stylekit.transfer.cyclegan)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.data.toy import generate_toy_styles
from stylekit.errors import BadInput, MissingResource
from stylekit.nets.cyclegan import (
    ImagePool,
    PatchDiscriminator,
    count_params,
    cycle_generator,
    junyanz_key_map,
)
from stylekit.transfer.cyclegan import load_cyclegan_generator

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]
TINY = ["--size", "32", "--ngf", "4", "--ndf", "4", "--n-blocks", "1", "--device", "cpu", "--samples", "2",
        "--val-fraction", "0.25"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cg") / "toy"
    generate_toy_styles(out, size=32, per_style=8, styles=1, seed=0)
    return out


@pytest.fixture(scope="module")
def trained(toy, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cg-run") / "run"
    res = _cli(["train-cyclegan", str(toy / "content"), str(toy / "pop"), "--out", str(out), "--epochs", "1", "--json", *TINY])
    assert res.exit_code == 0, res.output
    return out


def _cli(args):
    return CliRunner().invoke(app, args)


def _error_lines(res) -> list[str]:
    return [line for line in res.stderr.splitlines() if line.startswith("error: ")]


# ----------------------------------------------------------------------------------------- networks
def test_parameter_counts_equal_junyanz():
    # junyanz resnet_9blocks (ngf 64, instance norm: conv biases) and the n_layers 3 PatchGAN (ndf 64)
    assert count_params(cycle_generator()) == 11_378_179
    assert count_params(PatchDiscriminator()) == 2_764_737


def _junyanz_shapes(ngf: int, n_blocks: int) -> dict[str, tuple[int, ...]]:
    """The parameter shapes of junyanz's ResnetGenerator.model, enumerated from his layer list (not from ours)."""
    layers = ["pad", ("conv", ngf, 3, 7), "norm", "relu", ("conv", 2 * ngf, ngf, 3), "norm", "relu",
              ("conv", 4 * ngf, 2 * ngf, 3), "norm", "relu", *(["block"] * n_blocks),
              ("convT", 4 * ngf, 2 * ngf, 3), "norm", "relu", ("convT", 2 * ngf, ngf, 3), "norm", "relu",
              "pad", ("conv", 3, ngf, 7), "tanh"]
    out: dict[str, tuple[int, ...]] = {}
    for i, layer in enumerate(layers):
        if layer == "block":  # pad, conv, norm, relu, pad, conv, norm (no dropout)
            for k in (1, 5):
                out[f"model.{i}.conv_block.{k}.weight"] = (4 * ngf, 4 * ngf, 3, 3)
                out[f"model.{i}.conv_block.{k}.bias"] = (4 * ngf,)
        elif isinstance(layer, tuple):
            kind, first, second, k = layer
            out[f"model.{i}.weight"] = (first, second, k, k)  # ConvTranspose2d weights are [in, out, k, k]
            out[f"model.{i}.bias"] = (second,) if kind == "convT" else (first,)
    return out


def _synthetic_state(ngf: int = 64, n_blocks: int = 9, old_norm_stats: bool = True) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(*s, generator=g) * 0.02 for k, s in _junyanz_shapes(ngf, n_blocks).items()}
    if old_norm_stats:  # PyTorch < 0.4 saved running statistics for instance norm; junyanz's loader drops them
        state["model.2.running_mean"] = torch.zeros(ngf)
        state["model.10.conv_block.2.running_var"] = torch.ones(4 * ngf)
    return state


def test_published_state_dict_loads_with_every_key_matched(tmp_path):
    state = _synthetic_state()
    path = tmp_path / "style_synthetic.pth"
    torch.save(state, path)
    g, info = load_cyclegan_generator(str(path))
    assert info == {"source": "junyanz", "file": str(path), "ngf": 64, "n_blocks": 9, "dropout": False}
    ours = g.state_dict()
    mapping = junyanz_key_map(9)
    used = {k for k in state if "running" not in k}
    assert "model.26.weight" in used and state["model.26.weight"].shape == (3, 64, 7, 7)  # the output conv
    assert set(mapping) == used and set(mapping.values()) == set(ours)  # a bijection over every parameter
    for theirs, name in mapping.items():
        assert torch.equal(ours[name], state[theirs]), theirs
    y = g(torch.rand(1, 3, 36, 44) * 2 - 1)
    assert y.shape == (1, 3, 36, 44) and y.abs().max() <= 1


def test_published_state_dict_that_does_not_fit_is_one_clear_error(tmp_path):
    state = _synthetic_state(ngf=8, n_blocks=6, old_norm_stats=False)
    torch.save({**state, "model.99.weight": torch.zeros(1)}, tmp_path / "extra.pth")
    with pytest.raises(BadInput, match=r"unexpected keys \['model.99.weight'\]"):
        load_cyclegan_generator(str(tmp_path / "extra.pth"))
    state["model.4.weight"] = torch.zeros(16, 8, 5, 5)
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(BadInput, match=r"model.4.weight has shape \(16, 8, 5, 5\)"):
        load_cyclegan_generator(str(tmp_path / "shape.pth"))
    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "vgg.pth")
    with pytest.raises(BadInput, match="not a junyanz ResnetGenerator"):
        load_cyclegan_generator(str(tmp_path / "vgg.pth"))


def test_image_pool_keeps_history_and_survives_a_checkpoint():
    import random

    random.seed(0)
    pool = ImagePool(3, 4)
    first = [torch.full((1, 3, 4, 4), float(i)) for i in range(3)]
    for x in first:  # filling: every image comes straight back
        assert torch.equal(pool.query(x), x)
    returned = torch.cat([pool.query(torch.full((1, 3, 4, 4), 10.0 + i)) for i in range(40)])
    values = set(returned[:, 0, 0, 0].tolist())
    assert values & {0.0, 1.0, 2.0} and values & set(range(10, 50))  # old images come back, new ones too
    restored = ImagePool(3, 4)
    restored.load_state_dict(pool.state_dict())
    assert restored._count == 3 and torch.equal(restored.images, pool.images)
    latest = torch.ones(1, 3, 4, 4, requires_grad=True) * 2  # --pool-size 0: the latest only, detached
    assert torch.equal(ImagePool(0, 4).query(latest), latest) and not ImagePool(0, 4).query(latest).requires_grad


# --------------------------------------------------------------------------------------- training
def test_training_writes_the_run_and_its_figures(trained):
    meta = json.loads((trained / "cyclegan.json").read_text())
    assert meta["format"] == "stylekit-cyclegan" and meta["generator"]["n_blocks"] == 1 and meta["epoch"] == 1
    epochs = [json.loads(x) for x in (trained / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in epochs if r.get("kind") == "epoch"]
    assert len(epochs) == 1 and 0 < epochs[0]["cycle_error_a"] < 1 and 0 < epochs[0]["cycle_error_b"] < 1
    train = [json.loads(x) for x in (trained / "metrics.jsonl").read_text().splitlines() if '"train"' in x]
    assert {"loss_G_AB", "loss_G_BA", "loss_cycle_A", "loss_cycle_B", "loss_idt_A", "loss_idt_B", "loss_D_A",
            "loss_D_B"} <= set(train[-1])
    sheet = Image.open(trained / "samples" / "epoch-0001.png")
    assert sheet.width > 6 * 32 and sheet.height > 2 * 32  # 6 labelled columns, 2 rows
    page = (trained / "index.html").read_text()
    assert "samples/epoch-0001.png" in page and "A-&gt;B-&gt;A" in page and "cycle_error_a" in page
    config = json.loads((trained / "config.json").read_text())
    assert config["lambda_a"] == 10.0 and config["lambda_identity"] == 0.5 and config["pool_size"] == 50
    assert config["gan_mode"] == "lsgan" and config["norm"] == "instance" and config["dropout"] is False


def test_bad_input_is_one_line_and_exit_2(toy, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    single = tmp_path / "single"
    single.mkdir()
    Image.new("RGB", (32, 32)).save(single / "one.png")
    cases = [
        ([str(empty), str(toy / "pop")], "domain A", "holds no readable images"),
        ([str(toy / "content"), str(single)], "domain B", "holds a single image"),
        ([str(toy / "content"), str(toy / "pop"), "--judge", str(toy)], "--judge", ""),
        ([str(toy / "content"), str(toy / "pop"), "--size", "30"], "--size 30", "multiple of 4"),
    ]
    for args, first, second in cases:
        out = tmp_path / f"out-{len(os.listdir(tmp_path))}"
        res = _cli(["train-cyclegan", *TINY[:2], "--epochs", "1", "--out", str(out), *args])  # a later --size wins
        lines = _error_lines(res)
        assert res.exit_code == 2 and len(lines) == 1 and first in lines[0] and second in lines[0], res.output
        assert "Traceback" not in res.output and not (out / "checkpoints").exists()


def test_mixed_modes_and_sizes_train(tmp_path):
    rng = np.random.default_rng(0)
    a, b = tmp_path / "A", tmp_path / "B"
    a.mkdir()
    b.mkdir()
    for i, (mode, size) in enumerate([("L", (40, 30)), ("RGBA", (32, 48)), ("P", (64, 64)), ("RGB", (33, 35))]):
        arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(arr).convert(mode).save(a / f"{i}.png")
        Image.fromarray(255 - arr).save(b / f"{i}.jpg")
    out = tmp_path / "run"
    res = _cli(["train-cyclegan", str(a), str(b), "--out", str(out), "--epochs", "1", "--json", *TINY[:-2],
                "--val-fraction", "0.25"])
    assert res.exit_code == 0, res.output
    assert "domain A: 4 image size(s), mode(s) L, P, RGB, RGBA" in res.stderr
    assert json.loads(res.stdout)["steps"] == 3


def test_resume_with_other_networks_is_a_checkpoint_of_the_wrong_kind(toy, trained, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained, run)
    res = _cli(["train-cyclegan", str(toy / "content"), str(toy / "pop"), "--out", str(run), "--epochs", "2",
                *TINY, "--n-blocks", "2"])  # the later --n-blocks wins
    lines = _error_lines(res)
    assert res.exit_code == 2 and len(lines) == 1 and "does not fit module 'G_AB'" in lines[0], res.output


def test_resume_after_a_kill_continues(toy, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "stylekit", "train-cyclegan", str(toy / "content"), str(toy / "pop"), "--out", str(out),
           "--epochs", "3", "--save-every", "1", "--quiet", *TINY]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((out / "checkpoints").glob("ckpt-*"))) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    res = _cli(["train-cyclegan", str(toy / "content"), str(toy / "pop"), "--out", str(out), "--epochs", "3",
                "--save-every", "1", "--json", *TINY])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["resumed_from_step"] >= 1 and doc["steps"] == 3 * 6 and doc["epochs"] == 3
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines() if '"train"' in x]
    assert steps == sorted(set(steps))  # records after the checkpoint were rewound, none duplicated


# ---------------------------------------------------------------------------------------- applying
def test_apply_a_run_both_ways_to_a_folder_and_an_image(toy, trained, tmp_path):
    content = tmp_path / "content"
    content.mkdir()
    for f in sorted((toy / "content").glob("*.png"))[:3]:
        (content / f.name).write_bytes(f.read_bytes())
    (content / "broken.png").write_bytes(b"not a png")
    res = CliRunner().invoke(app, ["transfer", str(content), "--method", "cyclegan", "--model", str(trained),
                                   "--out", str(tmp_path / "a2b"), "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["done"] == 3 and doc["failed"] == 1  # broken.png is reported, the others translated
    assert Image.open(tmp_path / "a2b" / "00000.png").size == (32, 32)
    res = CliRunner().invoke(app, ["transfer", str(toy / "pop" / "00000.png"), "--method", "cyclegan", "--model",
                                   str(trained), "--direction", "b2a", "--size", "20", "--out", str(tmp_path / "x.png"),
                                   "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "x.png").size == (20, 20)
    res = CliRunner().invoke(app, ["transfer", str(content), "--method", "cyclegan", "--model", str(trained),
                                   "--out", str(tmp_path / "a2b"), "--device", "cpu", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["skipped"] == 3  # the rerun rule: up to date, nothing redone
    g_ab, _ = load_cyclegan_generator(trained, "a2b")
    g_ba, _ = load_cyclegan_generator(trained, "b2a")
    assert any(not torch.equal(p, q) for p, q in zip(g_ab.parameters(), g_ba.parameters(), strict=True))


def test_apply_refuses_the_wrong_kind_and_names_the_download(tmp_path, monkeypatch):
    p2p = tmp_path / "p2p"
    p2p.mkdir()
    (p2p / "generator.json").write_text("{}")
    with pytest.raises(BadInput, match="is a train-pix2pix run, not a CycleGAN"):
        load_cyclegan_generator(p2p)
    with pytest.raises(BadInput, match="translates one way only"):
        load_cyclegan_generator("style_monet", "b2a")
    monkeypatch.setenv("STYLEKIT_OFFLINE", "1")
    with pytest.raises(MissingResource) as err:
        load_cyclegan_generator("style_vangogh")
    assert "stylekit download style_vangogh" in str(err.value)


def test_training_steps_read_nothing_back_between_log_lines(tmp_path):
    from host_reads import HostReads

    from stylekit.configs.cyclegan import CycleGANConfig
    from stylekit.train.cyclegan import train_cyclegan

    toy = tmp_path / "toy"
    generate_toy_styles(toy, size=32, per_style=20, styles=1, seed=0)
    cfg = CycleGANConfig(a=toy / "content", b=toy / "pop", out=tmp_path / "run", size=32, ngf=4, ndf=4, n_blocks=1,
                         epochs=1, device="cpu", val_fraction=0.25, samples=1, pool_size=4)
    with HostReads() as reads:
        result = train_cyclegan(cfg)
    log_lines = sum(1 for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if '"train"' in line)
    intervals = reads.intervals()
    assert result.steps == 15 and log_lines == 5 and len(intervals) >= 14
    assert sum(1 for n in intervals if n) <= log_lines, (intervals, reads.sites.most_common(8))


def test_domains_use_their_own_split_or_a_seeded_one(tmp_path):
    import zipfile

    from stylekit.data.unpaired import read_domain

    junyanz = tmp_path / "trainA_testA"
    for split, n in (("train", 5), ("test", 2)):
        (junyanz / split).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (20, 24), (i * 40, 0, 0)).save(junyanz / split / f"{i}.png")
    dom = read_domain(junyanz, "A", 0.5, 0)
    assert dom.split == "folders" and len(dom.train) == 5 and len(dom.val) == 2
    archive = tmp_path / "b.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(10):
            zf.write(junyanz / "train" / f"{i % 5}.png", f"img{i}.png")
    first, again = read_domain(archive, "B", 0.2, 0), read_domain(archive, "B", 0.2, 0)
    assert first.split == "random" and len(first.val) == 2 and len(first.train) == 8
    assert [it.rel for it in first.val] == [it.rel for it in again.val]  # seeded: the same images every run
