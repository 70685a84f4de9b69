"""`stylekit prepare` worker pool: the same output for any --workers, bad images reported from the
workers, auto workers, and pool processes that hold nothing of the parent's (the OUT lock)."""

import io
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from stylekit.configs.prepare import PrepareConfig
from stylekit.data import prepare as prep
from stylekit.data.prepare import Result, Worker, chunk_size, prepare
from stylekit.errors import BadInput


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    """Two labels of random 40x30 / 30x40 PNG and JPEG images, plus one corrupt and one empty file."""
    root = tmp_path_factory.mktemp("par") / "src"
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(9):
            shape = (30, 40, 3) if i % 2 else (40, 30, 3)
            img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
            img.save(root / label / f"{i}.{'jpg' if i % 3 == 0 else 'png'}")
    (root / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (root / "b" / "empty.png").write_bytes(b"")
    return root


def _members(path: Path) -> dict[str, bytes]:
    """Archive members that do not carry timings (report.json has seconds and the worker count)."""
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist() if n != "report.json"}


@pytest.mark.parametrize("fmt", ["stylegan-zip", "folder"])
def test_same_output_and_skips_for_one_and_two_workers(src, tmp_path, fmt):
    reports, outputs = [], []
    for workers in (1, 2):
        out = tmp_path / f"j{workers}" / ("data.zip" if fmt == "stylegan-zip" else "")
        reports.append(prepare(PrepareConfig(src=src, out=out, size=16, format=fmt, workers=workers, seed=3)))
        outputs.append(_members(out) if fmt == "stylegan-zip" else
                       {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.png"))}
                           | {"manifest.csv": (out / "manifest.csv").read_bytes()})
    one, two = reports
    assert (one.workers, two.workers) == (1, 2)
    assert outputs[0] == outputs[1] and len([n for n in outputs[0] if n.endswith(".png")]) == 18
    skipped = sorted((s.path.rsplit("/", 1)[-1], s.reason) for s in two.skipped)
    assert skipped == sorted((s.path.rsplit("/", 1)[-1], s.reason) for s in one.skipped)
    assert [name for name, _ in skipped] == ["broken.png", "empty.png"] and "empty file" in skipped[1][1]
    assert one.used == two.used == 18 and one.splits == two.splits


def test_zip_pixels_are_the_plain_pil_crop_and_resize(src, tmp_path):
    """What the workers send back decodes to PIL's centre crop + Lanczos resize of the source."""
    out = tmp_path / "z.zip"
    prepare(PrepareConfig(src=src, out=out, size=16, format="stylegan-zip", workers=2))
    with zipfile.ZipFile(out) as zf:
        labels = dict(json.loads(zf.read("dataset.json"))["labels"])
        first = np.asarray(Image.open(zf.open("00000/img00000000.png")))
    assert labels["00000/img00000000.png"] == 0
    with Image.open(src / "a" / "0.jpg") as img:  # 30 wide, 40 high: the central 30x30 square
        expected = np.asarray(img.convert("RGB").crop((0, 5, 30, 35)).resize((16, 16), Image.Resampling.LANCZOS))
    assert first.shape == (16, 16, 3) and np.array_equal(first, expected)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
def test_pool_processes_do_not_hold_the_out_lock(src, tmp_path, monkeypatch):
    """The pool starts (forks) before OUT's lock is taken: a worker of a killed run must not keep OUT busy."""
    call = Worker.__call__

    def spy(self: Worker, task) -> Result:
        call(self, task)
        fds = sorted(os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                     if os.path.exists(f"/proc/self/fd/{fd}"))
        return Result(False, f"pid {os.getpid()}: " + "|".join(fds), task.src)

    monkeypatch.setattr(Worker, "__call__", spy)  # forked workers inherit the patched class
    with pytest.raises(BadInput, match="all 20 candidates were skipped"):
        prepare(PrepareConfig(src=src, out=tmp_path / "out", size=16, workers=2))
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    seen = [s["reason"] for s in report["skipped"] if s["reason"].startswith("pid ")]
    assert len(seen) == 20 and {r.split(":")[0] for r in seen} != {f"pid {os.getpid()}"}  # ran in workers
    assert not any(".stylekit.lock" in r for r in seen)


def test_auto_workers_one_per_core_and_one_with_a_preprocess(src, tmp_path, monkeypatch):
    monkeypatch.setattr(prep, "available_cores", lambda: 3)
    assert prep.resolved_workers(PrepareConfig(src=src, out=tmp_path / "o")) == 3
    assert prep.resolved_workers(PrepareConfig(src=src, out=tmp_path / "o", preprocess=lambda img: img)) == 1
    assert prep.resolved_workers(PrepareConfig(src=src, out=tmp_path / "o", workers=2)) == 2
    assert prep.resolved_workers(PrepareConfig(src=src, out=tmp_path / "o", workers=0)) == 1  # 0: in this process
    monkeypatch.setattr(prep, "available_cores", lambda: 1)
    rep = prepare(PrepareConfig(src=src, out=tmp_path / "one", size=8))  # one core: in-process, no pool
    assert rep.workers == 1 and rep.used == 18
    with pytest.raises(BadInput, match="--workers"):
        PrepareConfig(src=src, out=tmp_path / "o", workers=-1)


def test_chunks_balance_the_workers_and_cap_the_bytes_in_flight():
    assert chunk_size(1000, 2, 64) == 31  # ~16 chunks per worker
    assert chunk_size(100_000, 2, 64) == 64  # at most 64 items per round trip
    assert chunk_size(100_000, 2, 2048) == 2  # 12 MiB per 2048 px PNG: ~32 MiB a chunk
    assert chunk_size(3, 8, None) == 1


def test_workers_start_by_fork_only_without_a_torch_preprocess():
    if "fork" not in __import__("multiprocessing").get_all_start_methods() or sys.platform == "darwin":
        pytest.skip("no fork here")
    plain = Worker(prep.Transform(8, "center", "lanczos", 0, (4, 3), False), 1)
    assert prep.start_method(plain) == "fork"
    aligned = Worker(plain.transform, 1, preprocess=lambda img: img)
    assert prep.start_method(aligned) in ("forkserver", "spawn")


def test_a_preprocess_runs_in_forkserver_workers_with_the_same_output(src, tmp_path):
    """--align's path: a picklable preprocess, workers started from forkserver (not fork), same bytes."""
    members = []
    for workers in (1, 2):
        out = tmp_path / f"m{workers}" / "data.zip"
        rep = prepare(PrepareConfig(src=src, out=out, size=16, format="stylegan-zip", workers=workers,
                                    preprocess=ImageOps.mirror))
        assert rep.workers == workers and rep.used == 18
        members.append(_members(out))
    assert members[0] == members[1]
    plain = tmp_path / "plain" / "data.zip"
    prepare(PrepareConfig(src=src, out=plain, size=16, format="stylegan-zip", workers=1))
    first = "00000/img00000000.png"
    mirrored = np.asarray(Image.open(io.BytesIO(members[1][first])))
    assert np.array_equal(mirrored, np.asarray(Image.open(io.BytesIO(_members(plain)[first])))[:, ::-1])
