"""generate (seeds), invert and transfer (folders) under torchrun: 2 gloo processes write the files 1 process
writes, each rank its block, with device-less tensors unusable (tests/device_guard.py). One launch per
process count runs every job, so the torchrun start-up is paid twice, not once per command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from device_guard import run_guarded
from numerics import optimised, summation, well_conditioned
from PIL import Image
from test_invert import network_file, save_png, validity_generator

from stylekit.edit.schedule import ramped_lr

SEEDS = [3, 0, 9, 4, 7]  # 2 processes: ranks take 2 and 3 seeds
TARGETS = ["a.png", "b.png", "broken.png", "c.png"]  # 2 processes: a, b | broken (failed), c
STEPS, LR, K = 6, 0.1, 64 * 3 * 3  # invert: --steps, --lr (default); the longest reduction of the tiny G
LRS = [ramped_lr(step / STEPS, LR) for step in range(STEPS)]


def _tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != ".stylekit.lock"}


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img).astype(int)


def _jobs(root: Path, inputs: dict[str, Path]) -> list[list[str]]:
    """Each command, then its rerun into the same --out (nothing redone but what failed)."""
    generate = ["generate", "--network", str(inputs["g16"]), "--seeds", ",".join(map(str, SEEDS)), "--batch", "2",
                "--device", "cpu", "--out", str(root / "gen"), "--json"]
    invert = ["invert", str(inputs["targets"]), "--network", str(inputs["g32"]), "--out", str(root / "inv"), "--loss", "mse",
              "--steps", str(STEPS), "--batch", "2", "--w-avg-samples", "300", "--log-every", "2", "--device", "cpu", "--json"]
    return [generate, generate, invert, invert]


def _inputs(base: Path) -> dict[str, Path]:
    from stylekit.nets.stylegan2.load import save_network
    from stylekit.nets.stylegan2.tiny import tiny_generator

    targets = base / "targets"
    targets.mkdir()
    g = torch.Generator().manual_seed(5)
    for name in TARGETS:
        save_png(torch.rand(1, 3, 24, 24, generator=g), targets / name)
    (targets / "broken.png").write_bytes(b"not a png")
    return {"g16": save_network(base / "g16.safetensors", G_ema=tiny_generator(16, seed=1)),
            "g32": network_file(base, validity_generator(noise_strength=0.2)), "targets": targets}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Path, list[dict]]]:
    base = tmp_path_factory.mktemp("ddp-outputs")
    inputs = _inputs(base)
    found = {}
    for nproc in (1, 2):
        root = base / f"n{nproc}"
        root.mkdir()
        found[nproc] = (root, run_guarded(root, _jobs(root, inputs), nproc=nproc))
    return found


@pytest.mark.slow
@pytest.mark.numerics
def test_generate_two_ranks_write_each_seed_once_as_one_process_does(runs):
    (one, r1), (two, r2) = runs[1], runs[2]
    first, rerun = json.loads(r2[0]["stdout"]), json.loads(r2[1]["stdout"])
    assert first["per_rank"] == [2, 3] and json.loads(r1[0]["stdout"])["per_rank"] == []
    assert [Path(p).name for p in first["images"]] == [f"seed{s:04d}.png" for s in SEEDS]
    assert rerun["up_to_date"] and not first["up_to_date"]
    assert _tree(two / "gen") == _tree(one / "gen")
    record = json.loads((two / "gen" / "record.json").read_text())
    assert record["status"] == "done" and set(record["files"]) == {n for n in _tree(two / "gen") if not n.startswith(".")} - {"record.json"}
    for seed in SEEDS:
        # A rank synthesises other batches than one process (2 + 3 seeds, batch 2): the same per-image sums
        # in another kernel order, far below half a grey level, so a PNG may round the other way.
        assert np.abs(_pixels(two / "gen" / f"seed{seed:04d}.png") - _pixels(one / "gen" / f"seed{seed:04d}.png")).max() <= 1
    # w comes from the mapping network run on every seed in one batch on every rank, as in one process: exact.
    with np.load(one / "gen" / "latents.npz") as a, np.load(two / "gen" / "latents.npz") as b:
        assert list(b["seeds"]) == SEEDS
        for key in ("w", "z", "seeds"):
            np.testing.assert_array_equal(b[key], a[key])
    for seed in SEEDS:
        with np.load(two / "gen" / f"seed{seed:04d}.npz") as part, np.load(two / "gen" / "latents.npz") as all_:
            np.testing.assert_array_equal(part["w"][0], all_["w"][SEEDS.index(seed)])


@pytest.mark.slow
@pytest.mark.numerics
def test_invert_two_ranks_invert_each_target_once_as_one_process_does(runs):
    """Tolerances as tests/test_invert_batch.py: a rank batches other targets together than one process (a, b | c
    against a, b | c with the broken file on rank 1): the same sums of K terms in another order per step."""
    (one, r1), (two, r2) = runs[1], runs[2]
    first, rerun = json.loads(r2[2]["stdout"]), json.loads(r2[3]["stdout"])
    assert first["per_rank"] == [2, 2] and rerun["per_rank"] == [0, 1]  # the rerun redoes only the failed file
    assert [(Path(i["target"]).name, i["status"]) for i in first["items"]] == [
        ("a.png", "done"), ("b.png", "done"), ("broken.png", "failed"), ("c.png", "done")]
    assert sorted(i["status"] for i in rerun["items"]) == ["failed", "skipped", "skipped", "skipped"]
    assert _tree(two / "inv") == _tree(one / "inv")
    single = {Path(i["target"]).name: i for i in json.loads(r1[2]["stdout"])["items"]}
    for item in first["items"]:
        name = Path(item["target"]).name
        if item["status"] != "done":
            continue
        assert item["final_loss"] == pytest.approx(single[name]["final_loss"], rel=STEPS * summation(K))
        a, b = one / "inv" / name[:-4], two / "inv" / name[:-4]
        assert np.abs(_pixels(b / "projected.png") - _pixels(a / "projected.png")).max() <= 1
        np.testing.assert_array_equal(_pixels(b / "target.png"), _pixels(a / "target.png"))
        with np.load(a / "latent.npz") as x, np.load(b / "latent.npz") as y:
            assert set(x.files) == set(y.files)
            for key in (k for k in x.files if k == "w" or k.startswith("noise.")):
                bound = well_conditioned(LRS, K) if key.startswith("noise.") else optimised(LRS, K)
                np.testing.assert_allclose(y[key], x[key], atol=bound, rtol=0)
