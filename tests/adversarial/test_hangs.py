"""Issue 16, item 4: a FIFO (or any non-regular file) named like an input never hangs a reader.

open() on a FIFO blocks until a writer appears, so a reader that opens first and checks later hangs
forever. In folders such entries are skipped and reported like a corrupt image; as a named single
input they are exit 2. Every test runs under a timeout, CLI subprocesses under their own.
"""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.errors import BadImage, BadInput

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(60)


def fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def images(folder: Path, n: int, size: int = 16) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (size, size), (20 * i, 100, 255 - 20 * i)).save(folder / f"{i:03d}.png")
    return folder


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "STYLEKIT_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "stylekit", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env)


def test_helpers_never_open_a_fifo(tmp_path):
    from stylekit.io.paths import not_regular_reason, open_regular, require_regular_file

    pipe = fifo(tmp_path / "x.png")
    assert "FIFO" in not_regular_reason(pipe)
    with pytest.raises(BadInput, match=r"x.png: not a regular file \(a FIFO"):
        require_regular_file(pipe, "image")
    with pytest.raises(BadInput, match="not a regular file"):
        open_regular(pipe, "image")
    with pytest.raises(BadInput, match="a folder"):
        open_regular(tmp_path, "image")


def test_finetune_folder_reader_skips_a_fifo(tmp_path, capsys):
    from stylekit.data.imageset import ImageItem, decode_item
    from stylekit.data.stylegan_images import StyleGANImages

    data = images(tmp_path / "data", 3)
    pipe = fifo(data / "zz-pipe.png")
    ds = StyleGANImages(str(data), 16)
    assert len(ds) == 3 and ds[0].shape == (3, 16, 16)
    assert any("zz-pipe.png: not a regular file (a FIFO" in note for note in ds.notes)  # the trainer says them
    item = ImageItem(str(pipe), 0, 0, "zz-pipe.png", str(pipe))  # swapped in after the listing
    for compat in (False, True):
        with pytest.raises(BadImage, match="not a regular file"):
            decode_item(item, cleanfid_compat=compat)


