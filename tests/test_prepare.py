"""`stylekit prepare`: formats, splits, determinism, bad input and exit codes."""

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.configs.prepare import PrepareConfig
from stylekit.data.manifest import ManifestRow, read_manifest, read_row_bytes, write_manifest
from stylekit.data.prepare import Transform, apply_transform, prepare
from stylekit.data.toy import generate_toy_styles
from stylekit.errors import BadInput, Busy
from stylekit.io.rundir import DirLock

runner = CliRunner()
STYLEKIT = Path(sys.executable).parent / "stylekit"


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy") / "toy"
    generate_toy_styles(root, size=40, per_style=10, styles=3, seed=0)
    return root  # pop, stripes, checks + content, 10 layouts each


def _run(*args):
    result = runner.invoke(app, ["prepare", *map(str, args)])
    return result


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in ("report.json", ".stylekit.lock")}


# ------------------------------------------------------------------------------------------- folder
def test_folder_format_manifest_and_splits(toy, tmp_path):
    out = tmp_path / "out"
    rep = prepare(PrepareConfig(src=toy, out=out, size=32, exclude=("content",)))
    assert rep.used == 30 and rep.labels == ["checks", "pop", "stripes"] and not rep.skipped
    assert rep.counts == {k: {"train": 8, "val": 1, "test": 1} for k in ("checks", "pop", "stripes")}
    assert rep.splits == {"train": 24, "val": 3, "test": 3}
    rows = read_manifest(out)
    assert len(rows) == 30
    header = (out / "manifest.csv").read_text().splitlines()[0]
    assert header == "path,label,split,width,height,sha1"
    for r in rows:
        assert r.path == out / r.label / r.path.name and r.path.suffix == ".png"
        assert (r.width, r.height) == (32, 32) and Image.open(r.path).size == (32, 32)
        assert hashlib.sha1(r.path.read_bytes()).hexdigest() == r.sha1
    report = json.loads((out / "report.json").read_text())
    assert report["used"] == 30 and report["skipped"] == [] and report["config"]["size"] == 32
    assert not (out / "content").exists()


def test_output_identical_for_any_workers(toy, tmp_path):
    prepare(PrepareConfig(src=toy, out=tmp_path / "w1", size=24, workers=1, seed=5))
    prepare(PrepareConfig(src=toy, out=tmp_path / "w2", size=24, workers=2, seed=5))
    one, two = _tree(tmp_path / "w1"), _tree(tmp_path / "w2")
    assert one == two and len(one) == 41  # 4 labels x 10 images + manifest


def test_rerun_with_fresh_replaces_the_set_and_removes_stale_files(toy, tmp_path):
    out = tmp_path / "out"
    prepare(PrepareConfig(src=toy, out=out, size=16))
    assert len(list(out.rglob("*.png"))) == 40
    with pytest.raises(BadInput, match="--max-images") as exc:  # other settings: refused, OUT untouched
        prepare(PrepareConfig(src=toy, out=out, size=16, max_images=8))
    assert "--fresh" in exc.value.hint and len(list(out.rglob("*.png"))) == 40
    prepare(PrepareConfig(src=toy, out=out, size=16, max_images=8, fresh=True))
    rows = read_manifest(out)
    assert len(rows) == 8 and Counter(r.label for r in rows) == {"checks": 2, "content": 2, "pop": 2, "stripes": 2}
    assert sorted(out.rglob("*.png")) == sorted(r.path for r in rows)


