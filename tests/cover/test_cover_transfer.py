"""Pairwise cover of `stylekit transfer` (tests/cover/harness.py): Gatys on a 24x18 content image with a
random-init VGG19 at 16-24 px and two steps. --method pix2pix (a trained model) runs in tests/test_pix2pix.py."""

import numpy as np
import pytest
from PIL import Image

from stylekit.configs.transfer import TransferConfig
from tests.cover.harness import finite_numbers, pairwise_rows, promised_files, run_row

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer-cover")
    yy, xx = np.mgrid[0:18, 0:24]
    content = np.stack([xx * 10, yy * 14, ((xx // 4 + yy // 4) % 2) * 200 + 20], -1).clip(0, 255).astype(np.uint8)
    Image.fromarray(content).save(root / "content.png")
    stripes = np.stack([((xx + yy) // 3 % 2) * 255, np.full_like(xx, 60), (xx // 3 % 2) * 255], -1).astype(np.uint8)
    Image.fromarray(stripes).save(root / "style.png")
    return root


ROWS = pairwise_rows(TransferConfig, fixed={"content": "CONTENT", "styles": ("STYLE",), "out": "OUT"})


@pytest.mark.parametrize("row", ROWS, ids=[str(i) for i in range(len(ROWS))])
def test_transfer_cover(row, images, tmp_path):
    row = {**row, "content": images / "content.png", "styles": (str(images / "style.png"),), "out": str(tmp_path / "o.png")}
    if row["multires"]:
        row["size"] = None  # --multires sets the stage sizes: a user gives it instead of --size
    code, doc, err = run_row("transfer", TransferConfig, row, extra=["--device", "cpu"])
    if code == 2:
        return
    assert finite_numbers(doc) and doc["done"] == 1 and "stand-in" in doc["standin"]
    stages = doc["items"][0]["stages"]
    assert [max(s["size"]) for s in stages] == list(row["multires"] or (row["size"],))
    frames = [f"o_frames/stage{len(stages)}_00001.png"] if row["save_every"] else []
    assert not promised_files(tmp_path, ["o.png", "stylekit-outputs.json", *frames])
    assert Image.open(tmp_path / "o.png").size[0] == stages[-1]["size"][0]
