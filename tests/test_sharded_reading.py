"""The helpers the reading commands scale out with (train/distributed.py: shard, gather, broadcast,
agree) and the sharded feature extraction, run in 2 gloo processes under torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylekit.train.distributed import shard

SCRIPT = r'''
import json, sys
import numpy as np, torch
from stylekit.data.imageset import open_image_set
from stylekit.errors import BadInput, StylekitError
from stylekit.metrics.features import EmbedderExtractor, extract_features
from stylekit.train.distributed import agree, broadcast_rows, distributed_job, gather_lists, gather_rows

folder, cache, out = sys.argv[1:4]
with distributed_job("cpu") as dist:
    rows = gather_rows(np.full((dist.rank + 1, 3), dist.rank, np.float32), dist)  # 1 row from rank 0, 2 from rank 1
    got = broadcast_rows(np.arange(6, dtype=np.int64).reshape(2, 3) if dist.is_main else None, dist)

    def fail_on_1():
        if dist.rank == 1:
            raise BadInput("bad on one rank", hint="the fix")
        return "fine"

    try:
        agree(fail_on_1, dist)
        error = None
    except StylekitError as exc:
        error = [type(exc).__name__, str(exc), exc.exit_code]
    mean = EmbedderExtractor("mean-rgb", lambda b: b.mean(dim=(2, 3)), 3, size=16)
    result = extract_features(open_image_set(folder), mean, cache=cache, batch_size=2, dist=dist)
    __import__("pathlib").Path(out, f"rank{dist.rank}.json").write_text(json.dumps({
        "rows": rows.tolist(), "broadcast": got.tolist(), "error": error, "features": result.features.tolist(),
        "used": [it.key_path for it in result.items], "skipped": len(result.report.skipped), "stats": result.stats()}))
'''


def _images(folder: Path, n: int) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    (folder / "05.png").write_bytes(b"not a png")  # skipped and reported by every rank alike


def _torchrun(tmp_path: Path, folder: Path, cache: Path, nproc: int, name: str) -> list[dict]:
    out = tmp_path / name
    out.mkdir()
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    launch = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node", str(nproc)] if nproc > 1 else [sys.executable]
    proc = subprocess.run([*launch, str(script), str(folder), str(cache), str(out)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(nproc)]


def test_shard_blocks_cover_the_range_in_rank_order():
    from stylekit.train.distributed import DistInfo

    for n in (0, 1, 7, 10):
        for world in (1, 2, 3, 8):
            blocks = [shard(n, DistInfo(rank=r, world_size=world)) for r in range(world)]
            assert [i for b in blocks for i in b] == list(range(n))
            assert max(map(len, blocks)) - min(map(len, blocks)) <= 1


@pytest.mark.slow
@pytest.mark.numerics
def test_two_ranks_gather_agree_and_extract_what_one_process_extracts(tmp_path):
    folder = tmp_path / "imgs"
    _images(folder, 11)
    one = _torchrun(tmp_path, folder, tmp_path / "cache1", 1, "one")[0]
    r0, r1 = _torchrun(tmp_path, folder, tmp_path / "cache2", 2, "two")
    assert r0["rows"] == r1["rows"] == [[0, 0, 0], [1, 1, 1], [1, 1, 1]]
    assert r0["broadcast"] == r1["broadcast"] == [[0, 1, 2], [3, 4, 5]]
    assert r0["error"] == ["FailedOnAnotherRank", "rank 1: bad on one rank (the fix)", 2]
    assert r1["error"] == ["BadInput", "bad on one rank (the fix)", 2]
    # Both ranks hold every image's features, in the set's order, as one process computes them: the mean
    # of one image's 16x16 pixels in [0, 1] may be summed in another order for another batch layout: at most
    # 256 roundings of a sum below 256, divided by 256, i.e. 256 * eps(float32) apart.
    for r in (r0, r1):
        assert r["used"] == one["used"] and r["skipped"] == one["skipped"] == 1
        np.testing.assert_allclose(r["features"], one["features"], rtol=0, atol=256 * np.finfo(np.float32).eps)
    # Each rank computed its block of the 11 images (the unreadable one included), counted on rank 0.
    assert r0["stats"]["computed_per_rank"] == [5, 6] and r0["stats"]["computed"] == 11
    # The cache the two ranks wrote serves a later single process: every image is a hit.
    again = _torchrun(tmp_path, folder, tmp_path / "cache2", 1, "again")[0]
    assert again["stats"]["hits"] == 11 and again["stats"]["computed"] == 0
    np.testing.assert_array_equal(again["features"], r0["features"])
