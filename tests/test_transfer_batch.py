"""`stylekit transfer FOLDER --batch N`: batched Gatys runs equal their single-image runs.

Offline: a seeded random-init VGG19 (shallow layers, 32 px, Adam, a few steps) so the file stays fast.
Tolerance: a batched VGG pass sums the same K = 64 x 3 x 3 terms (relu2_1's conv, the longest
reduction here) in another order than a single one: K * eps32 relative per step, over the 4 steps for
the losses (tests/numerics.py); the 8-bit outputs may flip one grey level where a pixel sits on a
rounding boundary.
"""

import json

import numpy as np
import pytest
from numerics import summation
from PIL import Image
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.transfer.run import _groups

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()
FAST = ["--style-layers", "relu1_1,relu2_1", "--content-layers", "relu2_1", "--no-amp", "--device", "cpu",
        "--optimizer", "adam", "--size", "32", "--steps", "4", "--json", "-q"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory, random_vgg19_file):
    root = tmp_path_factory.mktemp("nstb")
    (root / "vgg.pth").symlink_to(random_vgg19_file)
    rng = np.random.default_rng(3)
    photos = root / "photos"
    photos.mkdir()
    for name, shape in (("a", (48, 64)), ("b", (24, 32)), ("c", (64, 48)), ("d", (48, 64))):
        Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(photos / f"{name}.png")
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / "style.png")
    return root


def run(folder, out, *extra):
    args = ["transfer", folder / "photos", folder / "style.png", "--out", out, "--vgg-weights", folder / "vgg.pth", *FAST, *extra]
    result = runner.invoke(app, list(map(str, args)))
    return result, (json.loads(result.stdout) if result.stdout.strip() else None)


def by_name(doc):
    return {item["content"].rsplit("/", 1)[-1]: item for item in doc["items"]}


@pytest.mark.numerics
@pytest.mark.parametrize("extra", [[], ["--original-colors", "--normalize-gradients", "--init", "random"]])
def test_batch_equals_single_runs(folder, tmp_path, extra):
    single, one = run(folder, tmp_path / "one", *extra)
    batched, many = run(folder, tmp_path / "many", *extra, "--batch", "3")
    assert single.exit_code == 0 and batched.exit_code == 0, batched.output
    assert many["done"] == 4
    ones, manys = by_name(one), by_name(many)
    for name in ("a.png", "b.png", "c.png", "d.png"):
        assert manys[name]["size"] == ones[name]["size"]  # per-image output sizes kept exactly
        for term, value in ones[name]["stages"][0]["loss_end"].items():
            assert manys[name]["stages"][0]["loss_end"][term] == pytest.approx(value, rel=4 * summation(64 * 3 * 3), abs=1e-9)
        with Image.open(tmp_path / "one" / name) as x, Image.open(tmp_path / "many" / name) as y:
            assert x.size == y.size
            diff = np.abs(np.asarray(x, dtype=np.int16) - np.asarray(y, dtype=np.int16))
            assert diff.max() <= 1
    # the images differ, so a coupled (shared) optimisation would show: outputs are per image
    assert ones["a.png"]["stages"][0]["loss_end"]["total"] != ones["d.png"]["stages"][0]["loss_end"]["total"]


def test_batch_does_not_change_the_recipe(folder, tmp_path):
    first, _ = run(folder, tmp_path / "o", "--batch", "2")
    again, doc = run(folder, tmp_path / "o")  # --batch 1 over --batch 2 outputs: all up to date
    assert first.exit_code == 0 and again.exit_code == 0
    assert doc["skipped"] == 4 and doc["done"] == 0


def test_groups_batch_only_equal_sizes_in_order():
    class Keys:
        def batch_key(self, path):
            if path == "bad":
                raise OSError("unreadable")
            return {"a": 1, "b": 2, "c": 1, "d": 1, "e": 2}[path]

    jobs = [(name, f"{name}.png") for name in ("a", "b", "bad", "c", "d", "e")]
    groups = [[src for src, _ in group] for group in _groups(Keys(), jobs, 2)]
    assert groups == [["a", "c"], ["b", "e"], ["bad"], ["d"]]
    assert [[src for src, _ in g] for g in _groups(Keys(), jobs, 1)] == [[s] for s, _ in jobs]


def test_broken_file_in_a_batch_fails_alone(folder, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.png", "d.png"):
        (photos / name).write_bytes((folder / "photos" / name).read_bytes())
    (photos / "e.png").write_bytes(b"not a png")
    args = ["transfer", photos, folder / "style.png", "--out", tmp_path / "o", "--vgg-weights", folder / "vgg.pth", *FAST, "--batch", "3"]
    result = runner.invoke(app, list(map(str, args)))
    doc = json.loads(result.stdout)
    assert result.exit_code == 0 and doc["done"] == 2 and doc["failed"] == 1
    assert by_name(doc)["e.png"]["status"] == "failed" and (tmp_path / "o" / "a.png").is_file()


@pytest.mark.parametrize(("extra", "message"), [
    (["--batch", "0"], "--batch must be >= 1"),
    (["--batch", "2", "--optimizer", "lbfgs"], "--batch > 1 needs --optimizer adam"),
    (["--batch", "2", "--method", "pix2pix", "--model", "nowhere"], "--batch applies to --method gatys"),
])
def test_bad_batch_exit_2(folder, tmp_path, extra, message):
    result, doc = run(folder, tmp_path / "o", *extra)
    assert result.exit_code == 2 and message in doc["error"]
    assert not (tmp_path / "o").exists()
