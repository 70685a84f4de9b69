"""Pairwise cover of convert, generated from its declaration (stylekit/configs/convert.py): every --to with and
without --verify on random:16 and random:stylegan3:16 stand-ins; the written network loads back (StyleGAN3 to
rosinality is refused)."""

import pytest

from stylekit.configs.convert import ConvertConfig, Format
from tests.cover.harness import finite_numbers, pairwise_rows, promised_files, run_row

pytestmark = pytest.mark.usefixtures("one_thread")

ROWS = pairwise_rows(ConvertConfig, fixed={"out": None})
SUFFIX = {Format.safetensors: ".safetensors", Format.rosinality: ".pt", Format.nvlabs_state: ".pt"}


@pytest.mark.parametrize("row", ROWS, ids=[f"row{i}" for i in range(len(ROWS))])
def test_convert_cover(row, tmp_path):
    from stylekit.nets.stylegan2.load import load_network

    out = tmp_path / f"net{SUFFIX[row['to']]}"
    code, doc, err = run_row("convert", ConvertConfig, {**row, "out": out})
    if code == 2:  # rosinality's format has no StyleGAN3 layers: refused, nothing written
        assert "stylegan3" in row["network"] and row["to"] is Format.rosinality and "StyleGAN2 generators only" in err
        assert not out.exists()
        return
    assert finite_numbers(doc) and not promised_files(tmp_path, [out.name]) and doc["standins"]
    assert (doc["max_abs_diff"] == 0) if row["verify"] else doc["max_abs_diff"] is None
    assert load_network(out).generator.img_resolution == 16