def test_dedupe_and_corrupt_files_are_skipped_with_reasons(tmp_path):
    src = tmp_path / "src"
    for label, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        (src / label).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (20 + i, 20), colour).save(src / label / f"{i}.png")
    shutil.copy(src / "a" / "0.png", src / "b" / "copy.png")
    (src / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    (src / "b" / "empty.jpg").write_bytes(b"")
    result = _run(src, tmp_path / "out", "--size", 16, "--dedupe", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["used"] == 6
    reasons = {Path(s["path"]).name: s["reason"] for s in doc["skipped"]}
    assert reasons["copy.png"].startswith("duplicate of") and reasons["copy.png"].endswith("0.png")
    assert reasons["empty.jpg"] == "empty file"
    assert "broken.png" in reasons
    assert json.loads((tmp_path / "out" / "report.json").read_text())["skipped"] == doc["skipped"]


def test_csv_source_and_max_images(tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    lines = ["path,label"]
    for i in range(6):
        Image.new("RGB", (30, 20), (i * 40, 0, 0)).save(imgs / f"{i}.jpg")
        lines.append(f"imgs/{i}.jpg,{'cat' if i % 2 else 'dog'}")
    lines.append("imgs/missing.jpg,dog")
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    rep = prepare(PrepareConfig(src=tmp_path / "list.csv", out=tmp_path / "out", size=10, split=(1.0,)))
    assert rep.used == 6 and rep.counts == {"cat": {"train": 3}, "dog": {"train": 3}}
    assert [(Path(s.path).name, s.reason) for s in rep.skipped] == [("missing.jpg", "file not found")]
    rep = prepare(PrepareConfig(src=tmp_path / "list.csv", out=tmp_path / "cap", size=10, max_images=4))
    assert rep.used == 4 and {k: sum(v.values()) for k, v in rep.counts.items()} == {"cat": 2, "dog": 2}


# ------------------------------------------------------------------------------------------- transforms
def test_crop_modes():
    img = Image.new("RGB", (80, 60), (255, 0, 0))
    t = dict(resize_filter="lanczos", min_size=0, wide_aspect=(4, 3), square=False)
    assert apply_transform(img, Transform(size=32, crop="center", **t)).size == (32, 32)
    assert apply_transform(img, Transform(size=20, crop="none", **t)).size == (27, 20)
    assert apply_transform(img, Transform(size=None, crop="center", **t)).size == (60, 60)
    wide = apply_transform(img, Transform(size=64, crop="center-wide", **t))
    assert wide.size == (64, 64)  # a 64x48 strip centred on a black square canvas (NVlabs)
    assert wide.getpixel((32, 3)) == (0, 0, 0) and wide.getpixel((32, 60)) == (0, 0, 0)
    assert wide.getpixel((32, 32))[0] > 250 and wide.getpixel((32, 9))[0] > 250
    with pytest.raises(ValueError, match="too small or too wide"):
        apply_transform(Image.new("RGB", (200, 50)), Transform(size=64, crop="center-wide", **t))
    with pytest.raises(ValueError, match="--min-size 70"):
        apply_transform(img, Transform(size=32, crop="center", resize_filter="box", min_size=70, wide_aspect=(4, 3), square=False))
    with pytest.raises(ValueError, match="not square"):
        apply_transform(img, Transform(size=32, crop="none", resize_filter="bicubic", min_size=0, wide_aspect=(4, 3), square=True))


# ------------------------------------------------------------------------------------------- splits
@pytest.mark.parametrize("text", ["0.5,0.6", "a,b", "0.8,0.1,0.05,0.05", "", "-0.2,1.2", "nan"])
def test_bad_split_string(text, tmp_path):
    with pytest.raises(BadInput, match="--split"):
        PrepareConfig(src=tmp_path, out=tmp_path / "out", split=text)


# ------------------------------------------------------------------------------------------- formats
def test_stylegan_zip_matches_dataset_tool_layout(toy, tmp_path):
    rep = prepare(PrepareConfig(src=toy, out=tmp_path / "z1", size=32, format="stylegan-zip", exclude=("content",)))
    assert rep.used == 30
    with zipfile.ZipFile(tmp_path / "z1" / "dataset.zip") as zf:
        names = zf.namelist()
        assert names[0] == "00000/img00000000.png" and names[29] == "00000/img00000029.png"
        assert names[-1] == "dataset.json" and all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        labels = json.loads(zf.read("dataset.json"))["labels"]
        assert labels[0] == ["00000/img00000000.png", 0] and Counter(v for _, v in labels) == {0: 10, 1: 10, 2: 10}
        with zf.open(names[5]) as fh:
            assert Image.open(fh).size == (32, 32)
    rows = read_manifest(tmp_path / "z1")
    assert rows[0].path.as_posix().endswith("dataset.zip/00000/img00000000.png")
    assert hashlib.sha1(read_row_bytes(rows[3].path)).hexdigest() == rows[3].sha1
    prepare(PrepareConfig(src=toy, out=tmp_path / "z2", size=32, format="stylegan-zip", exclude=("content",), workers=2))
    assert (tmp_path / "z1" / "dataset.zip").read_bytes() == (tmp_path / "z2" / "dataset.zip").read_bytes()


def test_stylegan_zip_unlabelled_gets_null_labels(tmp_path):
    for i in range(3):
        Image.new("RGB", (40, 40), (i, 0, 0)).save(tmp_path / f"{i}.png")
    prepare(PrepareConfig(src=tmp_path, out=tmp_path.parent / "zu", size=16, format="stylegan-zip"))
    with zipfile.ZipFile(tmp_path.parent / "zu" / "dataset.zip") as zf:
        assert json.loads(zf.read("dataset.json")) == {"labels": None}


def test_stylegan_zip_needs_power_of_two_size(toy, tmp_path):
    result = _run(toy, tmp_path / "z", "--format", "stylegan-zip", "--size", 48)
    assert result.exit_code == 2 and "power of two" in result.output


def test_pairs_format(toy, tmp_path):
    (tmp_path / "A").mkdir()
    for p in sorted((toy / "content").iterdir())[:6]:
        shutil.copy(p, tmp_path / "A" / p.name)
    Image.new("RGB", (40, 40)).save(tmp_path / "A" / "lonely.png")
    rep = prepare(PrepareConfig(src=tmp_path / "A", out=tmp_path / "pairs", size=32, format="pairs",
                                pair_with=toy, exclude=("content",), split=(1.0,)))
    assert rep.used == 18 and rep.labels == ["checks", "pop", "stripes"]
    skipped = {(Path(s.path).name, s.reason.split(" in ")[0]) for s in rep.skipped}
    assert ("lonely.png", "no image named 'lonely'") in skipped
    assert ("00007.png", "no image named '00007'") in skipped  # B images without an A partner
    rows = read_manifest(tmp_path / "pairs")
    assert {(r.width, r.height) for r in rows} == {(64, 32)}
    pair = Image.open(tmp_path / "pairs" / "pop" / "00002.png")
    a = Image.open(toy / "content" / "00002.png").resize((32, 32), Image.Resampling.LANCZOS)
    b = Image.open(toy / "pop" / "00002.png").resize((32, 32), Image.Resampling.LANCZOS)
    assert list(pair.crop((0, 0, 32, 32)).getdata()) == list(a.getdata())
    assert list(pair.crop((32, 0, 64, 32)).getdata()) == list(b.getdata())
    # with a split, every style of one composition lands in the same split (held-out = unseen layouts)
    prepare(PrepareConfig(src=tmp_path / "A", out=tmp_path / "pairs3", size=32, format="pairs",
                          pair_with=toy, exclude=("content",), split=(0.5, 0.25, 0.25)))
    by_layout: dict[str, set[str]] = {}
    for r in read_manifest(tmp_path / "pairs3"):
        by_layout.setdefault(r.path.stem, set()).add(r.split)
    assert len(by_layout) == 6 and all(len(s) == 1 for s in by_layout.values())
    assert {next(iter(s)) for s in by_layout.values()} == {"train", "val", "test"}


def test_pairs_without_pair_with_is_bad_input(toy, tmp_path):
    result = _run(toy, tmp_path / "p", "--format", "pairs")
    assert result.exit_code == 2 and "--pair-with" in result.output


# ------------------------------------------------------------------------------------------- manifest
def test_manifest_roundtrip_and_errors(tmp_path):
    rows = [ManifestRow(tmp_path / "a" / "x.png", "a", "train", 4, 4, "ab"), ManifestRow(Path("b/y.png"), "b", "val", 2, 3, "cd")]
    write_manifest(tmp_path, rows)
    back = read_manifest(tmp_path)
    assert back == [ManifestRow(tmp_path / "a" / "x.png", "a", "train", 4, 4, "ab"), ManifestRow(tmp_path / "b" / "y.png", "b", "val", 2, 3, "cd")]
    (tmp_path / "plain").mkdir()
    with pytest.raises(BadInput, match="manifest.csv is missing") as exc:
        read_manifest(tmp_path / "plain")
    assert "stylekit prepare" in exc.value.hint
    (tmp_path / "manifest.csv").write_text("file,class\nx.png,a\n")
    with pytest.raises(BadInput, match="malformed: missing column"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.csv").write_text("path,label,split,width,height,sha1\nx.png,a,train,wide,4,ab\n")
    with pytest.raises(BadInput, match="line 2 is malformed"):
        read_manifest(tmp_path)
    with pytest.raises(BadInput, match="does not exist"):
        read_manifest(tmp_path / "nope")


# ------------------------------------------------------------------------------------------- bad input
def test_missing_empty_and_imageless_src_exit_2(tmp_path):
    assert _run(tmp_path / "missing", tmp_path / "out").exit_code == 2
    (tmp_path / "empty").mkdir()
    result = _run(tmp_path / "empty", tmp_path / "out")
    assert result.exit_code == 2 and "no images found" in result.output
    (tmp_path / "text" / "a").mkdir(parents=True)
    (tmp_path / "text" / "a" / "notes.txt").write_text("hi")
    assert _run(tmp_path / "text", tmp_path / "out").exit_code == 2


def test_all_images_corrupt_exit_2_with_report(tmp_path):
    (tmp_path / "src" / "a").mkdir(parents=True)
    (tmp_path / "src" / "a" / "x.png").write_bytes(b"not a png")
    result = _run(tmp_path / "src", tmp_path / "out")
    assert result.exit_code == 2 and "no usable images" in result.output
    assert json.loads((tmp_path / "out" / "report.json").read_text())["skipped"][0]["reason"].startswith("not an image")


def test_unwritable_out_exit_2(toy, tmp_path):
    (tmp_path / "file").write_text("x")
    result = _run(toy, tmp_path / "file" / "out")
    assert result.exit_code == 2 and "cannot write" in result.output


def test_out_inside_src_exit_2(toy):
    result = _run(toy, toy / "prepared")
    assert result.exit_code == 2 and "inside the SRC folder" in result.output


def test_locked_out_exit_75(toy, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    lock = DirLock(out)
    lock.acquire()
    try:
        with pytest.raises(Busy):
            prepare(PrepareConfig(src=toy, out=out, size=16))
        result = _run(toy, out, "--size", 16)
        assert result.exit_code == 75 and "in use" in result.output
    finally:
        lock.release()
    assert _run(toy, out, "--size", 16).exit_code == 0


def test_bad_split_cli_exit_2(toy, tmp_path):
    result = _run(toy, tmp_path / "out", "--split", "0.9,0.2")
    assert result.exit_code == 2 and "--split" in result.output


def test_config_file_supplies_defaults(toy, tmp_path):
    (tmp_path / "c.toml").write_text('size = 8\nexclude = ["content", "pop"]\nsplit = "0.5,0.5"\n')
    result = _run(toy, tmp_path / "out", "--config", tmp_path / "c.toml", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["labels"] == ["checks", "stripes"] and doc["size"] == 8 and doc["splits"] == {"train": 10, "val": 10}


def test_installed_cli_subprocess(toy, tmp_path):
    proc = subprocess.run([str(STYLEKIT), "prepare", str(toy), str(tmp_path / "out"), "--size", "16", "--exclude", "content",
                           "--workers", "2", "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["used"] == 30 and doc["splits"] == {"train": 24, "val": 3, "test": 3}
    assert len(read_manifest(tmp_path / "out")) == 30


def test_name_clashes_get_distinct_files(tmp_path):
    src = tmp_path / "src" / "style"
    (src / "sub").mkdir(parents=True)
    for rel, colour in (("a.png", (255, 0, 0)), ("A.jpg", (0, 255, 0)), ("sub/a.png", (0, 0, 255))):
        Image.new("RGB", (12, 12), colour).save(src / rel)
    prepare(PrepareConfig(src=tmp_path / "src", out=tmp_path / "out", size=8))
    rows = read_manifest(tmp_path / "out")
    assert len(rows) == 3 and len({r.path for r in rows}) == 3 and len({r.sha1 for r in rows}) == 3
    assert sorted(p.name for p in (tmp_path / "out" / "style").iterdir())[0] == "A.png"


def test_stylegan_zip_out_as_single_archive(toy, tmp_path):
    out = tmp_path / "toy-32.zip"
    rep = prepare(PrepareConfig(src=toy, out=out, size=32, format="stylegan-zip", exclude=("content", "pop")))
    assert rep.used == 20 and out.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".toy-32.zip.lock", "toy-32.zip"]  # nothing else beside it
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        assert names[:2] == ["00000/img00000000.png", "00000/img00000001.png"]
        assert names[-3:] == ["dataset.json", "manifest.csv", "report.json"]
        assert json.loads(zf.read("report.json"))["used"] == 20
    rows = read_manifest(out)
    assert len(rows) == 20 and rows[0].path == tmp_path / "toy-32.zip" / "00000" / "img00000000.png"
    assert hashlib.sha1(read_row_bytes(rows[7].path)).hexdigest() == rows[7].sha1
    result = _run(toy, tmp_path / "folder.zip", "--size", 32)  # a .zip OUT is only for stylegan-zip
    assert result.exit_code == 2 and "stylegan-zip" in result.output


def test_worker_pool_never_forks_the_lock_holder():
    """Plain fork would hand the OUT lock to the workers, which outlive a killed parent (reruns: exit 75)."""
    from stylekit.data.prepare import pool_context

    assert pool_context().get_start_method() in ("forkserver", "spawn")


# ------------------------------------------------------------------------------------------- edge rules
def test_exclude_typo_is_exit_2_naming_the_closest_folder(toy, tmp_path):
    result = _run(toy, tmp_path / "out", "--size", 8, "--exclude", "contnt")
    assert result.exit_code == 2 and "--exclude contnt" in result.stderr and "'content'" in result.stderr
    assert not (tmp_path / "out").exists()
    pairs = _run(toy / "content", tmp_path / "pairs", "--format", "pairs", "--pair-with", toy, "--exclude", "pops")
    assert pairs.exit_code == 2 and "'pop'" in pairs.stderr and not (tmp_path / "pairs").exists()


@pytest.mark.parametrize("args", [["--size", "0"], ["--size", "9000"], ["--split", "0.9,0.2"], ["--crop", "wide"],
                                  ["--format", "stylegan-zip", "--size", "24"], ["--wide-aspect", "3:4"],
                                  ["--max-images", "0"], ["--face-threshold", "2"]])
def test_a_failed_check_leaves_no_out_behind(toy, tmp_path, args):
    result = _run(toy, tmp_path / "new" / "out", *args)
    assert result.exit_code == 2 and any(a in result.stderr for a in args if a.startswith("--")), result.stderr
    assert not (tmp_path / "new").exists()


def test_rerun_at_another_size_is_refused_and_fresh_replaces(toy, tmp_path):
    out = tmp_path / "out"
    assert _run(toy, out, "--size", 16, "--exclude", "content").exit_code == 0
    before = _tree(out)
    again = _run(toy, out, "--size", 16, "--exclude", "content")  # same settings: refreshed, same bytes, said so
    assert again.exit_code == 0 and "refreshing" in again.stderr and _tree(out) == before
    refused = _run(toy, out, "--size", 8, "--exclude", "content")
    assert refused.exit_code == 2 and "--size 16" in refused.stderr and "--fresh" in refused.stderr
    assert _tree(out) == before
    fresh = _run(toy, out, "--size", 8, "--exclude", "content", "--fresh", "--json")
    assert fresh.exit_code == 0, fresh.output
    assert {(r.width, r.height) for r in read_manifest(out)} == {(8, 8)}
    zipped = tmp_path / "set.zip"
    assert _run(toy, zipped, "--size", 16, "--format", "stylegan-zip").exit_code == 0
    assert _run(toy, zipped, "--size", 8, "--format", "stylegan-zip").exit_code == 2
    assert _run(toy, zipped, "--size", 8, "--format", "stylegan-zip", "--fresh").exit_code == 0
