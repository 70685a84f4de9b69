"""Pairwise covers of generate, mix (both modes) and blend-layers, generated from their declarations
(stylekit/configs/stylegan.py), on random:16 stand-ins: each row exits 0 with finite numbers and the files it
promises, or 2 naming an option."""

from pathlib import Path
from typing import Any

import pytest

from stylekit.configs.stylegan import BlendConfig, GenerateConfig, MixConfig
from tests.cover.harness import finite_numbers, pairwise_rows, promised_files, run_row

pytestmark = pytest.mark.usefixtures("one_thread")

GENERATE_ROWS = pairwise_rows(GenerateConfig, fixed={"out": None})
MIX_GRID_ROWS = pairwise_rows(MixConfig, fixed={"out": None, "rows": (1, 2), "cols": (3,)})
MIX_INTERP_ROWS = pairwise_rows(MixConfig, fixed={"out": None, "interpolate": (1, 2)})
BLEND_ROWS = pairwise_rows(BlendConfig, fixed={"out": None})


def _run(command: str, config: type, row: dict[str, Any], out: Path | str) -> tuple[int, Any]:
    code, doc, _ = run_row(command, config, {**row, "out": out}, ["--device", "cpu"])
    if code == 0:
        assert finite_numbers(doc), doc
    return code, doc


@pytest.mark.parametrize("row", GENERATE_ROWS, ids=[f"row{i}" for i in range(len(GENERATE_ROWS))])
def test_generate_cover(row, tmp_path):
    code, doc = _run("generate", GenerateConfig, row, tmp_path / "out")
    if code == 0:
        files = [f"seed{s:04d}.png" for s in row["seeds"]] + ["latents.npz"] + (["grid.png"] if row["grid"] else [])
        assert not promised_files(tmp_path / "out", files) and doc["standins"]


@pytest.mark.parametrize("row", MIX_GRID_ROWS + MIX_INTERP_ROWS,
                         ids=[f"grid{i}" for i in range(len(MIX_GRID_ROWS))] + [f"interp{i}" for i in range(len(MIX_INTERP_ROWS))])
def test_mix_cover(row, tmp_path):
    code, doc = _run("mix", MixConfig, row, tmp_path / "out")
    if code == 0:
        files = ["grid.png", "1-3.png", "3-3.png"] if row.get("rows") else ["interpolation.gif", "frames/frame0000.png"]
        assert not promised_files(tmp_path / "out", files)


@pytest.mark.parametrize("row", BLEND_ROWS, ids=[f"row{i}" for i in range(len(BLEND_ROWS))])
def test_blend_cover(row, tmp_path):
    code, doc = _run("blend-layers", BlendConfig, row, f"{tmp_path / 'out'}/")
    sg3 = ["stylegan3" in row[k] for k in ("base", "finetuned")]
    if code == 2:  # refused with the reason: two architectures, a StyleGAN3 pair placed by resolution, both swap options,
        # or the default --swap-res 32 past these 16 px networks
        assert (sg3[0] != sg3[1] or (all(sg3) and row["swap_layer"] is None) or (row["swap_res"] and row["swap_layer"])
                or (row["swap_res"] is None and row["swap_layer"] is None)), row
        return
    points = row["swap_layer"] or row["swap_res"] or (32,)
    stem = "blend-layer" if row["swap_layer"] else "blend-swap"
    files = [f"{stem}{p}.safetensors" for p in points] + ["sweep.json"] if len(points) > 1 else ["blended.safetensors"]
    assert not promised_files(tmp_path / "out", files) and len(doc["standins"]) == 2
