"""train-pix2pix: data layouts, reference sampler, networks, end-to-end CLI, resume, bad inputs, apply."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.data.images import pil_to_tensor
from stylekit.data.pairs import RefSampler, build_pair_data, discover_pairs, split_pairs
from stylekit.data.toy import generate_toy_styles

VENV_BIN = Path(__file__).resolve().parents[1] / ".venv" / "bin"
TINY = ["--size", "32", "--ngf", "8", "--ndf", "8", "--style-dim", "16", "--device", "cpu", "--seed", "0",
        "--val-fraction", "0.25", "--samples", "2"]
runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("p2p") / "toy"
    generate_toy_styles(out, size=32, per_style=8, styles=3, seed=0)
    return out


def _cli(args: list[str]):
    return runner.invoke(app, args)


# ------------------------------------------------------------------------------------------ data
def test_toy_styles_folder_is_data(toy):
    pairs, fmt = discover_pairs(toy)
    assert fmt == "toy-styles" and len(pairs) == 24
    assert {p.label for p in pairs} == {"pop", "stripes", "checks"}
    assert all(p.a.parent.name == "content" and p.a.stem == p.b.stem for p in pairs)
    train, val = split_pairs(pairs, 0.25, seed=0)
    assert len(val) == 6 and not {p.group for p in train} & {p.group for p in val}  # held-out compositions


def test_reference_sampler_never_target_always_same_style(toy):
    pairs, _ = discover_pairs(toy)
    train, _ = split_pairs(pairs, 0.25, seed=0)
    sampler = RefSampler(train, k=3, seed=1)
    for t_index, target in enumerate(train):
        for epoch in range(5):
            refs = sampler.sample(target, (epoch, t_index))
            assert len(set(refs)) == 3
            assert all(train[i].label == target.label for i in refs)
            assert all(train[i].b != target.b and train[i].group != target.group for i in refs)
            wrong = sampler.wrong(target, (epoch, t_index))
            assert wrong is not None and len(wrong) == 3
            assert len({train[i].label for i in wrong}) == 1 and train[wrong[0]].label != target.label
    assert sampler.sample(train[0], (0, 0)) == sampler.sample(train[0], (0, 0))  # seeded


def test_dataset_items_and_same_crop_for_a_and_b(toy):
    data = build_pair_data(toy, 32, refs=2, val_fraction=0.25, seed=0)
    item = data.train[3]
    assert item["a"].shape == item["b"].shape == (3, 32, 32) and item["refs"].shape == (2, 3, 32, 32)
    assert -1 <= item["a"].min() and item["a"].max() <= 1 and 0 <= item["refs"].min()
    v = data.val[0]
    assert v["wrong_refs"].shape == (2, 3, 32, 32)
    # content is white where B has no shape... the structure edge must sit at the same place in A and B
    a_edges = (item["a"][0, :, 1:] - item["a"][0, :, :-1]).abs() > 0.2
    assert a_edges.any()


def test_folders_and_aligned_layouts(tmp_path, toy):
    folders = tmp_path / "folders"
    for style in ("pop", "checks"):
        for img in sorted((toy / style).glob("*.png"))[:4]:
            (folders / "B" / style).mkdir(parents=True, exist_ok=True)
            Image.open(img).save(folders / "B" / style / img.name)
    (folders / "A").mkdir()
    for img in sorted((toy / "content").glob("*.png"))[:4]:
        Image.open(img).save(folders / "A" / img.name)
    pairs, fmt = discover_pairs(folders)
    assert fmt == "folders" and len(pairs) == 8 and {p.label for p in pairs} == {"pop", "checks"}

    aligned = tmp_path / "aligned"
    (aligned / "train").mkdir(parents=True)
    rows = ["path,label,split"]
    for i, img in enumerate(sorted((toy / "pop").glob("*.png"))[:4]):
        a, b = Image.open(toy / "content" / img.name), Image.open(img)
        both = Image.new("RGB", (64, 32))
        both.paste(a, (0, 0))
        both.paste(b, (32, 0))
        both.save(aligned / "train" / img.name)
        rows.append(f"train/{img.name},pop,{'val' if i == 0 else 'train'}")
    (aligned / "manifest.csv").write_text("\n".join(rows) + "\n")
    data = build_pair_data(aligned, 32, refs=2, seed=0)
    assert data.fmt == "aligned" and len(data.train) == 3 and len(data.val) == 1
    item = data.val[0]  # the manifest's val row: the first pop layout, A half = its content image
    first = sorted((toy / "pop").glob("*.png"))[0].name
    a_ref = pil_to_tensor(Image.open(toy / "content" / first).convert("RGB")) * 2 - 1
    torch.testing.assert_close(item["a"], a_ref, atol=0.02, rtol=0)


# -------------------------------------------------------------------------------------- networks
def test_unet_256_matches_junyanz_and_512_shape_path():
    from stylekit.nets.patchgan import PatchGAN
    from stylekit.nets.unet import GeneratorConfig, RefUNet, UNet

    assert sum(p.numel() for p in UNet(256).parameters()) == 54_413_955  # junyanz unet_256: 54.414 M
    d = PatchGAN()
    assert sum(p.numel() for p in d.parameters()) == 2_768_705  # basic D: 2.769 M
    assert d(torch.zeros(1, 3, 256, 256), torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)

    for inject in ("adain", "concat"):
        g = RefUNet(GeneratorConfig(size=512, ngf=2, style_dim=8, refs=2, ref_size=32, ref_inject=inject),
                    grad_checkpoint=True)
        assert g.unet.depth == 9
        a, refs = torch.randn(1, 3, 512, 512), torch.rand(1, 2, 3, 32, 32)
        y = g(a, refs)
        assert y.shape == (1, 3, 512, 512) and y.abs().max() <= 1
        y.mean().backward()
        assert g.encoder.cnn.stages[0][0].weight.grad is not None
    plain = RefUNet(GeneratorConfig(size=32, ngf=4, refs=0))
    assert plain.encoder is None and plain(torch.randn(2, 3, 32, 32)).shape == (2, 3, 32, 32)


def test_references_change_the_output_once_conditioning_is_nonzero():
    from stylekit.nets.unet import GeneratorConfig, RefUNet, inference_mode

    torch.manual_seed(0)
    g = RefUNet(GeneratorConfig(size=32, ngf=4, style_dim=8, refs=2, ref_size=32, norm="instance"))
    a = torch.randn(1, 3, 32, 32)
    r1, r2 = torch.rand(1, 2, 3, 32, 32), torch.rand(1, 2, 3, 32, 32) * 0.2
    with inference_mode(g):
        assert torch.equal(g(a, r1), g(a, r2))  # zero-initialised heads: starts as plain pix2pix
        for up in g.unet.ups:
            if up.affine is not None:
                torch.nn.init.normal_(up.affine.weight, 0, 0.5)
        assert not torch.allclose(g(a, r1), g(a, r2))
        assert torch.equal(g(a, r1), g(a, r1))  # inference is deterministic (dropout off)


# ------------------------------------------------------------------------------------------- CLI
def test_cli_end_to_end_outputs_and_transfer(toy, tmp_path):
    out = tmp_path / "run"
    res = _cli(["train-pix2pix", str(toy), "--out", str(out), "--refs", "2", "--epochs", "2", "--decay-epochs", "1",
                "--json", *TINY])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["epochs"] == 2 and doc["steps"] == 2 * 18 and doc["styles"] == 3  # --epochs is the total
    assert "train-pix2pix: plan 2 epochs x 18 steps, 36 steps in total (constant lr for 1, linear decay over the last 1)" in res.stderr
    assert doc["val_l1"] > 0 and doc["val_l1_wrong_refs"] > 0
    for name in ("generator.safetensors", "generator.json", "loss_curves.png", "metrics.jsonl", "config.json",
                 "samples/epoch-0001.png", "samples/epoch-0002.png"):
        assert (out / name).is_file(), name
    grid = Image.open(out / "samples" / "epoch-0002.png")
    assert grid.size[0] > 5 * 128 and grid.size[1] > 2 * 128  # structure | 2 refs | output | target, 32 px shown at 128
    header = np.asarray(grid.convert("L"))[:12]
    assert (header < 128).sum() > 50  # the column headers are drawn above the cells
    epochs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"epoch"' in x]
    ep = [r for r in epochs if r.get("kind") == "epoch"]
    assert [r["epoch"] for r in ep] == [1, 2] and all("val_l1_wrong_refs" in r for r in ep)
    assert ep[0]["lr"] == pytest.approx(2e-4 * 0.5) and ep[1]["lr"] == pytest.approx(0.0)  # linear decay
    # a finished run re-run: nothing more to train
    again = _cli(["train-pix2pix", str(toy), "--out", str(out), "--refs", "2", "--epochs", "2", "--decay-epochs", "1",
                  "--json", *TINY])
    assert again.exit_code == 0 and json.loads(again.stdout)["steps"] == doc["steps"]
    # extending the schedule of a finished run trains the new epoch at the re-evaluated lr (not the old final 0)
    from safetensors.torch import load_file

    before = load_file(str(out / "generator.safetensors"))
    more = _cli(["train-pix2pix", str(toy), "--out", str(out), "--refs", "2", "--epochs", "3", "--decay-epochs", "1",
                 "--json", *TINY])
    assert more.exit_code == 0, more.output
    after = load_file(str(out / "generator.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before if "running_" not in k and "num_batches" not in k)

    from stylekit.configs.transfer import TransferConfig
    from stylekit.transfer import run_transfer

    def stylize(content, styles, dest):
        return run_transfer(TransferConfig(content=content, styles=list(styles), out=dest, method="pix2pix", model=out, device="cpu"))

    styles = sorted((toy / "pop").glob("*.png"))[:3]
    rep = stylize(toy / "content", styles, tmp_path / "styled")
    assert rep.done == 8 and rep.method == "pix2pix"
    assert Image.open(tmp_path / "styled" / "00000.png").size == (32, 32)
    rep2 = _cli(["transfer", str(toy / "content"), *map(str, styles), "--method", "pix2pix", "--model", str(out),
                 "--out", str(tmp_path / "styled"), "--device", "cpu", "--json"])  # the CLI route
    assert rep2.exit_code == 0, rep2.output
    doc2 = json.loads(rep2.stdout)
    assert doc2["done"] == 0 and doc2["skipped"] == 8 and doc2["method"] == "pix2pix"  # up-to-date outputs skipped
    other_refs = _cli(["transfer", str(toy / "content"), str(styles[0]), "--method", "pix2pix", "--model", str(out),
                       "--out", str(tmp_path / "styled"), "--device", "cpu"])  # other references: stale outputs refused
    assert other_refs.exit_code == 2 and "--fresh" in other_refs.stderr
    no_model = _cli(["transfer", str(toy / "content"), str(styles[0]), "--method", "pix2pix", "--out", str(tmp_path / "x")])
    assert no_model.exit_code == 2 and "--model" in no_model.stderr
    one = stylize(toy / "content" / "00001.png", styles[:1], tmp_path / "one.png")
    assert one.done == 1 and (tmp_path / "one.png").is_file()


def test_resume_mid_epoch_equals_uninterrupted(toy, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from stylekit.train.runner import TrainRunner

    args = ["--refs", "1", "--epochs", "2", "--decay-epochs", "1", "--json", *TINY]
    full = tmp_path / "full"
    assert _cli(["train-pix2pix", str(toy), "--out", str(full), *args]).exit_code == 0

    cut = tmp_path / "cut"
    real_should_stop = TrainRunner.should_stop
    calls = {"n": 0}

    def stop_at_step_25(self):
        calls["n"] += 1
        return calls["n"] == 25 or real_should_stop(self)

    monkeypatch.setattr(TrainRunner, "should_stop", stop_at_step_25)
    res = _cli(["train-pix2pix", str(toy), "--out", str(cut), *args])
    assert res.exit_code == 130, res.output
    monkeypatch.setattr(TrainRunner, "should_stop", real_should_stop)
    latest = (cut / "checkpoints" / "latest").read_text().strip()
    meta = json.loads((cut / "checkpoints" / latest / "meta.json").read_text())
    assert meta["counters"]["epoch"] == 1 and meta["counters"]["batch"] == 6  # call 25 = step 24 (one call per step + one at the epoch end)
    res = _cli(["train-pix2pix", str(toy), "--out", str(cut), *args])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["resumed_from_step"] == 24
    a, b = load_file(str(full / "generator.safetensors")), load_file(str(cut / "generator.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6)
    m_full = [json.loads(x) for x in (full / "metrics.jsonl").read_text().splitlines()]
    m_cut = [json.loads(x) for x in (cut / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in m_full] == [r["step"] for r in m_cut]
    assert m_cut[-1]["val_l1"] == pytest.approx(m_full[-1]["val_l1"], rel=1e-5)


# ------------------------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize("size", ["48", "33", "16"])
def test_bad_size_exit_2(toy, tmp_path, size):
    res = _cli(["train-pix2pix", str(toy), "--out", str(tmp_path / "r"), "--size", size, "--device", "cpu"])
    assert res.exit_code == 2 and "power of two" in res.output


def test_ab_mismatch_lists_names(tmp_path, toy):
    data = tmp_path / "ab"
    (data / "A").mkdir(parents=True)
    (data / "B").mkdir()
    for img in sorted((toy / "pop").glob("*.png"))[:5]:
        Image.open(img).save(data / "B" / img.name)
    for img in sorted((toy / "content").glob("*.png"))[:4]:
        Image.open(img).save(data / "A" / img.name)
    Image.open(toy / "content" / "00007.png").save(data / "A" / "extra.png")
    res = _cli(["train-pix2pix", str(data), "--out", str(tmp_path / "r"), *TINY])
    assert res.exit_code == 2
    assert "A/B mismatch" in res.output and "00004.png" in res.output and "extra.png" in res.output


def test_odd_width_aligned_exit_2(tmp_path):
    data = tmp_path / "aligned"
    data.mkdir()
    Image.new("RGB", (65, 32)).save(data / "odd.png")
    Image.new("RGB", (64, 32)).save(data / "fine.png")
    res = _cli(["train-pix2pix", str(data), "--out", str(tmp_path / "r"), *TINY])
    assert res.exit_code == 2 and "odd.png" in res.output and "odd width" in res.output


def test_square_single_images_need_evidence_of_pairing(tmp_path, toy):
    """A classifier's prepared folder (square single images) is not read as A|B halves without --layout aligned."""
    from stylekit.configs.prepare import PrepareConfig
    from stylekit.data.prepare import prepare

    prepared = tmp_path / "prepared"
    prepare(PrepareConfig(src=toy, out=prepared, exclude=("content",)))
    res = _cli(["train-pix2pix", str(prepared), "--out", str(tmp_path / "r"), *TINY])
    assert res.exit_code == 2, res.output
    assert str(prepared) in res.output and "--layout aligned" in res.output and "--format pairs" in res.output
    assert not (tmp_path / "r").exists()
    data = build_pair_data(prepared, 32, refs=0, seed=0, layout="aligned")  # asked for explicitly: accepted
    assert data.fmt == "aligned" and data.n_pairs == 24


