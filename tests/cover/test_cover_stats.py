"""Pairwise cover of `stylekit stats` (tests/cover/harness.py) on six tiny images and a tiny Inception."""

import numpy as np
import pytest
from test_score import TinyInception, make_images

from stylekit.configs.stats import StatsConfig
from stylekit.metrics import score as score_mod
from stylekit.metrics.fid import InceptionExtractor
from tests.cover.harness import finite_numbers, pairwise_rows, run_row

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stats-cover") / "data"
    make_images(folder, "stripes", 6, size=24, seed=1)
    return folder


@pytest.fixture(scope="module", autouse=True)
def tiny_inception():
    net = TinyInception()
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(score_mod.EXTRACTORS, "inception",
                   lambda cfg, dev: InceptionExtractor(cfg.mode, dev, model=net, name="tiny-inception", dim=16))
        yield


ROWS = pairwise_rows(StatsConfig, fixed={"data": "DATA", "name": "cover"})


@pytest.mark.parametrize("row", ROWS, ids=[str(i) for i in range(len(ROWS))])
def test_stats_cover(row, data, _isolated_home):
    code, doc, err = run_row("stats", StatsConfig, {**row, "data": data}, extra=["--device", "cpu"])
    if code == 2:
        return
    assert finite_numbers(doc) and doc["used"] == 6
    size = row["size"] or 24
    assert doc["spec"] == f"stats:cover/{size}"
    with np.load(_isolated_home / "stats" / f"cover_{row['mode']}_custom_{size}.npz") as d:
        assert np.isfinite(d["mu"]).all() and np.isfinite(d["sigma"]).all()
