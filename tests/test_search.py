"""`stylekit classify` and `stylekit similar`: top-k styles, the cached index, exact chunked search,
shared retrieval numbers with train-classifier, unseen-style retrieval, contact sheet, bad inputs."""

import csv
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.configs.classifier import ClassifierConfig
from stylekit.configs.search import ClassifyConfig, SimilarConfig
from stylekit.data.toy import generate_toy_styles
from stylekit.errors import BadInput
from stylekit.metrics import search as search_mod
from stylekit.metrics.retrieval import nearest_neighbours, neighbour_metrics, retrieval_metrics
from stylekit.metrics.search import classify_images, similar_images
from stylekit.metrics.style import META_NAME, WEIGHTS_NAME, load_style_model
from stylekit.train.classifier import train_classifier
from tests.cover.examples import help_examples

pytestmark = pytest.mark.usefixtures("one_thread")

STYLEKIT = str(Path(sys.executable).parent / "stylekit")
TRAINED = ("pop", "stripes", "checks")  # the styles the model sees
HELD_OUT = ("dots", "hatching")  # styles it never sees


@pytest.fixture(scope="session")
def toy5(tmp_path_factory) -> Path:
    """5 toy styles x 12 layouts at 32px, class folders only (the content folder removed)."""
    out = tmp_path_factory.mktemp("toy5") / "toy"
    generate_toy_styles(out, size=32, per_style=12, styles=5, seed=0)
    shutil.rmtree(out / "content")
    (out / "manifest.csv").unlink()
    return out


@pytest.fixture(scope="session")
def run(toy5, tmp_path_factory) -> Path:
    """A tiny style model trained on 3 of the 5 styles."""
    data = tmp_path_factory.mktemp("train") / "data"
    for style in TRAINED:
        shutil.copytree(toy5 / style, data / style)
    out = tmp_path_factory.mktemp("runs") / "style"
    train_classifier(ClassifierConfig(data=data, out=out, epochs=3, batch=12, size=32, seed=0, workers=0))
    return out


def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


# ------------------------------------------------------------------------------------- retrieval core


@pytest.mark.numerics
def test_chunked_search_over_collection_is_exact_and_excludes():
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(9, 5, generator=g), dim=1)
    db = F.normalize(torch.randn(300, 5, generator=g), dim=1)
    full = q @ db.T
    want_s, want_i = full.topk(7, dim=1)
    s, i = nearest_neighbours(q, db, 7, chunk=4, db_chunk=23)
    assert torch.equal(i, want_i) and torch.allclose(s, want_s)
    exclude = want_i[:, 0].clone()
    exclude[3] = -1  # this query keeps its best match
    s2, i2 = nearest_neighbours(q, db, 7, chunk=4, db_chunk=23, exclude=exclude)
    assert all(exclude[r] not in i2[r].tolist() for r in range(9) if exclude[r] >= 0)
    assert torch.equal(i2[:, :6][[r for r in range(9) if r != 3]], want_i[:, 1:7][[r for r in range(9) if r != 3]])
    assert torch.equal(i2[3], want_i[3])
    # Leave-one-out through `exclude` equals the classic exclude_self path, and the metrics agree.
    labels = torch.arange(300) % 4
    _, loo = nearest_neighbours(db, db, 5, exclude_self=True, db_chunk=17)
    m = neighbour_metrics(loo, labels, labels, 5, torch.arange(300))
    assert m == retrieval_metrics(db, labels, k=5)


# ------------------------------------------------------------------------------------- classify


