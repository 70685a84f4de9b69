"""`stylekit stats`: own reference statistics round-trip through `score A stats:NAME/R`; composites
(grids, contact sheets) that stylekit marks are never read as samples."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_score import TinyInception, make_images
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.metrics import score as score_mod
from stylekit.metrics.fid import InceptionExtractor
from tests.cover.examples import help_examples

STYLEKIT = str(Path(sys.executable).parent / "stylekit")


@pytest.fixture
def tiny(monkeypatch):
    net = TinyInception()
    monkeypatch.setitem(score_mod.EXTRACTORS, "inception",
                        lambda cfg, dev: InceptionExtractor(cfg.mode, dev, model=net, name="tiny-inception", dim=16))
    return net


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.numerics
def test_stats_round_trip_equals_scoring_the_folder(tiny, tmp_path, _isolated_home):
    a, b = tmp_path / "a", tmp_path / "b"
    make_images(a, "stripes", 20, seed=1)
    make_images(b, "blobs", 20, seed=3)
    made = _cli("stats", b, "--name", "mine", "--device", "cpu", "--json")
    assert made.exit_code == 0, made.output
    doc = json.loads(made.stdout)
    assert doc["spec"] == "stats:mine/48" and doc["used"] == 20 and not doc["replaced"]
    fid_file = _isolated_home / "stats" / "mine_clean_custom_48.npz"
    assert doc["files"]["fid"] == str(fid_file)
    with np.load(fid_file) as d:
        assert d["mu"].shape == (16,) and d["sigma"].shape == (16, 16)
    with np.load(_isolated_home / "stats" / "mine_clean_custom_48_kid.npz") as d:
        assert d["feats"].shape == (20, 16)
    assert doc["features"]["computed"] == 20
    args = ["--metrics", "fid,kid", "--device", "cpu", "--workers", "0", "--json"]
    direct = json.loads(_cli("score", a, b, *args).stdout)["metrics"]
    via_stats = _cli("score", a, "stats:mine/48", *args)
    assert via_stats.exit_code == 0, via_stats.output
    got = json.loads(via_stats.stdout)["metrics"]
    assert got["fid"]["value"] == pytest.approx(direct["fid"]["value"], rel=1e-5)
    assert got["kid"]["value"] == pytest.approx(direct["kid"]["value"], rel=1e-5, abs=1e-9)

    # Existing statistics are never replaced silently; --fresh replaces them (features from the cache).
    before = fid_file.read_bytes()
    again = _cli("stats", b, "--name", "mine", "--device", "cpu")
    assert again.exit_code == 2 and "already exist" in again.output and "--fresh" in again.output
    assert fid_file.read_bytes() == before
    fresh = json.loads(_cli("stats", b, "--name", "mine", "--device", "cpu", "--fresh", "--json").stdout)
    assert fresh["replaced"] and fresh["features"]["computed"] == 0 and fresh["features"]["hits"] == 20


def test_stats_size_and_bad_inputs(tiny, tmp_path, _isolated_home):
    a = tmp_path / "a"
    make_images(a, "stripes", 6, seed=1)
    doc = json.loads(_cli("stats", a, "--name", "small", "--size", "32", "--device", "cpu", "--json").stdout)
    assert doc["spec"] == "stats:small/32" and (_isolated_home / "stats" / "small_clean_custom_32.npz").is_file()
    # The 32px statistics differ from the native 48px ones (images really were resized first).
    json.loads(_cli("stats", a, "--name", "small", "--device", "cpu", "--json").stdout)
    with np.load(_isolated_home / "stats" / "small_clean_custom_32.npz") as d32, \
            np.load(_isolated_home / "stats" / "small_clean_custom_48.npz") as d48:
        assert not np.allclose(d32["mu"], d48["mu"])
    make_images(a, "blobs", 1, size=40, seed=2)  # now two sizes: R must be given
    res = _cli("stats", a, "--name", "mixed", "--device", "cpu")
    assert res.exit_code == 2 and "--size" in res.output
    assert _cli("stats", a, "--name", "ffhq").exit_code == 2  # clean-fid's hosted name
    assert _cli("stats", a, "--name", "Bad-Name").exit_code == 2
    assert _cli("stats", tmp_path / "missing", "--name", "x").exit_code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _cli("stats", empty, "--name", "x").exit_code == 2
    res = _cli("score", a, "stats:nothere/64", "--device", "cpu")
    assert res.exit_code == 3 and "stylekit stats DATA --name nothere --size 64" in res.output
    res = _cli("score", a, "stats:small/32", "--mode", "legacy_pytorch", "--device", "cpu")
    assert res.exit_code == 3 and "--mode legacy_pytorch" in res.output


def test_stats_subprocess_offline_without_inception_weights(tmp_path):
    a = tmp_path / "a"
    make_images(a, "stripes", 3, seed=1)
    env = {**os.environ, "STYLEKIT_OFFLINE": "1"}
    proc = subprocess.run([STYLEKIT, "stats", str(a), "--name", "mine", "--device", "cpu"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 3 and "stylekit download inception-fid" in proc.stderr
    assert not (Path(env["STYLEKIT_HOME"]) / "stats" / "mine_clean_custom_48.npz").exists()


def test_composites_are_skipped_by_listings_until_replaced(tmp_path):
    import torch

    from stylekit.data.grid import save_grid
    from stylekit.data.images import COMPOSITES_MARKER, list_images

    folder = tmp_path / "samples"
    make_images(folder, "stripes", 3)
    save_grid([torch.rand(3, 16, 16) for _ in range(4)], folder / "grid.png")
    marker = json.loads((folder / COMPOSITES_MARKER).read_text())
    assert marker["files"] == {"grid.png": (folder / "grid.png").stat().st_size}
    assert [p.name for p in list_images(folder)] == ["stripes_000.png", "stripes_001.png", "stripes_002.png"]
    assert list_images(folder / "grid.png") == [folder / "grid.png"]  # named explicitly: read
    Image.new("RGB", (64, 64), (9, 9, 9)).save(folder / "grid.png")  # the user's own file now
    assert "grid.png" in [p.name for p in list_images(folder)]
    (folder / COMPOSITES_MARKER).write_text("{not json")  # a damaged marker hides nothing
    assert len(list_images(folder)) == 4


def test_stats_random_inception_is_a_labelled_standin(tmp_path, _isolated_home):
    a = tmp_path / "a"
    make_images(a, "stripes", 3, size=32, seed=1)
    res = _cli("stats", a, "--name", "try", "--inception-weights", "random", "--device", "cpu", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert "stand-in" in doc["standin"] and "stand-in" in res.stderr
    assert doc["features"]["extractor"] == "inception-random(seed=0)"
    with np.load(_isolated_home / "stats" / "try_clean_custom_32.npz") as d:
        assert d["mu"].shape == (2048,) and np.isfinite(d["mu"]).all()


def test_stats_bad_values_are_refused_before_anything_is_written(tiny, tmp_path, _isolated_home):
    a = tmp_path / "a"
    make_images(a, "stripes", 3, size=32, seed=1)
    for args, named in ((["--size", "8"], "--size"), (["--size", "100000"], "--size"), (["--batch", "0"], "--batch"),
                        (["--mode", "clen"], "clen"), (["--workers", "-1"], "--workers")):
        res = _cli("stats", a, "--name", "x", *args)
        assert res.exit_code == 2 and named in res.output, (args, res.output)
    assert not (_isolated_home / "stats").exists()


def test_stats_help_examples_run(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for args in help_examples("stats"):
        res = _cli(*args, "--quiet")
        assert res.exit_code == 0, f"{args}\n{res.output}"
