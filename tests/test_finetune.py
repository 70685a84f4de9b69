"""finetune-stylegan at tiny scale: ADA, noaug, FreezeD, presets, CLI, outputs, bad inputs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.configs.finetune import FinetuneConfig
from stylekit.data.toy import generate_toy_styles
from stylekit.nets.stylegan2.load import load_network, save_network
from stylekit.nets.stylegan2.networks import freezed_layers
from stylekit.nets.stylegan2.tiny import tiny_discriminator, tiny_generator
from stylekit.train.ada import AdaConfig, AdaController
from stylekit.train.stylegan import finetune_stylegan, resolve_hparams

RES = 32


def make_tiny_setup(root: Path) -> tuple[Path, Path]:
    """(folder of 20 toy images of one style at 32px, tiny G/G_ema/D safetensors transfer source)."""
    generate_toy_styles(root / "toy", size=RES, per_style=20, styles=1, seed=0)
    G = tiny_generator(RES, seed=0)
    D = tiny_discriminator(RES, seed=1)
    src = root / "src.safetensors"
    save_network(src, G=G, G_ema=G, D=D)
    return root / "toy" / "pop", src


def tiny_cfg(data: Path, src: Path, out: Path, **kw) -> FinetuneConfig:
    base = dict(batch=4, tick_kimg=0.008, snap=1000, device="cpu", grid_seeds=4)
    base.update(kw)
    return FinetuneConfig(data=data, out=out, network=str(src), **base)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return make_tiny_setup(tmp_path_factory.mktemp("ft"))


pytestmark = pytest.mark.usefixtures("one_thread")


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_ada_controller_rule():
    ada = AdaController(AdaConfig(mode="ada", target=0.6, ada_kimg=1.0))
    for _ in range(4):
        ada.accumulate(torch.tensor([[1.0], [1.0], [1.0], [-1.0]]))  # r_t = 0.5 < target
    assert ada.step(4, 4) and ada.rt == 0.5 and ada.p == 0.0  # clamped at 0
    for _ in range(4):
        ada.accumulate(torch.ones(4, 1))
    assert ada.step(8, 4) and ada.p == pytest.approx(4 * 4 / 1000)
    assert not ada.step(9, 4)
    state = ada.state_dict()
    other = AdaController(AdaConfig(mode="ada"))
    other.load_state_dict(state)
    assert other.p == ada.p
    noaug = AdaController(AdaConfig(mode="noaug"))
    noaug.accumulate(torch.ones(4, 1))
    assert not noaug.step(4, 4) and noaug.p == 0.0


def test_presets_and_auto_formulas():
    cfg = FinetuneConfig(data="x", out="y", network="n", cfg="auto")
    hp = resolve_hparams(cfg, 256, 1, transfer=True)
    assert hp["batch"] == 16 and hp["mbstd_group"] == 4 and hp["lr"] == 0.0025
    assert hp["gamma"] == pytest.approx(0.0002 * 256**2 / 16) and hp["ema_kimg"] == pytest.approx(5.0)
    assert hp["ema_rampup"] is None and hp["ada_kimg"] == 100  # transfer: NVlabs' rules
    hp = resolve_hparams(FinetuneConfig(data="x", out="y", network="n", cfg="paper256", kimg=0.4), 256, 8, transfer=False)
    assert (hp["batch"], hp["per_rank"], hp["mbstd_group"], hp["gamma"], hp["ema_kimg"], hp["kimg"]) == (64, 8, 8, 1, 20, 0.4)
    assert hp["ada_kimg"] == 500
    assert resolve_hparams(FinetuneConfig(data="x", out="y", network="n", cfg="cifar"), 32, 2, False)["pl_weight"] == 0.0


def test_ada_raises_p_and_noaug_keeps_zero(setup, tmp_path):
    data, src = setup
    r = finetune_stylegan(tiny_cfg(data, src, tmp_path / "ada", kimg=0.048, ada_kimg=1.0, target=0.3))
    recs = _metrics(tmp_path / "ada")
    assert r.augment_p > 0 and r.rt is not None
    assert max(rec["augment_p"] for rec in recs) > 0 and all(rec["augment_p"] >= 0 for rec in recs)
    assert {"loss_G", "loss_D", "r1_penalty", "pl_length", "rt", "kimg", "sec_per_kimg", "peak_mem_mb"} <= set().union(*recs)
    r0 = finetune_stylegan(tiny_cfg(data, src, tmp_path / "noaug", kimg=0.016, aug="noaug"))
    assert r0.augment_p == 0.0 and all(rec["augment_p"] == 0.0 for rec in _metrics(tmp_path / "noaug"))


def test_freezed_layers_stay_bit_identical(setup, tmp_path):
    data, src = setup
    n = 4
    r = finetune_stylegan(tiny_cfg(data, src, tmp_path / "fz", kimg=0.008, freezed=n, aug="noaug"))
    before = load_network(src).D.state_dict()
    after = load_network(r.network).D.state_dict()
    layers = freezed_layers(load_network(src).D)
    frozen = [name for idx, name in layers if idx < n]
    assert r.frozen_layers == frozen == ["b32.fromrgb", "b32.conv0", "b32.conv1", "b32.skip"]
    for key in before:
        if not key.endswith(("weight", "bias")):
            continue
        same = torch.equal(before[key], after[key])
        if key.startswith(tuple(f"{f}." for f in frozen)):
            assert same, key
        elif key.startswith(("b16.", "b8.", "b4.")):
            assert not same, key


def test_cli_outputs_load_and_rerun_is_noop(setup, tmp_path):
    data, src = setup
    out = tmp_path / "run"
    args = ["finetune-stylegan", str(data), "--network", str(src), "--out", str(out), "--device", "cpu", "--batch", "4",
            "--kimg", "0.008", "--tick-kimg", "0.004", "--snap", "1", "--mirror", "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["kimg"] == 0.008 and doc["images"] == 40 and doc["ticks"] == 2 and doc["folders"] == {".": 20}
    assert (out / "network-final.safetensors").exists() and (out / "network-snapshot-000000.004.safetensors").exists()
    # NVlabs' name (kimg:06d) for the newest snapshot within that kimg: the same file, not a copy.
    nvlabs = out / "network-snapshot-000000.safetensors"
    assert nvlabs.stat().st_ino == (out / "network-snapshot-000000.008.safetensors").stat().st_ino
    if importlib.util.find_spec("tensorboard") is not None:  # the optional extra: event files next to metrics.jsonl
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        acc = EventAccumulator(str(out))
        acc.Reload()
        assert [e.step for e in acc.Scalars("loss_G")] == [4, 8] and len(acc.Images("samples/fakes")) == 2
    assert (out / "samples" / "reals.png").exists() and (out / "samples" / "fakes-000000.008.png").exists()
    net = load_network(out / "network-final.safetensors")
    assert net.G_ema is not None and net.D is not None and net.G.img_resolution == RES
    assert load_network(out).source.endswith("network-final.safetensors")  # the run directory itself
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and json.loads(again.stdout)["kimg"] == 0.008


def test_bad_inputs(setup, tmp_path):
    data, src = setup
    wrong = tmp_path / "wrong"
    generate_toy_styles(wrong, size=48, per_style=4, styles=1)
    res = CliRunner().invoke(app, ["finetune-stylegan", str(wrong / "pop"), "--network", str(src), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "48x48" in res.output and "stylekit prepare" in res.output and "--size 32" in res.output
    res = CliRunner().invoke(app, ["finetune-stylegan", str(data.parent), "--network", str(src), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "toy-styles folder" in res.output and "content/" in res.output
    assert str(data) in res.output and not (tmp_path / "o").exists()  # the fix names one style folder
    res = CliRunner().invoke(app, ["finetune-stylegan", str(data), "--network", "ffhq-256", "--out", str(tmp_path / "o2")])
    assert res.exit_code == 3 and "stylekit download ffhq-256" in res.output
    for extra in (["--augpipe", "xyz"], ["--freezed", "99"], ["--aug", "fixed"], ["--batch", "64"]):
        res = CliRunner().invoke(app, ["finetune-stylegan", str(data), "--network", str(src), "--out", str(tmp_path / "o3"),
                                       "--device", "cpu", *extra])
        assert res.exit_code == 2, (extra, res.output)


def test_several_folders_are_counted(setup, tmp_path):
    import shutil

    from stylekit.data.stylegan_images import StyleGANImages

    data, _ = setup
    mixed = tmp_path / "mixed"
    for name, n in (("a", 3), ("b", 5)):
        (mixed / name).mkdir(parents=True)
        for img in sorted(data.glob("*.png"))[:n]:
            shutil.copy(img, mixed / name / img.name)
    assert StyleGANImages(str(mixed), RES).folders == {"a": 3, "b": 5}


class _TinyInception(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 5, stride=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x / 255.0)).mean((2, 3))


def test_metrics_fid_at_snapshots_and_skip_without_weights(setup, tmp_path, monkeypatch):
    import stylekit.metrics.score as score_mod
    from stylekit.metrics.fid import InceptionExtractor

    data, src = setup
    # Without the Inception weights (offline, empty cache): a warning, and training goes on.
    r = finetune_stylegan(tiny_cfg(data, src, tmp_path / "nofid", kimg=0.004, snap=1, metrics=["fid"]))
    assert r.kimg == 0.004 and "fid" not in _metrics(tmp_path / "nofid")[-1]
    net = _TinyInception()
    monkeypatch.setitem(score_mod.EXTRACTORS, "inception",
                        lambda cfg, dev: InceptionExtractor(cfg.mode, dev, model=net, name="tiny-inception", dim=8))
    r = finetune_stylegan(tiny_cfg(data, src, tmp_path / "fid", kimg=0.004, snap=1, metrics=("fid", "kid"), num_gen=8))
    last = _metrics(tmp_path / "fid")[-1]
    assert last["fid"] > 0 and "kid" in last and r.last_metrics["fid"] == last["fid"]
    assert not (tmp_path / "fid" / ".metric-fakes").exists()


def test_snapshots_carry_the_nvlabs_name(tmp_path):
    from stylekit.train.stylegan import link_nvlabs_name

    whole = tmp_path / "network-snapshot-000040.safetensors"
    whole.write_bytes(b"a")
    assert link_nvlabs_name(whole, 40_000) == whole and sorted(p.name for p in tmp_path.iterdir()) == [whole.name]
    part = tmp_path / "network-snapshot-000041.500.safetensors"
    part.write_bytes(b"b")
    linked = link_nvlabs_name(part, 41_500)
    assert linked.name == "network-snapshot-000041.safetensors" and linked.read_bytes() == b"b"
    newer = tmp_path / "network-snapshot-000041.900.safetensors"
    newer.write_bytes(b"c")
    assert link_nvlabs_name(newer, 41_900).read_bytes() == b"c" and part.read_bytes() == b"b"