def test_classify_topk_csv_and_cache(run, toy5, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two images and a missing one\n{toy5 / 'pop' / '00000.png'}\n../{tmp_path.name}/bad.png\nnope.png\n")
    out = tmp_path / "styles.csv"
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("00000.png", "00001.png"):
            zf.write(toy5 / "checks" / name, f"checks/{name}")
    cfg = ClassifyConfig(images=[str(toy5 / "stripes"), str(listing), str(archive)], style_model=str(run), k=2, out=str(out), device="cpu")
    first = classify_images(cfg)
    assert len(first.images) == 15 and first.k == 2
    assert first.images[-1]["path"] == f"{archive}::checks/00001.png"
    assert {s["reason"] for s in first.skipped} >= {"listed in list.txt but does not exist"}
    assert any(s["path"].endswith("bad.png") for s in first.skipped)
    model = load_style_model(run)
    img = torch.from_numpy(np.array(Image.open(toy5 / "pop" / "00000.png").convert("RGB"))).permute(2, 0, 1).float() / 255
    want = model.classify(img[None]).softmax(1)[0]
    row = next(r for r in first.images if r["path"].endswith("pop/00000.png"))
    top = want.topk(2)
    assert [t["style"] for t in row["top"]] == [model.classes[i] for i in top.indices.tolist()]
    assert [t["probability"] for t in row["top"]] == pytest.approx(top.values.tolist(), abs=1e-5)
    assert all(r["top"][0]["probability"] >= r["top"][1]["probability"] for r in first.images)
    with out.open() as fh:
        table = list(csv.reader(fh))
    assert table[0] == ["path", "style_1", "p_1", "style_2", "p_2"] and len(table) == 16
    # A rerun refuses to replace the CSV without --fresh; with it, every image (and the undecodable one)
    # comes from the cache.
    with pytest.raises(BadInput, match="--out already holds"):
        classify_images(cfg)
    again = classify_images(cfg.replace(fresh=True))
    assert again.features["computed"] == 0 and again.features["hits"] == 16
    assert again.images == first.images


def test_classify_cli_json_table_and_bad_inputs(run, toy5, tmp_path):
    result = _cli("classify", str(toy5 / "dots"), "--style-model", str(run), "-k", "9", "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["k"] == 3 and len(doc["images"]) == 12  # k is capped at the 3 classes
    assert sum(t["probability"] for t in doc["images"][0]["top"]) == pytest.approx(1.0, abs=1e-4)
    table = _cli("classify", str(toy5 / "dots" / "00001.png"), "--style-model", str(run), "--device", "cpu")
    assert table.exit_code == 0 and "00001.png" in table.output and "pop" in table.output

    assert _cli("classify", str(toy5 / "dots"), "--style-model", str(tmp_path / "none")).exit_code == 3
    assert _cli("classify", str(tmp_path / "missing"), "--style-model", str(run)).exit_code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    res = _cli("classify", str(empty), "--style-model", str(run))
    assert res.exit_code == 2 and "no images" in res.output
    (empty / "x.png").write_bytes(b"junk")
    res = _cli("classify", str(empty), "--style-model", str(run), "--device", "cpu")
    assert res.exit_code == 2 and "readable" in res.output
    assert _cli("classify", str(toy5 / "dots"), "--style-model", str(run), "-k", "0").exit_code == 2
    res = _cli("classify", str(toy5 / "dots"), "--style-model", str(run), "--out", str(tmp_path / "x.json"))
    assert res.exit_code == 2 and ".csv" in res.output
    assert not (tmp_path / "x.json").exists()


def test_export_without_head_embeds_but_cannot_classify(run, toy5, tmp_path):
    from safetensors.torch import load_file, save_file

    old = tmp_path / "embedding-only"
    old.mkdir()
    state = {k: v for k, v in load_file(str(run / WEIGHTS_NAME)).items() if not k.startswith("classifier.")}
    save_file(state, str(old / WEIGHTS_NAME))
    meta = json.loads((run / META_NAME).read_text())
    meta.pop("classifier_head")
    (old / META_NAME).write_text(json.dumps(meta))
    model = load_style_model(old)
    assert not model.has_head and load_style_model(run).has_head
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(model.embed(x), load_style_model(run).embed(x), atol=1e-6)
    res = _cli("classify", str(toy5 / "dots"), "--style-model", str(old))
    assert res.exit_code == 2 and "no classifier head" in res.output and "train-classifier" in res.output
    assert _cli("similar", str(toy5 / "dots" / "00000.png"), "--in", str(toy5), "--style-model", str(old),
                "--device", "cpu", "--quiet").exit_code == 0
    res = _cli("train-classifier", str(toy5), "--eval-only", "--style-model", str(old), "--out", str(tmp_path / "ev"))
    assert res.exit_code == 2 and "no classifier head" in res.output


# ------------------------------------------------------------------------------------- similar


def test_similar_index_is_cached_and_contact_sheet(run, toy5, tmp_path, monkeypatch):
    calls = {"n": 0}
    factory = search_mod.EMBEDDERS["style"]

    def counting(cfg, device):
        ext = factory(cfg, device)
        inner = ext.embed

        def embed(x):
            calls["n"] += x.shape[0]
            return inner(x)

        ext.embed = embed
        return ext

    monkeypatch.setitem(search_mod.EMBEDDERS, "style", counting)
    out = tmp_path / "found"
    query = toy5 / "hatching" / "00003.png"
    cfg = SimilarConfig(queries=[str(query)], collection=[str(toy5)], style_model=str(run), k=4, out=str(out), device="cpu")
    first = similar_images(cfg)
    assert calls["n"] == 60  # the collection (the query is one of its images: cached by then)
    assert first.features["collection"]["computed"] == 60
    neighbours = first.queries[0]["neighbours"]
    assert len(neighbours) == 4 and all(not n["path"].endswith("hatching/00003.png") for n in neighbours)  # never itself
    assert [n["score"] for n in neighbours] == sorted((n["score"] for n in neighbours), reverse=True)
    again = similar_images(SimilarConfig(queries=[str(toy5 / "dots" / "00001.png")], collection=[str(toy5)],
                                         style_model=str(run), k=4, device="cpu"))
    assert calls["n"] == 60, "the second query over the same collection embedded something"
    assert again.features["collection"] == {**again.features["collection"], "hits": 60, "computed": 0}
    doc = json.loads((out / "similar.json").read_text())
    assert doc["queries"][0]["neighbours"] == neighbours
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.size == (5 * (128 + 6) + 6, 128 + 28 + 12)
    # The sheet is a composite: listing the folder does not see it as an image.
    from stylekit.data.images import list_images

    assert list_images(out) == []


def test_similar_and_train_classifier_report_the_same_retrieval_numbers(run, tmp_path):
    """Queries = the run's test split, collection = its train split: the numbers of test_metrics.json."""
    from stylekit.data.datasets import load_style_splits

    conf = json.loads((run / "config.json").read_text())
    splits = load_style_splits(conf["data"], tuple(conf["split"]), conf["seed"], workers=0)
    for split, folder in (("test", "q"), ("train", "db")):
        for path, c in splits.items[split]:
            dest = tmp_path / folder / splits.classes[c] / path.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, dest)
    result = similar_images(SimilarConfig(queries=[str(tmp_path / "q")], collection=[str(tmp_path / "db")],
                                          style_model=str(run), k=10, device="cpu", cache=False))
    want = json.loads((run / "test_metrics.json").read_text())
    assert result.metrics["map@10"] == pytest.approx(want["map@10"], abs=1e-6)
    assert result.metrics["recall@1"] == pytest.approx(want["recall@1"], abs=1e-6)


def test_unseen_styles_retrieve_each_other(run, toy5):
    """Queries of styles the model never saw: their neighbours share their style far above chance."""
    result = similar_images(SimilarConfig(queries=[str(toy5)], collection=[str(toy5)], style_model=str(run), k=5, device="cpu"))
    precisions = [sum(n["label"] == q["label"] for n in q["neighbours"]) / 5 for q in result.queries if q["label"] in HELD_OUT]
    chance = 11 / 59  # 11 other images of the query's style among the 59 others
    assert len(precisions) == 24
    assert sum(precisions) / len(precisions) > 0.8 > 3 * chance


def test_similar_gram_and_clip_embedders(toy5, tmp_path):
    from clip_tiny import make_tiny_clip_dir
    from safetensors.torch import save_file

    from stylekit.nets.vgg import VGGFeatures

    vgg = tmp_path / "vgg19-random.safetensors"
    net = VGGFeatures(arch="vgg19", layers=["relu5_1"], weights=None)
    save_file({k: v.contiguous() for k, v in net.body.state_dict().items()}, str(vgg))
    queries = [str(toy5 / "pop" / "00000.png")]
    gram = similar_images(SimilarConfig(queries=queries, collection=[str(toy5 / "dots"), str(toy5 / "pop")], embedder="gram",
                                        vgg_weights=str(vgg), size=32, k=3, device="cpu"))
    assert gram.embedder.startswith("gram-sketch:") and len(gram.queries[0]["neighbours"]) == 3
    clip = similar_images(SimilarConfig(queries=queries, collection=[str(toy5 / "pop")], embedder="clip",
                                        clip_model=str(make_tiny_clip_dir(tmp_path / "clip")), k=3, device="cpu"))
    assert clip.embedder.startswith("clip:") and all(-1 <= n["score"] <= 1 for n in clip.queries[0]["neighbours"])


def test_similar_bad_inputs(run, toy5, tmp_path):
    q = str(toy5 / "dots" / "00000.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    res = _cli("similar", q, "--in", str(empty), "--style-model", str(run), "--device", "cpu")
    assert res.exit_code == 2 and "no images" in res.output
    bad = tmp_path / "q.png"
    bad.write_bytes(b"\x89PNG broken")
    res = _cli("similar", str(bad), "--in", str(toy5 / "dots"), "--style-model", str(run), "--device", "cpu")
    assert res.exit_code == 2 and "no readable query" in res.output and "q.png" in res.output
    res = _cli("similar", q, "--in", str(toy5), "--style-model", str(tmp_path / "missing-run"))
    assert res.exit_code == 3 and "train-classifier" in res.output
    res = _cli("similar", q, "--in", str(toy5))
    assert res.exit_code == 2 and "--style-model" in res.output
    assert _cli("similar", q, "--in", str(toy5), "--embedder", "sift", "--style-model", str(run)).exit_code == 2
    assert _cli("similar", q, "--in", str(tmp_path / "nowhere"), "--style-model", str(run)).exit_code == 2
    (tmp_path / "file-out").write_text("keep me")
    res = _cli("similar", q, "--in", str(toy5), "--style-model", str(run), "--out", str(tmp_path / "file-out"))
    assert res.exit_code == 2 and (tmp_path / "file-out").read_text() == "keep me"
    res = _cli("similar", q, "--in", str(empty), "--style-model", str(run), "--json")
    assert res.exit_code == 2 and "neighbours" not in res.stdout


def test_similar_subprocess_json(run, toy5, tmp_path):
    env = {**os.environ, "STYLEKIT_OFFLINE": "1"}
    proc = subprocess.run([STYLEKIT, "similar", str(toy5 / "dots" / "00002.png"), "--in", str(toy5), "--style-model", str(run),
                           "-k", "3", "--device", "cpu", "--json", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert len(doc["queries"][0]["neighbours"]) == 3 and (tmp_path / "o" / "contact_sheet.png").is_file()


# ------------------------------------------------------------------------------------- edge rules


def test_similar_failed_checks_leave_no_out_and_busy_is_refused_first(run, toy5, tmp_path):
    q = str(toy5 / "dots" / "00000.png")
    out = tmp_path / "found"
    for args, code in ((["--in", str(tmp_path / "nowhere"), "--style-model", str(run)], 2),
                       (["--in", str(toy5), "--style-model", str(tmp_path / "missing-run")], 3),
                       (["--in", str(toy5)], 2),  # --embedder style without --style-model
                       (["--in", str(toy5), "--style-model", str(run), "-k", "0"], 2),
                       (["--in", str(toy5), "--style-model", str(run), "--size", "8"], 2),
                       (["--in", str(tmp_path), "--style-model", str(run)], 2)):  # a collection without images
        res = _cli("similar", q, *args, "--out", str(out), "--device", "cpu")
        assert res.exit_code == code, (args, res.output)
        assert not out.exists(), f"{args} left {out} behind"
    from stylekit.io.rundir import DirLock

    out.mkdir()
    lock = DirLock(out)
    lock.acquire()
    try:
        res = _cli("similar", q, "--in", str(toy5), "--style-model", str(run), "--out", str(out), "--device", "cpu")
    finally:
        lock.release()
    assert res.exit_code == 75 and "in use" in res.stderr and not (out / "similar.json").exists()


def test_similar_rerun_into_used_out_refuses_unless_fresh(run, toy5, tmp_path):
    out = tmp_path / "found"
    args = ["--in", str(toy5), "--style-model", str(run), "--out", str(out), "--device", "cpu", "--json"]
    first = _cli("similar", str(toy5 / "dots" / "00000.png"), *args)
    assert first.exit_code == 0, first.output
    before = (out / "similar.json").read_bytes()
    again = _cli("similar", str(toy5 / "pop" / "00000.png"), *args)
    assert again.exit_code == 2 and "--fresh" in again.stderr
    assert (out / "similar.json").read_bytes() == before  # nothing of the second run mixed in
    fresh = _cli("similar", str(toy5 / "pop" / "00000.png"), *args, "--fresh")
    assert fresh.exit_code == 0, fresh.output
    doc = json.loads((out / "similar.json").read_text())
    assert [q["path"] for q in doc["queries"]] == [str(toy5 / "pop" / "00000.png")]


def test_classify_rerun_refuses_to_replace_the_csv_unless_fresh(run, toy5, tmp_path):
    out = tmp_path / "styles.csv"
    args = ["--style-model", str(run), "--out", str(out), "--device", "cpu"]
    assert _cli("classify", str(toy5 / "dots"), *args).exit_code == 0
    before = out.read_text()
    res = _cli("classify", str(toy5 / "pop"), *args)
    assert res.exit_code == 2 and "--fresh" in res.stderr and out.read_text() == before
    assert _cli("classify", str(toy5 / "pop"), *args, "--fresh").exit_code == 0
    assert "pop/" in out.read_text() and "dots/" not in out.read_text()


def test_similar_gram_with_random_vgg_is_a_labelled_standin(toy5, tmp_path):
    res = _cli("similar", str(toy5 / "pop" / "00000.png"), "--in", str(toy5 / "pop"), "--embedder", "gram",
               "--vgg-weights", "random", "--size", "32", "-k", "2", "--device", "cpu", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert "stand-in" in doc["standin"] and "stand-in" in res.stderr
    assert doc["embedder"].startswith("gram-sketch:") and len(doc["queries"][0]["neighbours"]) == 2


def test_classify_and_similar_help_examples_run(tmp_path, monkeypatch):
    """Every example of `classify --help` and `similar --help`, in order, on the data the first ones make."""
    monkeypatch.chdir(tmp_path)
    for args in [*help_examples("classify"), *help_examples("similar")]:
        res = _cli(*args, "--quiet", "--device", "cpu") if args[0] != "download" else _cli(*args, "--quiet")
        assert res.exit_code == 0, f"{args}\n{res.output}"
    assert (tmp_path / "styles.csv").is_file() and (tmp_path / "found" / "contact_sheet.png").is_file()
    assert (tmp_path / "found-gram" / "similar.json").is_file()


def test_similar_clip_with_random_weights_is_a_labelled_standin(toy5):
    res = _cli("similar", str(toy5 / "pop" / "00000.png"), "--in", str(toy5 / "dots"), "--embedder", "clip",
               "--clip-weights", "random", "-k", "2", "--device", "cpu", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert "--clip-weights random" in doc["standin"] and "stand-in" in res.stderr
    assert doc["embedder"].startswith("clip:") and len(doc["queries"][0]["neighbours"]) == 2
