"""generate (seeds), invert and transfer (folders) under torchrun: 2 gloo processes write the files 1 process
writes, each rank its block, with device-less tensors unusable (tests/device_guard.py). One launch per
process count runs every job, so the torchrun start-up is paid twice, not once per command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from device_guard import guard_env, run_guarded
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
    transfer = ["transfer", str(inputs["photos"]), str(inputs["style"]), "--out", str(root / "nst"), "--vgg-weights",
                str(inputs["vgg"]), "--style-layers", "relu1_1,relu2_1", "--content-layers", "relu2_1", "--no-amp",
                "--device", "cpu", "--optimizer", "adam", "--size", "16", "--steps", "3", "--json", "-q"]
    return [generate, generate, invert, invert, transfer, transfer]


def _inputs(base: Path, vgg: Path) -> dict[str, Path]:
    from stylekit.nets.stylegan2.load import save_network
    from stylekit.nets.stylegan2.tiny import tiny_generator

    targets = base / "targets"
    targets.mkdir()
    g = torch.Generator().manual_seed(5)
    for name in TARGETS:
        save_png(torch.rand(1, 3, 24, 24, generator=g), targets / name)
    (targets / "broken.png").write_bytes(b"not a png")
    photos = base / "photos"
    (photos / "sub").mkdir(parents=True)
    rng = np.random.default_rng(3)
    for name, shape in (("a.png", (24, 32)), ("sub/b.png", (20, 20)), ("c.jpg", (32, 24))):
        Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(photos / name)
    Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(base / "style.png")
    return {"photos": photos, "style": base / "style.png", "vgg": vgg,"g16": save_network(base / "g16.safetensors", G_ema=tiny_generator(16, seed=1)),
            "g32": network_file(base, validity_generator(noise_strength=0.2)), "targets": targets}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, random_vgg19_file: Path) -> dict[int, tuple[Path, list[dict]]]:
    base = tmp_path_factory.mktemp("ddp-outputs")
    inputs = _inputs(base, random_vgg19_file)
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


@pytest.mark.slow
@pytest.mark.numerics
def test_transfer_two_ranks_stylise_each_image_once_and_keep_one_record(runs):
    """Each image is stylised alone (--batch 1) in both runs: the same computation, on its own, in one process
    or the other; the 8-bit output may still flip one grey level where a pixel sits on a rounding boundary."""
    (one, r1), (two, r2) = runs[1], runs[2]
    first, rerun = json.loads(r2[4]["stdout"]), json.loads(r2[5]["stdout"])
    assert first["per_rank"] == [1, 2] and first["done"] == 3 and json.loads(r1[4]["stdout"])["per_rank"] == []
    assert rerun["skipped"] == 3 and rerun["done"] == 0  # the record holds every rank's outputs
    assert _tree(two / "nst") == _tree(one / "nst") == {"a.png", "sub/b.png", "c.png", "stylekit-outputs.json"}
    for name in ("a.png", "sub/b.png", "c.png"):
        assert np.abs(_pixels(two / "nst" / name) - _pixels(one / "nst" / name)).max() <= 1
    record = json.loads((two / "nst" / "stylekit-outputs.json").read_text())["outputs"]
    assert record == json.loads((one / "nst" / "stylekit-outputs.json").read_text())["outputs"]


def test_output_record_parts_are_read_and_folded_in(tmp_path):
    """What rank 1 of an interrupted torchrun run recorded counts on a rerun, and rank 0 folds it into the record."""
    from stylekit.io.recipe import OutputRecord, Recorded, source_identity

    src = tmp_path / "src.png"
    src.write_bytes(b"x")
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a.png", "b.png"):
        (out / name).write_bytes(b"png")
    OutputRecord(out).add(out / "a.png", "r0", src)
    part = OutputRecord(out, rank=1)
    part.add(out / "b.png", "r1", src)
    assert set(json.loads((out / "stylekit-outputs.rank1.json").read_text())["outputs"]) == {"b.png"}  # its own only
    again = OutputRecord(out)
    assert again.recorded([out / "a.png", out / "b.png"]) == {out / "a.png": Recorded("r0", source_identity(src)),
                                                               out / "b.png": Recorded("r1", source_identity(src))}
    # A user's files that look like parts (another name, or not a record) are neither read nor deleted.
    (out / "stylekit-outputs.rank-notes.json").write_text('{"version": 1, "outputs": {}}')
    (out / "stylekit-outputs.rank2.json").write_text("my own notes, not JSON")
    again.merge_parts()
    assert not (out / "stylekit-outputs.rank1.json").exists()
    assert set(json.loads((out / "stylekit-outputs.json").read_text())["outputs"]) == {"a.png", "b.png"}
    assert (out / "stylekit-outputs.rank-notes.json").exists()
    assert (out / "stylekit-outputs.rank2.json").read_text() == "my own notes, not JSON"


RECORDS = {"record.json", "stylekit-outputs.json", "stylekit-outputs.rank1.json"}  # rewritten as a run goes, by one rank
RANKS_SCRIPT = r"""
import json, os, sys
from typer.testing import CliRunner
from device_guard import one_process_group
from stylekit.cli.app import app
from stylekit.io.atomic import add_write_listener

