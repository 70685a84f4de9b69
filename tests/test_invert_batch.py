"""`stylekit invert FOLDER --batch N`: each target's latent, noise maps and loss equal its single run.

Tiny random generator (with noise inputs on, so the per-target noise maps matter), --loss mse or
vgg with random weights, 6 steps. Tolerances (tests/numerics.py): batched convolutions sum the same
K <= 576 terms (64 channels x 3x3, the longest reduction of the tiny G) in another order than single
ones, so each gradient differs by <= K * eps32 relative. w is optimised by Adam, whose steps turn
rounding in near-zero gradients into direction changes: bound `optimised` over the steps' learning
rates (4e-3; measured 5e-6 on Intel AVX512, 1.2e-4 on AMD EPYC). The noise maps' gradient is the
noise regulariser's (weight 1e5, far from zero), renormalised each step: first order,
`well_conditioned` (3e-5; measured 4e-7). Two targets end further apart than the paths of one differ.
Losses and PSNR: relative K * eps32 per step.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from numerics import optimised, summation, well_conditioned
from test_invert import network_file, save_png, validity_generator
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.edit.schedule import ramped_lr

STEPS, LR, K = 6, 0.1, 64 * 3 * 3  # the CLI defaults below (--steps 6, --lr 0.1); longest reduction of tiny G
LRS = [ramped_lr(step / STEPS, LR) for step in range(STEPS)]

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
    args = ["invert", folder, "--network", net, "--out", out, "--steps", str(STEPS), "--log-every", "2", "--w-avg-samples", "300",
            "--device", "cpu", "--json", *extra]
    result = CliRunner().invoke(app, list(map(str, args)))
    return result, (json.loads(result.stdout) if result.stdout.strip() else None)


def latent(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files if k == "w" or k.startswith("noise.") or data[k].dtype.kind == "f"}


@pytest.mark.numerics
@pytest.mark.parametrize("extra", [["--space", "w+", "--loss", "mse"], ["--space", "w", "--loss", "vgg", "--vgg-weights", "random"]])
def test_batch_equals_single_runs(setup, tmp_path, extra):
    single, one = invert(setup, tmp_path / "one", *extra)
    batched, many = invert(setup, tmp_path / "many", *extra, "--batch", "2")  # a batch of 2, then one of 1
    assert single.exit_code == 0 and batched.exit_code == 0, batched.output
    assert [i["status"] for i in many["items"]] == ["done"] * 3
    losses = {Path(i["target"]).name: i["final_loss"] for i in one["items"]}
    assert len(set(losses.values())) == 3  # different targets, different results: nothing is shared
    path_gap = {"w": 0.0, "noise": 0.0}
    for item in many["items"]:
        name = Path(item["target"]).name
        assert item["final_loss"] == pytest.approx(losses[name], rel=STEPS * summation(K))
        x, y = latent(tmp_path / "one" / name[:-4] / "latent.npz"), latent(tmp_path / "many" / name[:-4] / "latent.npz")
        assert set(x) == set(y) and any(k.startswith("noise.") for k in x)
        for key in x:
            bound = well_conditioned(LRS, K) if key.startswith("noise.") else optimised(LRS, K)
            np.testing.assert_allclose(y[key], x[key], atol=bound, rtol=0)
            kind = "noise" if key.startswith("noise.") else "w"
            path_gap[kind] = max(path_gap[kind], float(np.abs(y[key] - x[key]).max()))
        curve_one = json.loads((tmp_path / "one" / name[:-4] / "metrics.json").read_text())["curve"]
        curve_many = json.loads((tmp_path / "many" / name[:-4] / "metrics.json").read_text())["curve"]
        assert [c["step"] for c in curve_many] == [c["step"] for c in curve_one]
        # PSNR of the 8-bit quantised image: 10/ln10 * relative mse change, + 0.01 dB for the 8-bit levels a
        # rounding can flip (one level moves the PSNR of these ~20 dB images by about 1e-4 dB)
        assert curve_many[-1]["psnr"] == pytest.approx(curve_one[-1]["psnr"], abs=4.35 * STEPS * summation(K) + 0.01)
    # each target has its own noise maps and latent: after the same start, two targets moved apart
    # further than batched and single paths of one target ever differ
    a, b = latent(tmp_path / "many" / "a" / "latent.npz"), latent(tmp_path / "many" / "b" / "latent.npz")
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a if k.startswith("noise.")) > 10 * path_gap["noise"]
    assert float(np.abs(a["w"] - b["w"]).max()) > 10 * max(path_gap["w"], optimised(LRS, K))


def test_batch_is_not_in_the_recipe_and_zero_is_refused(setup, tmp_path):
    first, _ = invert(setup, tmp_path / "o", "--loss", "mse", "--batch", "3")
    again, doc = invert(setup, tmp_path / "o", "--loss", "mse")
    assert first.exit_code == 0 and again.exit_code == 0
    assert [i["status"] for i in doc["items"]] == ["skipped"] * 3
    bad, doc = invert(setup, tmp_path / "z", "--loss", "mse", "--batch", "0")
    assert bad.exit_code == 2 and "--batch must be >= 1" in doc["error"] and not (tmp_path / "z").exists()
