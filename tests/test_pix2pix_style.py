"""train-pix2pix --ref-cls-weight/--ref-metric-weight: the reference code trained and exported as a style model."""

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.data.pairs import build_pair_data
from stylekit.data.toy import generate_toy_styles

TINY = ["--size", "32", "--ngf", "8", "--ndf", "8", "--style-dim", "16", "--device", "cpu", "--seed", "0",
        "--val-fraction", "0.25", "--samples", "2", "--refs", "2", "--epochs", "1", "--decay-epochs", "0"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("p2p-style") / "toy"
    generate_toy_styles(out, size=32, per_style=8, styles=3, seed=0)
    return out


def _cli(args):
    return CliRunner().invoke(app, args)


def test_training_items_carry_references_of_another_style(toy):
    data = build_pair_data(toy, 32, 2, seed=0, style_negatives=True)
    labels = data.train.sampler.labels
    for index in range(0, len(data.train), 5):
        item = data.train[index]
        pair = data.train.pairs[index]
        assert labels[int(item["ref_style"])] == pair.label
        assert int(item["neg_style"]) != int(item["ref_style"])
        assert item["neg_refs"].shape == item["refs"].shape == (2, 3, 32, 32)
    assert "neg_refs" not in data.val[0]  # validation keeps its own wrong-style control


def test_style_losses_train_and_export_a_style_model(toy, tmp_path):
    from stylekit.metrics.style import load_style_model
    from stylekit.nets.unet import GeneratorConfig, RefUNet

    out = tmp_path / "run"
    res = _cli(["train-pix2pix", str(toy), "--out", str(out), "--ref-cls-weight", "1", "--ref-metric-weight", "0.5",
                "--json", *TINY])
    assert res.exit_code == 0, res.output
    train = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in train if r.get("kind") == "train"]
    assert train and all(r["loss_ref_cls"] > 0 and r["loss_ref_metric"] > 0 for r in train)

    meta = json.loads((out / "style_model.json").read_text())
    assert meta["backbone"] == "pix2pix-ref:small-cnn:16:32" and meta["classes"] == sorted(meta["classes"])
    assert meta["classifier_head"] is True and meta["embedding"] == "features" and len(meta["classes"]) == 3
    model = load_style_model(out)
    images = torch.rand(5, 3, 32, 32)
    z = model.embed(images)
    assert z.shape == (5, 16) and torch.allclose(z.norm(dim=1), torch.ones(5), atol=1e-5)

    # the exported embedding is G's own reference code for a single reference image
    from safetensors.torch import load_file

    gen_meta = json.loads((out / "generator.json").read_text())
    g = RefUNet(GeneratorConfig(**gen_meta["generator"]))
    g.load_state_dict(load_file(str(out / "generator.safetensors")), strict=False)
    with torch.no_grad():
        code = torch.nn.functional.normalize(g.encoder.code(images), dim=1)
    assert torch.allclose(z, code, atol=1e-5)
    assert model.classify(images).shape == (5, 3)

    # score reads it like any style model
    styles = sorted(p for p in toy.iterdir() if p.is_dir() and p.name != "content")
    res = _cli(["score", str(styles[0]), str(styles[1]), "--metrics", "style", "--style-model", str(out), "--json"])
    assert res.exit_code == 0, res.output


def test_plain_reference_runs_export_an_untrained_classifier_flag(toy, tmp_path):
    out = tmp_path / "plain"
    res = _cli(["train-pix2pix", str(toy), "--out", str(out), *TINY])
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "style_model.json").read_text())
    assert meta["classifier_head"] is False and meta["ref_metric_weight"] == 0.0


def test_bad_style_loss_options_exit_2(toy, tmp_path):
    res = _cli(["train-pix2pix", str(toy), "--out", str(tmp_path / "a"), *TINY, "--refs", "0", "--ref-cls-weight", "1"])
    assert res.exit_code == 2 and "--refs >= 1" in res.output
    res = _cli(["train-pix2pix", str(toy), "--out", str(tmp_path / "b"), *TINY, "--ref-metric-weight", "-1"])
    assert res.exit_code == 2 and "--ref-metric-weight" in res.output
    one = tmp_path / "one"
    generate_toy_styles(one, size=32, per_style=6, styles=1, seed=0)
    res = _cli(["train-pix2pix", str(one), "--out", str(tmp_path / "c"), *TINY, "--ref-metric-weight", "1"])
    assert res.exit_code == 2 and "two styles" in res.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_style_model_export_leaves_the_training_rng_alone(tmp_path):
    """Exported at every epoch end on rank 0: reseeding the global RNG there would repeat dropout and
    augmentation every epoch and make rank 0's stream differ from the others'."""
    from safetensors.torch import load_file

    from stylekit.nets.unet import GeneratorConfig, RefUNet
    from stylekit.train.pix2pix_style import export_ref_style_model

    g = RefUNet(GeneratorConfig(size=32, ngf=4, style_dim=8, refs=1, ref_size=32, norm="instance"))
    torch.manual_seed(1234)
    expected = torch.rand(4)
    torch.manual_seed(1234)
    export_ref_style_model(g, None, ["a", "b"], tmp_path / "one", {})
    assert torch.equal(torch.rand(4), expected)  # the stream continues as if no export happened
    export_ref_style_model(g, None, ["a", "b"], tmp_path / "two", {})
    one, two = (load_file(str(p / "style_model.safetensors")) for p in (tmp_path / "one", tmp_path / "two"))
    assert one.keys() == two.keys() and all(torch.equal(one[k], two[k]) for k in one)  # still reproducible