report, writes = [], []
add_write_listener(lambda path: writes.append(str(path)))
with one_process_group():
    for argv in json.loads(sys.argv[1]):
        writes.clear()
        code = CliRunner().invoke(app, argv).exit_code
        report.append({"exit_code": code, "writes": list(writes)})
with open(os.path.join(sys.argv[2], "rank" + os.environ["RANK"] + ".json"), "w") as fh:
    json.dump(report, fh)
"""


@pytest.mark.slow
def test_each_output_is_written_by_one_rank_once_and_a_busy_out_ends_every_rank_with_75(tmp_path, random_vgg19_file):
    """Every file write of each rank is recorded (stylekit.io.atomic announces them): each seed's, target's and
    image's files are written once, by the rank whose block holds it; rank 0 alone writes what combines them.
    While another run holds --out, every rank of every command exits 75 (rank 0 alone takes the lock: none waits
    in a collective, none meets rank 0's own lock) and nothing is written."""
    from stylekit.io.rundir import DirLock

    inputs = _inputs(tmp_path, random_vgg19_file)
    busy = _jobs(tmp_path / "busy", inputs)[::2]  # generate, invert, transfer once each, into locked folders
    holders = []
    for name in ("gen", "inv", "nst"):
        (tmp_path / "busy" / name).mkdir(parents=True)
        holders.append(DirLock(tmp_path / "busy" / name))
        holders[-1].acquire()
    (tmp_path / "ranks.py").write_text(RANKS_SCRIPT)
    reports = tmp_path / "reports"
    reports.mkdir()
    jobs = [*busy, *_jobs(tmp_path / "free", inputs)[::2]]
    proc = subprocess.run([str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node", "2",
                           str(tmp_path / "ranks.py"), json.dumps(jobs), str(reports)], env=guard_env(), capture_output=True,
                          text=True, timeout=300)
    for lock in holders:
        lock.release()
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((reports / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [[job["exit_code"] for job in rank] for rank in ranks] == [[75, 75, 75, 0, 0, 0]] * 2
    assert _tree(tmp_path / "busy") == set() and not any(job["writes"] for rank in ranks for job in rank[:3])
    free = tmp_path / "free"
    for index, name in ((3, "gen"), (4, "inv"), (5, "nst")):
        written = [[Path(w).relative_to(free / name).as_posix() for w in rank[index]["writes"]] for rank in ranks]
        outputs = [w for w in written[0] + written[1] if w not in RECORDS]
        assert len(outputs) == len(set(outputs)), name  # no output written twice, by one rank or two
        assert set(written[0] + written[1]) - {"stylekit-outputs.rank1.json"} == _tree(free / name), name  # the part: merged
        assert set(written[1]) & RECORDS <= {"stylekit-outputs.rank1.json"}, name  # rank 1 writes its own part only
    assert {Path(w).name for w in ranks[1][3]["writes"]} == {f"seed{s:04d}.{x}" for s in (9, 4, 7) for x in ("png", "npz")}
    assert {Path(w).parent.name for w in ranks[1][4]["writes"]} == {"c"}  # rank 1: broken.png (failed) and c.png
    assert {Path(w).name for w in ranks[1][5]["writes"]} == {"b.png", "c.png", "stylekit-outputs.rank1.json"}
