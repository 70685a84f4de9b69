"""generate (seeds), invert and transfer (folders) under torchrun: 2 gloo processes write the files 1 process
writes, each rank its block, with device-less tensors unusable (tests/device_guard.py). One launch per
process count runs every job, so the torchrun start-up is paid twice, not once per command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from device_guard import run_guarded
from PIL import Image

SEEDS = [3, 0, 9, 4, 7]  # 2 processes: ranks take 2 and 3 seeds


def _tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != ".stylekit.lock"}


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img).astype(int)


def _jobs(root: Path, net: Path) -> list[list[str]]:
    out = root / "gen"
    generate = ["generate", "--network", str(net), "--seeds", ",".join(map(str, SEEDS)), "--batch", "2", "--device", "cpu",
                "--out", str(out), "--json"]
    return [generate, generate]  # the second: a rerun of the same options, up to date on every rank


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Path, list[dict]]]:
    from stylekit.nets.stylegan2.load import save_network
    from stylekit.nets.stylegan2.tiny import tiny_generator

    base = tmp_path_factory.mktemp("ddp-outputs")
    net = save_network(base / "g16.safetensors", G_ema=tiny_generator(16, seed=1))
    found = {}
    for nproc in (1, 2):
        root = base / f"n{nproc}"
        root.mkdir()
        found[nproc] = (root, run_guarded(root, _jobs(root, net), nproc=nproc))
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
