"""train-classifier: sampler, data splits, bad inputs, CLI end to end, resume, export/load round trip."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.configs.classifier import ClassifierConfig
from stylekit.data.datasets import load_style_splits
from stylekit.data.images import load_tensor
from stylekit.data.sampling import BalancedBatchSampler, ShuffledBatchSampler, derive_pk
from stylekit.data.toy import generate_toy_styles
from stylekit.errors import BadInput, Interrupted
from stylekit.metrics.style import load_style_model
from stylekit.train.classifier import embed_items, train_classifier

VENV_BIN = Path(__file__).resolve().parents[1] / ".venv" / "bin"
TINY = dict(epochs=2, batch=8, size=32, seed=0, workers=0)
TINY_FLAGS = ["--epochs", "2", "--batch", "8", "--size", "32", "--seed", "0", "--workers", "0"]


@pytest.fixture(scope="session")
def toy(tmp_path_factory) -> Path:
    """3 styles x 12 layouts at 32px (+ the unstyled content folder, which is not a class)."""
    out = tmp_path_factory.mktemp("toy") / "toy"
    generate_toy_styles(out, size=32, per_style=12, styles=3, seed=0)
    return out


@pytest.fixture(scope="session")
def trained(toy, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "ref"
    train_classifier(ClassifierConfig(data=toy, out=out, **TINY))
    return out


def _weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "style_model.safetensors"))


def _interleave(a: list[int], b: list[int]) -> list[int]:
    """The global batch from rank 0's and rank 1's shares (rows r, r + 2, r + 4, ...)."""
    return [x for pair in zip(a, b, strict=True) for x in pair]


# --------------------------------------------------------------------------------------- sampling
def test_balanced_sampler_every_batch_has_positives_and_ranks_share_it():
    labels = [0] * 50 + [1] * 7 + [2] * 3 + [3] * 20  # imbalanced; class 2 smaller than K
    full = BalancedBatchSampler(labels, classes_per_batch=2, per_class=4, seed=3)
    full.set_epoch(1)
    batches = list(full)
    assert len(batches) == len(labels) // 8
    for b in batches:
        classes = [labels[i] for i in b]
        assert len(b) == 8 and len(set(classes)) == 2
        assert all(classes.count(c) == 4 for c in set(classes))  # K positives per class
        for c in set(classes):
            members = [i for i in b if labels[i] == c]
            if labels.count(c) >= 4:
                assert len(set(members)) == 4  # no repeats when the class is big enough
    shares = []
    for rank in range(2):
        s = BalancedBatchSampler(labels, 2, 4, seed=3, world_size=2, rank=rank)
        s.set_epoch(1)
        shares.append(list(s))
    assert [_interleave(a, b) for a, b in zip(*shares, strict=True)] == batches
    for share in shares[0] + shares[1]:  # every rank sees every class of the P x K batch (BatchNorm, SupCon)
        assert len({labels[i] for i in share}) == 2
    again = BalancedBatchSampler(labels, 2, 4, seed=3)
    again.set_epoch(1)
    assert list(again) == batches
    again.set_epoch(2)
    assert list(again) != batches
    again.set_epoch(1, start_batch=3)
    assert list(again) == batches[3:]


def test_balanced_sampler_covers_each_class_before_repeating():
    labels = [0] * 8 + [1] * 8
    s = BalancedBatchSampler(labels, 2, 4, seed=0, batches_per_epoch=2)
    seen = [i for b in s for i in b]
    assert sorted(seen) == list(range(16))


def test_shuffled_sampler_and_pk():
    full = ShuffledBatchSampler(10, 4, seed=1)
    batches = list(full)
    assert len(batches) == 2 and len({i for b in batches for i in b}) == 8
    r0, r1 = (list(ShuffledBatchSampler(10, 4, seed=1, world_size=2, rank=r)) for r in (0, 1))
    assert [_interleave(a, b) for a, b in zip(r0, r1, strict=True)] == batches
    with pytest.raises(BadInput, match="divisible"):
        ShuffledBatchSampler(10, 3, world_size=2)
    assert derive_pk(64, 27, None, None) == (16, 4)
    assert derive_pk(64, 8, None, None) == (8, 8)
    assert derive_pk(64, 27, 8, None) == (8, 8)
    assert derive_pk(64, 27, None, 2) == (27, 2)
    with pytest.raises(BadInput, match="classes-per-batch"):
        BalancedBatchSampler([0, 0, 1, 1], 3, 2)


# ------------------------------------------------------------------------------------------ data
def test_splits_are_stratified_seeded_and_skip_toy_content(toy):
    a = load_style_splits(toy, seed=0)
    b = load_style_splits(toy, seed=0)
    c = load_style_splits(toy, seed=1)
    assert a.classes == ["checks", "pop", "stripes"]  # no 'content'
    assert a.items == b.items and a.items["test"] != c.items["test"]
    assert a.counts() == {"train": 30, "val": 3, "test": 3}
    for split in ("train", "val", "test"):
        assert set(a.labels(split)) == {0, 1, 2}


def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


def test_bad_inputs(tmp_path, toy):
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "a.png").write_bytes((toy / "pop" / "00000.png").read_bytes())
    r = _cli("train-classifier", str(loose), "--out", str(tmp_path / "o1"))
    assert r.exit_code == 2 and "labels missing" in r.output

    single = tmp_path / "single" / "pop"
    single.mkdir(parents=True)
    for i in range(3):
        (single / f"{i}.png").write_bytes((toy / "pop" / f"{i:05d}.png").read_bytes())
    r = _cli("train-classifier", str(single.parent), "--out", str(tmp_path / "o2"))
    assert r.exit_code == 2 and "need at least 2 classes" in r.output

    r = _cli("train-classifier", str(toy), "--out", str(tmp_path / "o3"), "--split", "1,0,0")
    assert r.exit_code == 2 and "val split" in r.output

    r = _cli("train-classifier", str(toy), "--out", str(tmp_path / "o4"), "--loss", "triplet")
    assert r.exit_code == 2 and "--loss" in r.output

    r = _cli("train-classifier", str(tmp_path / "nope"), "--out", str(tmp_path / "o5"))
    assert r.exit_code == 2 and "does not exist" in r.output

    r = _cli("train-classifier", str(toy), "--out", str(tmp_path / "o6"), "--backbone", "resnet50", "--pretrained")
    assert r.exit_code == 3 and "stylekit download resnet50" in r.output

    r = _cli("train-classifier", str(toy), "--out", str(tmp_path / "o7"), "--backbone", "timm:resnet18", "--pretrained")
    assert r.exit_code == 3 and "--backbone-weights" in r.output
    assert not (tmp_path / "o1").exists() or not any((tmp_path / "o1").glob("*.safetensors"))


def test_corrupt_images_are_skipped_and_reported(tmp_path, toy):
    data = tmp_path / "data"
    for style in ("pop", "stripes"):
        (data / style).mkdir(parents=True)
        for i in range(6):
            (data / style / f"{i}.png").write_bytes((toy / style / f"{i:05d}.png").read_bytes())
    (data / "pop" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    splits = load_style_splits(data, seed=0)
    assert [Path(s.path).name for s in splits.report.skipped] == ["broken.png"]
    assert sum(splits.counts().values()) == 12
    r = _cli("train-classifier", str(data), "--out", str(tmp_path / "run"), "--epochs", "1", "--batch", "4",
             "--size", "32", "--split", "0.5,0.25,0.25", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout[r.stdout.index("{"):])
    assert [Path(s["path"]).name for s in doc["images"]["skipped"]] == ["broken.png"]


# ------------------------------------------------------------------------------- train end to end
def test_cli_end_to_end_outputs(trained, toy, tmp_path):
    out = tmp_path / "cli"
    r = _cli("train-classifier", str(toy), "--out", str(out), *TINY_FLAGS, "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout[r.stdout.index("{"):])
    assert doc["classes"] == ["checks", "pop", "stripes"] and doc["epochs"] == 2 and doc["steps"] == 6
    for name in ("config.json", "metrics.jsonl", "test_metrics.json", "per_class_accuracy.json", "per_class_accuracy.csv",
                 "confusion_matrix.png", "curves.png", "neighbours.png", "style_model.json", "style_model.safetensors"):
        assert (out / name).is_file(), name
    with Image.open(out / "neighbours.png") as sheet:  # one labelled row per style, cells at least 128 px
        assert sheet.size[1] >= 3 * 128 and sheet.size[0] >= 6 * 128
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for key in ("train_loss", "train_ce", "train_supcon", "val_top1", "val_top5", "val_macro_f1", "val_map@10", "val_recall@1"):
        assert key in records[-1], key
    test = json.loads((out / "test_metrics.json").read_text())
    assert test["split"] == "test" and test["n"] == 3 and test["database"] == 30
    assert 0 <= test["top1"] <= 1 and 0 <= test["map@10"] <= 1
    assert doc["test"]["top1"] == test["top1"]
    # the CLI and the library give the same model for the same options
    ref = _weights(trained)
    got = _weights(out)
    assert all(torch.equal(ref[k], got[k]) for k in ref)


def test_resume_mid_training_equals_uninterrupted(trained, toy, tmp_path):
    out = tmp_path / "resume"
    cfg = ClassifierConfig(data=toy, out=out, stop_after_steps=4, **TINY)
    with pytest.raises(Interrupted):
        train_classifier(cfg)
    assert not (out / "style_model.json").exists()
    result = train_classifier(ClassifierConfig(data=toy, out=out, **TINY))
    assert result.resumed and result.steps == 6
    ref, got = _weights(trained), _weights(out)
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=0, atol=0)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]


def test_export_load_round_trip_identical_embeddings(trained, toy):
    model = load_style_model(trained)
    assert model.classes == ["checks", "pop", "stripes"] and model.size == 32 and model.embed_dim == 256
    splits = load_style_splits(toy, seed=0)
    items = splits.items["test"]
    images = torch.stack([load_tensor(p) for p, _ in items])
    z = model.embed(images)
    assert z.shape == (3, 256)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(3))
    emb, logits, _ = embed_items(model.net, items, 32, 8, torch.device("cpu"))
    torch.testing.assert_close(z, emb, rtol=0, atol=0)
    torch.testing.assert_close(model.classify(images), logits, rtol=0, atol=0)
    again = load_style_model(trained / "style_model.json")
    assert torch.equal(again.embed(images), z)
    big = torch.nn.functional.interpolate(images, size=(50, 70), mode="bilinear")
    assert model.embed(big).shape == (3, 256)  # any input size
    meta = json.loads((trained / "style_model.json").read_text())
    for key in ("backbone", "size", "mean", "std", "classes", "embed_dim", "stylekit_version"):
        assert key in meta


def test_load_style_model_missing(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        load_style_model(tmp_path / "missing")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "style_model.safetensors").write_bytes(b"")
    with pytest.raises(BadInput, match="style_model.json missing"):
        load_style_model(tmp_path / "half")


def test_eval_only_from_run_dir(trained, toy, tmp_path):
    out = tmp_path / "eval"
    r = _cli("train-classifier", str(toy), "--eval-only", "--style-model", str(trained), "--out", str(out), "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout[r.stdout.index("{"):])
    ref = json.loads((trained / "test_metrics.json").read_text())
    assert doc["eval_only"] and doc["test"]["top1"] == pytest.approx(ref["top1"])
    assert doc["test"]["map@10"] == pytest.approx(ref["map@10"])
    assert (out / "confusion_matrix.png").is_file() and (out / "style_model.json").is_file()
    r = _cli("train-classifier", str(toy), "--eval-only", "--out", str(tmp_path / "e2"))
    assert r.exit_code == 2 and "--style-model" in r.output


def test_real_subprocess(toy, tmp_path):
    out = tmp_path / "sub"
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.run(
        [str(VENV_BIN / "stylekit"), "train-classifier", str(toy), "--out", str(out), "--epochs", "1", "--batch", "8",
         "--size", "32", "--loss", "ce", "--json"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["epochs"] == 1 and doc["test"]["n"] == 3
    meta = json.loads((out / "style_model.json").read_text())
    assert meta["embedding"] == "features" and meta["loss"] == "ce"


def test_backbones_build_offline_and_load_local_weights(tmp_path):
    import torchvision

    from stylekit.nets.backbones import build_backbone
    from stylekit.weights import REGISTRY

    ref = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), path)
    bb = build_backbone("resnet18", weights=str(path))
    assert bb.dim == 512 and bb.norm[0] == (0.485, 0.456, 0.406)
    assert torch.equal(bb.module.conv1.weight, ref.conv1.weight)
    x = torch.rand(2, 3, 64, 64)
    assert bb.module.eval()(x).shape == (2, 512)
    t = build_backbone("timm:resnet18", pretrained=False)
    assert t.dim == 512 and t.module.eval()(x).shape == (2, 512)
    small = build_backbone("small-cnn")
    assert small.module(x).shape == (2, small.dim)
    with pytest.raises(BadInput, match="do not match"):
        build_backbone("resnet34", weights=str(path))
    with pytest.raises(BadInput, match="unknown --backbone"):
        build_backbone("resnet51")
    spec = REGISTRY["resnet50"]
    assert spec.sha256_prefix == "11ad3fa6" and spec.filename == "resnet50-11ad3fa6.pth"


def test_freeze_backbone_epochs_keeps_backbone_fixed(toy, tmp_path):
    from stylekit.io.checkpoint import CheckpointManager, read_checkpoint
    from stylekit.nets.style_embedding import StyleNet, StyleNetConfig
    from stylekit.train import seed_everything

    out = tmp_path / "freeze"
    train_classifier(ClassifierConfig(data=toy, out=out, freeze_backbone_epochs=1, **TINY))
    first, last = CheckpointManager(out / "checkpoints").list()[:2]
    after1 = read_checkpoint(first.path).tensors["model"]
    after2 = read_checkpoint(last.path).tensors["model"]
    seed_everything(0, 0)
    init = StyleNet(StyleNetConfig("small-cnn", 3, 256)).state_dict()
    backbone = [k for k in init if k.startswith("backbone.")]
    heads = [k for k in init if k.startswith(("classifier.", "projection."))]
    assert all(torch.equal(after1[k], init[k]) for k in backbone)  # frozen in epoch 1
    assert any(not torch.equal(after1[k], init[k]) for k in heads)
    assert any(not torch.equal(after2[k], after1[k]) for k in backbone)  # trained in epoch 2


def test_prepared_manifest_splits_and_missing_labels(tmp_path, toy, monkeypatch):
    data = tmp_path / "prep"
    rows = ["path,label,split"]
    for style in ("pop", "stripes"):
        (data / style).mkdir(parents=True)
        for i, split in enumerate(["train", "train", "train", "val", "test"]):
            (data / style / f"{i}.png").write_bytes((toy / style / f"{i:05d}.png").read_bytes())
            rows.append(f"{style}/{i}.png,{style},{split}")
    (data / "manifest.csv").write_text("\n".join(rows) + "\n")
    splits = load_style_splits(data)
    assert splits.source == "manifest" and splits.counts() == {"train": 6, "val": 2, "test": 2}
    assert splits.classes == ["pop", "stripes"]
    monkeypatch.chdir(tmp_path)  # a relative DATA path (as `make demo` passes) resolves the same files
    assert load_style_splits(Path("prep")).counts() == {"train": 6, "val": 2, "test": 2}
    (data / "manifest.csv").write_text("\n".join(rows + ["pop/0.png,,train"]) + "\n")
    with pytest.raises(BadInput, match="labels missing"):
        load_style_splits(data)
    (data / "manifest.csv").write_text("\n".join([r for r in rows if not r.endswith(",test")]) + "\n")
    with pytest.raises(BadInput, match="the test split .* is empty"):
        load_style_splits(data).require("train", "val", "test")


def test_class_without_readable_images_is_left_out_with_a_warning(tmp_path, toy, capsys):
    data = tmp_path / "data"
    for style in ("pop", "stripes"):
        shutil.copytree(toy / style, data / style)
    (data / "broken").mkdir()
    for i in range(4):
        (data / "broken" / f"{i}.png").write_text("not an image")
    splits = load_style_splits(data)
    assert splits.classes == ["pop", "stripes"] and len(splits.report.skipped) == 4
    assert "broken have no readable image" in capsys.readouterr().err


def test_train_split_embedded_once_per_epoch_not_again_for_the_test_report(toy, tmp_path, monkeypatch):
    """The final report reuses the last epoch's train-split embedding (same weights, no step since);
    test_eval_only_from_run_dir checks that the metrics equal a fresh embedding."""
    import stylekit.train.classifier as C

    splits = load_style_splits(toy, seed=0)
    train_n = len(splits.items["train"])
    sizes: list[int] = []

    def counting(net, items, *args, **kwargs):
        sizes.append(len(items))
        return embed_items(net, items, *args, **kwargs)

    monkeypatch.setattr(C, "embed_items", counting)
    result = train_classifier(ClassifierConfig(data=toy, out=tmp_path / "once", **TINY))
    assert result.epochs == TINY["epochs"]
    assert sizes.count(train_n) == TINY["epochs"]  # one per epoch; none extra for the test report
    assert len(sizes) == 2 * TINY["epochs"] + 1  # + val per epoch + test once


def test_default_workers_use_the_spare_cores_on_cpu(monkeypatch):
    import stylekit.train.classifier as C

    cfg = ClassifierConfig(data=Path("."), out=Path("o"))
    for cores, expected in ((1, 0), (2, 1), (16, 4)):
        monkeypatch.setattr(C.os, "cpu_count", lambda cores=cores: cores)
        assert C._default_workers(cfg, torch.device("cpu")) == expected
    assert C._default_workers(ClassifierConfig(data=Path("."), out=Path("o"), workers=0), torch.device("cpu")) == 0


# ------------------------------------------------------------------------------------- edge rules
@pytest.mark.parametrize("args, names", [
    (["--embed-dim", "1000000000"], "--embed-dim"),
    (["--loss", "supcn"], "--loss"),
    (["--split", "0.5,0.5"], "--split"),
    (["--backbone", "resnet9000"], "--backbone"),
    (["--pretrained"], "--pretrained"),
    (["--backbone", "resnet18", "--backbone-weights", "random", "--pretrained"], "--backbone-weights random"),
    (["--per-class", "2", "--no-balanced-sampler"], "--no-balanced-sampler"),
    (["--classes-per-batch", "2", "--per-class", "2", "--batch", "8"], "--batch 4"),
    (["--freeze-backbone-epochs", "3", "--epochs", "2"], "--freeze-backbone-epochs"),
    (["--style-model", "runs/x"], "--eval-only"),
    (["--eval-only", "--style-model", "runs/x", "--epochs", "5", "--backbone", "resnet18"], "--backbone and --epochs"),
    (["--eval-split", "val"], "--eval-split"),
    (["--backbone", "vit_b_16", "--size", "32"], "--size 224"),
])
def test_a_refused_option_is_exit_2_and_leaves_no_folder(toy, tmp_path, args, names):
    out = tmp_path / "never"
    r = _cli("train-classifier", str(toy), "--out", str(out), *args)
    assert r.exit_code == 2, r.output
    assert names in r.output
    assert not out.exists()


def test_bad_data_leaves_no_folder(tmp_path):
    out = tmp_path / "never"
    r = _cli("train-classifier", str(tmp_path / "nope"), "--out", str(out))
    assert r.exit_code == 2 and "does not exist" in r.output and not out.exists()


def test_busy_out_is_refused_before_the_plan_is_printed(toy, tmp_path):
    from stylekit.io.rundir import RunDir

    out = tmp_path / "busy"
    with RunDir(out):
        r = _cli("train-classifier", str(toy), "--out", str(out), *TINY_FLAGS)
    assert r.exit_code == 75, r.output
    assert "plan" not in r.stderr.lower() and "classes" not in r.stderr


def test_backbone_weights_random_is_a_labelled_stand_in(toy, tmp_path):
    out = tmp_path / "r18"
    r = _cli("train-classifier", str(toy), "--out", str(out), "--backbone", "resnet18", "--backbone-weights", "random",
             "--epochs", "1", "--batch", "8", "--size", "32", "--workers", "0", "--loss", "ce", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["stand_ins"] == ["--backbone-weights random"]
    assert "random-init stand-in" in r.stderr
    assert json.loads((out / "config.json").read_text())["pretrained"] is False


def test_rerun_of_a_finished_run_trains_nothing_and_says_so(trained, toy, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(trained, out)
    before = _weights(out)
    r = _cli("train-classifier", str(toy), "--out", str(out), *TINY_FLAGS, "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["resumed"] and doc["steps"] == 6
    assert "nothing to train" in r.stderr
    after = _weights(out)
    assert all(torch.equal(before[k], after[k]) for k in before)
    records = (out / "metrics.jsonl").read_text().splitlines()
    assert len(records) == 2  # no epoch appended