def test_score_fid_raw_reads_skip_a_fifo(tmp_path, monkeypatch):
    from stylekit.metrics import score as score_mod
    from stylekit.metrics.fid import InceptionExtractor

    pool = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())  # 12-d "features"
    monkeypatch.setitem(score_mod.EXTRACTORS, "inception",
                        lambda cfg, dev: InceptionExtractor(cfg.mode, dev, model=pool, name="pool", dim=12))
    a, b = images(tmp_path / "a", 4), images(tmp_path / "b", 4)
    fifo(a / "pipe.png")
    res = CliRunner().invoke(app, ["score", str(a), str(b), "--metrics", "fid", "--device", "cpu", "--workers", "0",
                                   "--json", "--kid-subset-size", "2"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["a"]["skipped"] == [{"path": str(a / "pipe.png"), "reason": "not a regular file (a FIFO (named pipe))"}]


def test_config_fifo_exit_2_in_a_real_process(tmp_path):
    toml = fifo(tmp_path / "opts.toml")
    res = run_cli("generate", "--config", str(toml), "--network", "x", "--seeds", "0", "--out", str(tmp_path / "g"))
    assert res.returncode == 2 and "config file" in res.stderr and "not a regular file" in res.stderr, res.stderr


def test_single_named_inputs_that_are_fifos_exit_2(tmp_path):
    from stylekit.nets.stylegan2.load import save_network
    from stylekit.nets.stylegan2.tiny import tiny_generator

    def invoke(*args: str):
        return CliRunner().invoke(app, list(args))

    net = save_network(tmp_path / "net.safetensors", G_ema=tiny_generator(16, seed=1))
    pipe = fifo(tmp_path / "pipe.safetensors")
    res = invoke("generate", "--network", str(pipe), "--seeds", "0", "--out", str(tmp_path / "g"))
    assert res.exit_code == 2 and "network file" in res.output and "not a regular file" in res.output, res.output
    lat = fifo(tmp_path / "a.npz")
    res = invoke("mix", "--network", str(net), "--latents", str(lat), "--latents", str(lat), "--space", "w",
                 "--out", str(tmp_path / "m"))
    assert res.exit_code == 2 and "latent file" in res.output and "not a regular file" in res.output, res.output
    content = fifo(tmp_path / "content.png")
    style = tmp_path / "style.png"
    Image.new("RGB", (16, 16), (1, 2, 3)).save(style)
    res = invoke("transfer", str(content), str(style), "--out", str(tmp_path / "t.png"), "--size", "16")
    assert res.exit_code == 2 and "not a regular file" in res.output, res.output


def test_library_readers_refuse_fifos(tmp_path):
    """Every reader of a named file: weights, pickles, latents (+ invert's noise maps), manifests, style models."""
    from stylekit.data.images import load_rgb
    from stylekit.data.manifest import read_row_bytes
    from stylekit.edit.invert import load_noise
    from stylekit.edit.latents import load_latents
    from stylekit.io.safe_pickle import safe_load
    from stylekit.io.state_dict import read_state_dict
    from stylekit.metrics.style import load_style_model
    from stylekit.nets.stylegan2.load import load_network

    pipe = fifo(tmp_path / "pipe")
    readers = [
        lambda: read_state_dict(pipe, "VGG state dict", "hint"),
        lambda: safe_load(pipe),
        lambda: load_latents(pipe, 4, 8),
        lambda: load_noise(pipe),
        lambda: load_network(pipe),
    ]
    for read in readers:
        with pytest.raises(BadInput, match="not a regular file"):
            read()
    with pytest.raises(BadInput, match="does not exist"):  # not a file: looked up as a zip member, never opened
        read_row_bytes(pipe)
    with pytest.raises(BadImage, match="not a regular file"):
        load_rgb(pipe)
    model = tmp_path / "style-model"
    model.mkdir()
    (model / "style_model.json").write_text("{}")
    fifo(model / "style_model.safetensors")
    with pytest.raises(BadInput):  # a FIFO is no complete style model
        load_style_model(model)


def test_checkpoint_files_that_are_fifos_are_refused(tmp_path):
    """A run folder given to --network/--checkpoint whose checkpoint file was replaced by a FIFO."""
    from stylekit.io.checkpoint import CheckpointManager, load_module_tensors, read_checkpoint

    info = CheckpointManager(tmp_path / "checkpoints").save(1, {"G_ema": {"w": torch.ones(2)}}, {})
    (info.path / "G_ema.safetensors").unlink()
    fifo(info.path / "G_ema.safetensors")
    with pytest.raises(BadInput, match="checkpoint file .*G_ema.safetensors: not a regular file"):
        read_checkpoint(info.path)
    with pytest.raises(BadInput, match="not a regular file"):
        load_module_tensors(tmp_path, "G_ema")


def test_prepare_skips_a_fifo_and_reports_it(tmp_path):
    src = tmp_path / "src"
    images(src / "ink", 3)
    images(src / "oil", 3)
    fifo(src / "oil" / "pipe.png")
    res = CliRunner().invoke(app, ["prepare", str(src), str(tmp_path / "out"), "--size", "16", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["used"] == 6 and [s["path"] for s in doc["skipped"]] == [str(src / "oil" / "pipe.png")]


def test_npz_latents_still_read(tmp_path):
    """The FIFO guard wraps np.load in an opened file: regular latent files still load."""
    from stylekit.edit.latents import load_latents

    buf = io.BytesIO()
    np.savez(buf, w=np.ones((1, 8), np.float32))
    (tmp_path / "w.npz").write_bytes(buf.getvalue())
    assert tuple(load_latents(tmp_path / "w.npz", 4, 8).shape) == (1, 4, 8)