def test_prepare_pairs_output_is_detected_as_aligned(tmp_path, toy):
    from stylekit.configs.prepare import PrepareConfig
    from stylekit.data.prepare import prepare

    out = tmp_path / "pairs"
    prepare(PrepareConfig(src=toy / "content", out=out, format="pairs", pair_with=toy, exclude=("content",)))
    pairs, fmt = discover_pairs(out)
    assert fmt == "aligned" and len(pairs) == 24


def test_style_with_too_few_references_says_how_many(tmp_path):
    data = tmp_path / "few"
    generate_toy_styles(data, size=32, per_style=4, styles=2, seed=0)
    res = _cli(["train-pix2pix", str(data), "--out", str(tmp_path / "r"), "--refs", "5", "--val-fraction", "0",
                *TINY[:-4]])
    assert res.exit_code == 2
    assert "has only 3 other image(s)" in res.output and "--refs 5" in res.output
    assert not (tmp_path / "r").exists()  # checked before the run directory is created


def test_bad_options_exit_2(toy, tmp_path):
    for flag, value in (("--gan-mode", "wgan"), ("--norm", "group"), ("--ref-inject", "film"),
                        ("--ref-encoder", "resnet"), ("--direction", "AtoC")):
        res = _cli(["train-pix2pix", str(toy), "--out", str(tmp_path / "r"), flag, value, *TINY])
        assert res.exit_code == 2, (flag, res.output)


def test_vgg_encoder_offline_exit_3(toy, tmp_path):
    res = _cli(["train-pix2pix", str(toy), "--out", str(tmp_path / "r"), "--ref-encoder", "vgg19", "--refs", "1",
                "--epochs", "1", "--decay-epochs", "0", *TINY])
    assert res.exit_code == 3 and "stylekit download vgg19" in res.output


def test_real_subprocess_plain_pix2pix(toy, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(VENV_BIN / "stylekit"), "train-pix2pix", str(toy), "--out", str(tmp_path / "r"),
                           "--refs", "0", "--epochs", "1", "--decay-epochs", "0", "--json", *TINY],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["refs"] == 0 and doc["val_l1"] > 0 and doc["val_l1_wrong_refs"] is None
