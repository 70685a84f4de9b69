"""blend-layers --swap-res 4,8,16,...: one network per resolution, a labelled comparison sheet, metrics per blend."""

import json

import pytest
import torch
from PIL import Image
from test_metric_registry import make_images, tiny_extractors
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.configs.stylegan import BlendConfig
from stylekit.edit.blend import blend_generators, run_blend, swap_index
from stylekit.nets.stylegan2.load import load_network, save_network
from stylekit.nets.stylegan2.tiny import tiny_generator

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep-nets")
    return {"base": save_network(root / "base.safetensors", G_ema=tiny_generator(32, seed=1)),
            "toon": save_network(root / "toon.safetensors", G_ema=tiny_generator(32, seed=2))}


def test_sweep_writes_one_network_per_resolution_and_a_labelled_sheet(nets, tmp_path):
    out = tmp_path / "sweep"
    res = CliRunner().invoke(app, ["blend-layers", "--base", str(nets["base"]), "--finetuned", str(nets["toon"]),
                                   "--swap-res", "4,8,16,32", "--out", f"{out}/", "--preview-seeds", "0-2", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["swap_res"] == [4, 8, 16, 32] and [e["swap_res"] for e in doc["sweep"]] == [4, 8, 16, 32]
    base = load_network(nets["base"]).generator
    toon = load_network(nets["toon"]).generator
    for r in (4, 8, 16, 32):
        blended = load_network(out / f"blend-swap{r}.safetensors").generator
        expected, _ = blend_generators(toon, base, swap_index(toon, r, by_layer=False))  # --structure finetuned: the fine-tune gives the low resolutions
        for k, v in expected.state_dict().items():
            assert torch.equal(blended.state_dict()[k], v), (r, k)
    assert json.loads((out / "sweep.json").read_text())["sweep"] == doc["sweep"]
    with Image.open(out / "sweep.png") as sheet:  # columns: base | swap 4 | 8 | 16 | 32 | fine-tuned; rows: 3 seeds
        w, h = sheet.size
    assert w > 6 * 128 and h > 3 * 128 and w > 1.5 * h

    bad = CliRunner().invoke(app, ["blend-layers", "--base", str(nets["base"]), "--finetuned", str(nets["toon"]),
                                   "--swap-res", "4,64", "--out", str(tmp_path / "s2")])
    assert bad.exit_code == 2 and "64" in bad.output and "32" in bad.output
    bad = CliRunner().invoke(app, ["blend-layers", "--base", str(nets["base"]), "--finetuned", str(nets["toon"]),
                                   "--swap-res", "4,8", "--out", str(tmp_path / "x.safetensors")])
    assert bad.exit_code == 2 and "folder" in bad.output
    bad = CliRunner().invoke(app, ["blend-layers", "--base", str(nets["base"]), "--finetuned", str(nets["toon"]),
                                   "--swap-res", "8", "--metrics", "fid", "--out", str(tmp_path / "y.safetensors")])
    assert bad.exit_code == 2 and "--ref" in bad.output


def test_sweep_scores_every_blend_through_the_metric_registry(nets, tmp_path):
    ref = tmp_path / "ref"
    make_images(ref, "blobs", 12, size=32, seed=7)
    cfg = BlendConfig(base=str(nets["base"]), finetuned=str(nets["toon"]), out=str(tmp_path / "s"), swap_res=[8, 32],
                      preview_seeds=[], device="cpu", metrics=["fid", "kid"], ref=str(ref), num_gen=12,
                      extractors=tiny_extractors())
    result = run_blend(cfg)
    assert [e["swap_res"] for e in result.sweep] == [8, 32]
    fids = [e["metrics"]["fid"] for e in result.sweep]
    assert all(f > 0 for f in fids) and fids[0] != fids[1]
    assert all("kid" in e["metrics"] for e in result.sweep)
    assert all(e["num_gen"] == {"fid": 12, "kid": 12} for e in result.sweep)  # the count each metric used is recorded
    assert result.preview is None and (tmp_path / "s" / "sweep.json").is_file()
