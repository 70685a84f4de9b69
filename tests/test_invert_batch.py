"""`stylekit invert FOLDER --batch N`: each target's latent, noise maps and loss equal its single run.

Tiny random generator (with noise inputs on, so the per-target noise maps matter), --loss mse or
vgg with random weights, 6 steps. Tolerance: batched convolutions sum in another order than single
ones; measured differences are <= 5e-6 on w and <= 4e-7 on the unit-variance noise maps, so the test
allows 1e-4 on w, 1e-6 on noise maps (two targets' own maps end > 1e-5 apart) and a relative 1e-4 on
the final losses. (Adam turns rounding in near-zero gradients into whole steps, so a large --lr
widens the differences: at --lr 1 they reach 3e-3 on w.)
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_invert import network_file, save_png, validity_generator
from typer.testing import CliRunner

from stylekit.cli.app import app

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("invb")
    net = network_file(root, validity_generator(noise_strength=0.2))
    folder = root / "targets"
    folder.mkdir()
    g = torch.Generator().manual_seed(5)
    for name in ("a", "b", "c"):
        save_png(torch.rand(1, 3, 32, 32, generator=g), folder / f"{name}.png")
    return net, folder


def invert(setup, out, *extra):
    net, folder = setup
    args = ["invert", folder, "--network", net, "--out", out, "--steps", "6", "--log-every", "2", "--w-avg-samples", "300",
            "--device", "cpu", "--json", *extra]
    result = CliRunner().invoke(app, list(map(str, args)))
    return result, (json.loads(result.stdout) if result.stdout.strip() else None)


def latent(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files if k == "w" or k.startswith("noise.") or data[k].dtype.kind == "f"}


@pytest.mark.parametrize("extra", [["--space", "w+", "--loss", "mse"], ["--space", "w", "--loss", "vgg", "--vgg-weights", "random"]])
def test_batch_equals_single_runs(setup, tmp_path, extra):
    single, one = invert(setup, tmp_path / "one", *extra)
    batched, many = invert(setup, tmp_path / "many", *extra, "--batch", "2")  # a batch of 2, then one of 1
    assert single.exit_code == 0 and batched.exit_code == 0, batched.output
    assert [i["status"] for i in many["items"]] == ["done"] * 3
    losses = {Path(i["target"]).name: i["final_loss"] for i in one["items"]}
    assert len(set(losses.values())) == 3  # different targets, different results: nothing is shared
    for item in many["items"]:
        name = Path(item["target"]).name
        assert item["final_loss"] == pytest.approx(losses[name], rel=1e-4)
        x, y = latent(tmp_path / "one" / name[:-4] / "latent.npz"), latent(tmp_path / "many" / name[:-4] / "latent.npz")
        assert set(x) == set(y) and any(k.startswith("noise.") for k in x)
        for key in x:
            np.testing.assert_allclose(y[key], x[key], atol=1e-6 if key.startswith("noise.") else 1e-4, rtol=0)
        curve_one = json.loads((tmp_path / "one" / name[:-4] / "metrics.json").read_text())["curve"]
        curve_many = json.loads((tmp_path / "many" / name[:-4] / "metrics.json").read_text())["curve"]
        assert [c["step"] for c in curve_many] == [c["step"] for c in curve_one]
        assert curve_many[-1]["psnr"] == pytest.approx(curve_one[-1]["psnr"], abs=0.05)
    # each target has its own noise maps: after the same start they moved apart far beyond the tolerance
    a, b = latent(tmp_path / "many" / "a" / "latent.npz"), latent(tmp_path / "many" / "b" / "latent.npz")
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a if k.startswith("noise.")) > 1e-5


def test_batch_is_not_in_the_recipe_and_zero_is_refused(setup, tmp_path):
    first, _ = invert(setup, tmp_path / "o", "--loss", "mse", "--batch", "3")
    again, doc = invert(setup, tmp_path / "o", "--loss", "mse")
    assert first.exit_code == 0 and again.exit_code == 0
    assert [i["status"] for i in doc["items"]] == ["skipped"] * 3
    bad, doc = invert(setup, tmp_path / "z", "--loss", "mse", "--batch", "0")
    assert bad.exit_code == 2 and "--batch must be >= 1" in doc["error"] and not (tmp_path / "z").exists()
