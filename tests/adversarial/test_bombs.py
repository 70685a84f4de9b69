"""Memory bombs: a small file declaring a huge network, embedding or member is refused before allocating.

Every hostile file here is a few KB (the zip ~2 MB) and declares gigabytes. All commands run in one
subprocess whose address space may grow by only 1 GiB (memory_cap.py): a loader that allocated what
the file declares would fail there with MemoryError (exit 1) instead of the exit 2 + message asserted.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hostile_files import (
    long_bytes_bomb,
    nvlabs_snapshot,
    storage_size_bomb,
    zero_bomb_zip,
    zero_stride_snapshot,
)
from memory_cap import run_capped
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.errors import BadInput
from stylekit.io.limits import EMBED_DIM_MAX, NET_WIDTH_MAX, build_checked, check_fields, parse_json
from stylekit.metrics.style import META_NAME, export_style_model
from stylekit.nets.style_embedding import StyleNet, StyleNetConfig

BIG_G = {"z_dim": 4096, "c_dim": 0, "w_dim": 4096, "img_resolution": 1024, "img_channels": 3,
         "mapping_kwargs": {}, "synthesis_kwargs": {"channel_base": 1 << 20, "channel_max": 4096}}


def _safetensors_network(path: Path, config: dict) -> Path:
    meta = {"format": "stylekit.stylegan2", "format_version": "1", "config": json.dumps({"G_ema": config}), "extra": "{}"}
    save_file({}, str(path), metadata=meta)
    return path


def _png(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buf, "PNG")
    return buf.getvalue()


def _style_model(folder: Path, **changes: object) -> Path:
    export_style_model(StyleNet(StyleNetConfig("small-cnn", 2, 8)), folder, {"size": 16, "classes": ["a", "b"]})
    meta = json.loads((folder / META_NAME).read_text())
    meta.update(changes)
    (folder / META_NAME).write_text(json.dumps(meta))
    return folder


def _generate(network: Path) -> list[str]:
    return ["generate", "--network", str(network), "--seeds", "0", "--json", "--out", str(network.parent / f"{network.stem}-out")]


# name -> (make(root) -> command, expected exit code, text the output must hold)
CASES = {
    "safetensors-z-dim": (lambda r: _generate(_safetensors_network(r / "z.safetensors", {**BIG_G, "z_dim": 12000})),
                          2, "declares G_ema.z_dim=12000, outside the bound [1, 4096]"),
    "safetensors-in-bounds-but-empty": (lambda r: _generate(_safetensors_network(r / "big.safetensors", BIG_G)), 2,
                                        "declares a network larger than the weights the file holds: building it passed "
                                        "67,108,864 bytes, the bound for 0 bytes of weights"),
    "pickle-z-dim": (lambda r: _generate(_write(r / "z.pkl", nvlabs_snapshot({**BIG_G, "z_dim": 60000}))),
                     2, "declares G_ema.z_dim=60000, outside the bound [1, 4096]"),
    "pickle-in-bounds-but-empty": (lambda r: _generate(_write(r / "big.pkl", nvlabs_snapshot(BIG_G))),
                                   2, "declares a network larger than the weights the file holds"),
    "pickle-zero-stride": (lambda r: _generate(_write(r / "zs.pkl", zero_stride_snapshot())),
                           2, "declares 68719476736 elements but its storage holds 4"),
    "pickle-storage-size": (lambda r: _generate(_write(r / "ss.pkl", storage_size_bomb())),
                            2, "declares 34359738368 bytes but its payload holds"),
    "pickle-bytes-length": (lambda r: _generate(_write(r / "bl.pkl", long_bytes_bomb())),
                            2, "declares 1099511627776 bytes where only"),
    "style-projection-dim": (lambda r: _score(r, _style_model(r / "sm-proj", projection_dim=3_000_000)),
                             2, f"declares projection_dim=3000000, outside the bound [1, {EMBED_DIM_MAX}]"),
    "style-many-classes": (lambda r: _score(r, _style_model(r / "sm-classes", classes=[str(i) for i in range(90_000)])),
                           2, "declares a network larger than the weights the file holds"),
    "zip-member-2gib": (lambda r: _score(r, _style_model(r / "sm-ok"), zip_a=True),
                        0, "declares 2147483648 bytes, above the 256 MiB image limit"),
    # Controls: real files of the same kinds load and run under the same cap.
    "legit-network": (lambda r: _generate(_legit_network(r / "ok.safetensors")), 0, "seed0000.png"),
    "legit-style-model": (lambda r: _score(r, _style_model(r / "sm")), 0, '"style'),
}


def _legit_network(path: Path) -> Path:
    from stylekit.nets.stylegan2.load import save_network
    from stylekit.nets.stylegan2.tiny import tiny_generator

    return save_network(path, G_ema=tiny_generator(16, seed=0))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _score(root: Path, model: Path, zip_a: bool = False) -> list[str]:
    b = root / "b"
    b.mkdir(exist_ok=True)
    for i, colour in enumerate(((0, 0, 255), (0, 255, 0))):
        (b / f"{i}.png").write_bytes(_png(colour))
    a = zero_bomb_zip(root / "a.zip", "zeros.png", 2 << 30, {"red.png": _png((255, 0, 0)), "red2.png": _png((250, 0, 0))}) if zip_a else b
    return ["score", str(a), str(b), "--metrics", "style", "--style-model", str(model), "--no-cache", "--workers", "0",
            "--device", "cpu", "--json"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    commands = {}
    for name, (make, _, _) in CASES.items():
        root = tmp_path_factory.mktemp(name)
        commands[name] = make(root)
        sizes = [p.stat().st_size for p in root.rglob("*") if p.is_file()]
        assert max(sizes) < 3 << 20  # every input is small (the zip ~2 MB)
    return dict(zip(commands, run_capped(list(commands.values())), strict=True))


@pytest.mark.parametrize("name", list(CASES))
def test_small_file_declaring_huge_sizes_is_refused_without_allocating(name, results):
    code, text = CASES[name][1], CASES[name][2]
    assert results[name]["code"] == code, results[name]["stderr"]
    assert text in results[name]["stderr"] + results[name]["stdout"], results[name]
    assert "MemoryError" not in results[name]["stderr"]


def test_bounds_and_fit_are_one_rule_for_python_callers():
    with pytest.raises(BadInput, match=r"declares G\.z_dim=True, not an integer"):
        check_fields({"z_dim": True}, {"z_dim": (1, NET_WIDTH_MAX)}, "f", "G.")
    with pytest.raises(BadInput, match="declares mapping_kwargs as list"):
        check_fields({"mapping_kwargs": [1]}, {"mapping_kwargs": {"num_layers": (1, 8)}}, "f")
    import torch

    with pytest.raises(BadInput, match=r"weight declared \[4, 3\], file holds \[5, 3\]"):
        build_checked(lambda: torch.nn.Linear(3, 4), {"weight": (5, 3), "bias": (4,)}, "f", "cfg")
    assert isinstance(build_checked(lambda: torch.nn.Linear(3, 4), {"weight": (4, 3), "bias": (4,)}, "f", "cfg"), torch.nn.Linear)


@pytest.mark.parametrize("text", ["[" * 50_000 + "]" * 50_000, "[" * 150 + "]" * 150])
def test_deep_json_is_bad_input(text):
    with pytest.raises(BadInput, match="nests containers more than 100 deep"):
        parse_json(text, "x.json")


def test_deep_style_model_json_and_toml_config_exit_2(tmp_path):
    model = _style_model(tmp_path / "sm")
    (model / META_NAME).write_text('{"format": "stylekit-style-model", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    runner = CliRunner()
    res = runner.invoke(app, _score(tmp_path, model))
    assert res.exit_code == 2 and "nests containers more than 100 deep" in res.stderr, res.output
    cfg = tmp_path / "deep.toml"
    cfg.write_text("seeds = " + "[" * 100_000 + "]" * 100_000 + "\n")
    res = runner.invoke(app, ["generate", "--network", "x.pkl", "--seeds", "0", "--config", str(cfg), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "nests containers more than 100 deep" in res.stderr, res.output


def _classifier_run(root: Path, **changes: object) -> Path:
    from stylekit.io.checkpoint import checkpoint_name, write_checkpoint

    net = StyleNet(StyleNetConfig("small-cnn", 2, 8))
    write_checkpoint(root / "checkpoints" / checkpoint_name(1), {"model": net.state_dict()}, {}, {"step": 1})
    conf = {"backbone": "small-cnn", "classes": ["a", "b"], "embed_dim": 8, "size": 16, "loss": "supcon", **changes}
    (root / "config.json").write_text(json.dumps(conf))
    return root


@pytest.mark.parametrize("changes,message", [
    ({}, None),
    ({"embed_dim": 3_000_000}, "declares projection_dim=3000000, outside the bound"),
    ({"classes": [str(i) for i in range(90_000)]}, "declares a network larger than the weights the file holds"),
    ({"embed_dim": 4000}, "projection.2.weight declared [4000, 512], file holds [8, 512]"),
], ids=["legit", "embed-dim", "classes", "mismatch"])
def test_classifier_run_config_is_checked_against_its_checkpoint(tmp_path, changes, message):
    from stylekit.train.classifier import _load_for_eval

    run = _classifier_run(tmp_path, **changes)
    if message is None:
        assert _load_for_eval(run, "cpu").embed_dim == 8
        return
    with pytest.raises(BadInput) as err:
        _load_for_eval(run, "cpu")
    assert message in err.value.message and str(run) in err.value.message


def test_deep_checkpoint_meta_is_not_a_checkpoint(tmp_path):
    from stylekit.io.checkpoint import read_checkpoint

    run = _classifier_run(tmp_path)
    meta = next(run.glob("checkpoints/ckpt-*/meta.json"))
    meta.write_text('{"format": "stylekit-checkpoint", "step": 1, "x": ' + "[" * 50_000 + "]" * 50_000 + "}")
    with pytest.raises(BadInput, match="is not a stylekit checkpoint"):
        read_checkpoint(meta.parent)


@pytest.mark.parametrize("changes,message", [
    ({}, None),
    ({"ngf": 100_000}, "declares generator.ngf=100000, outside the bound [1, 1024]"),
    ({"ngf": 512}, "declares a network larger than the weights the file holds"),
], ids=["legit", "ngf-bound", "ngf-budget"])
def test_pix2pix_generator_json_is_checked_against_its_weights(tmp_path, changes, message):
    from dataclasses import asdict

    from stylekit.nets.unet import GeneratorConfig, RefUNet
    from stylekit.transfer.pix2pix import load_generator

    cfg = GeneratorConfig(size=32, ngf=4, refs=0)
    save_file(RefUNet(cfg).trainable_state_dict(), str(tmp_path / "generator.safetensors"))
    (tmp_path / "generator.json").write_text(json.dumps({"generator": {**asdict(cfg), **changes}}))
    if message is None:
        assert load_generator(tmp_path)[0].cfg.ngf == 4
        return
    with pytest.raises(BadInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_generator(tmp_path)
