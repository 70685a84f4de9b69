"""Issue 16, items 1-3: nothing a user owns is deleted or overwritten.

--fresh only removes what stylekit wrote, an --out that is (or contains, or sits inside) an input is
refused before anything is touched, and download extraction never replaces a user's entry. Every
test hashes the user's files before and after.
"""

import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
import threading
import warnings
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.data import archive as archive_mod
from stylekit.data.sources.ledger import read_marker
from stylekit.data.sources.wikiart import download_wikiart
from stylekit.errors import BadInput, Busy
from stylekit.io.atomic import write_bytes_atomic
from stylekit.io.rundir import MARKER_NAME, RunDir

REPO = Path(__file__).resolve().parents[2]


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file below `root` (relative posix path -> digest)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def png_bytes(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (shade, 255 - shade, 40)).save(buf, format="PNG")
    return buf.getvalue()


def class_folders(root: Path, per: int = 3) -> Path:
    for k, style in enumerate(("ink", "oil")):
        (root / style).mkdir(parents=True, exist_ok=True)
        for i in range(per):
            (root / style / f"{i}.png").write_bytes(png_bytes(40 * k + 10 * i))
    return root


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


# --- item 1: --fresh and --out overlapping an input -------------------------------------------------


def test_train_classifier_out_equal_to_data_with_fresh_is_refused_untouched(tmp_path):
    data = class_folders(tmp_path / "data")
    before = snapshot(data)
    res = invoke("train-classifier", str(data), "--out", str(data), "--fresh", "--epochs", "1", "--device", "cpu")
    assert res.exit_code == 2, res.output
    assert "is the input DATA" in res.output and "nothing was changed" in res.output
    assert snapshot(data) == before
    assert sorted(p.name for p in data.iterdir()) == ["ink", "oil"]  # no lock, no marker, no checkpoints/


def test_finetune_out_containing_the_data_with_fresh_is_refused_untouched(tmp_path):
    project = tmp_path / "project"
    data = class_folders(project / "data" / "dots") / "ink"
    (project / "notes.txt").write_text("my notes")
    before = snapshot(project)
    res = invoke("finetune-stylegan", str(data), "--out", str(project), "--fresh", "--network", "none", "--device", "cpu")
    assert res.exit_code == 2, res.output
    assert "contains the input DATA" in res.output
    assert snapshot(project) == before


def test_fresh_refuses_a_non_empty_folder_that_is_no_run(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("chapter 1")
    (folder / "figures").mkdir()
    (folder / "figures" / "f.png").write_bytes(png_bytes(3))
    before = snapshot(folder)
    for fresh in (True, False):  # also without --fresh: config.json/log.txt could overwrite a user's file
        with pytest.raises(BadInput, match="not a stylekit run folder") as info:
            RunDir(folder, fresh=fresh).open()
        assert info.value.exit_code == 2
    assert snapshot(folder) == before and sorted(p.name for p in folder.iterdir()) == ["figures", "thesis.tex"]


def test_fresh_removes_only_what_stylekit_wrote(tmp_path):
    out = tmp_path / "run"
    with RunDir(out) as run:
        run.write_config({"lr": 1})
        write_bytes_atomic(out / "report.png", b"written by the trainer")  # as every trainer writes
        run.append_metrics({"step": 1})
    assert (out / MARKER_NAME).is_file()
    (out / "notes.md").write_text("user notes kept in the run folder")
    (out / "extra").mkdir()
    (out / "extra" / "a.txt").write_text("a")
    user = {k: v for k, v in snapshot(out).items() if k.startswith(("notes.md", "extra/"))}
    with RunDir(out, fresh=True) as run:
        assert run.read_config() is None and run.read_metrics() == []
    assert not (out / "report.png").exists()
    assert {k: v for k, v in snapshot(out).items() if k in user} == user


def _other_tools_run(out: Path) -> Path:
    """Issue 24 item 1: a folder laid out like a run (config.json, checkpoints/, samples/) with no marker."""
    (out / "checkpoints").mkdir(parents=True)
    (out / "samples").mkdir()
    (out / "config.json").write_text("{}")
    (out / "checkpoints" / "epoch=9.ckpt").write_text("x")
    (out / "log.txt").write_text("lightning log")
    (out / "samples" / "s.png").write_bytes(png_bytes(9))
    (out / "README.md").write_text("mine")
    return out


def test_fresh_refuses_another_tools_run_folder_untouched(tmp_path):
    out = _other_tools_run(tmp_path / "r")
    before = snapshot(out)
    res = invoke("train-classifier", str(class_folders(tmp_path / "toy")), "--out", str(out), "--fresh",
                 "--backbone", "small-cnn", "--no-pretrained", "--epochs", "1", "--device", "cpu")
    assert res.exit_code == 2, res.output
    assert f"--out {out} is not empty and is not a stylekit run folder" in res.output
    assert "nothing was changed" in res.output and "move it away or empty it yourself" in res.output
    assert snapshot(out) == before
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "checkpoints", "config.json", "log.txt", "samples"]


def test_files_a_user_adds_while_a_run_is_open_survive_fresh(tmp_path):
    out = tmp_path / "run"
    with RunDir(out) as run:
        run.write_config({"lr": 1})
        (out / "my_notes.txt").write_text("written by the user during the run")
        (out / "figs").mkdir()
        run.append_metrics({"step": 1})
        (out / "figs" / "f.txt").write_text("user figure")
    recorded = json.loads((out / MARKER_NAME).read_text())["written"]
    assert recorded == ["checkpoints", "config.json", "log.txt", "metrics.jsonl", "samples"]
    with RunDir(out, fresh=True):
        pass
    assert (out / "my_notes.txt").read_text() == "written by the user during the run"
    assert (out / "figs" / "f.txt").read_text() == "user figure"
    assert not (out / "config.json").exists() and not (out / "metrics.jsonl").exists()


def test_a_layout_folder_the_user_made_in_a_run_folder_is_not_claimed(tmp_path):
    out = tmp_path / "run"
    with RunDir(out):
        pass
    for name in ("samples", "checkpoints"):  # the user removes stylekit's and keeps their own under the name
        (out / name).rmdir()
    (out / "samples").mkdir()
    (out / "samples" / "mine.png").write_bytes(png_bytes(1))
    marker = json.loads((out / MARKER_NAME).read_text())
    marker["written"].remove("samples")
    (out / MARKER_NAME).write_text(json.dumps(marker))
    with RunDir(out, fresh=True):
        pass
    assert (out / "samples" / "mine.png").is_file()
    assert "samples" not in json.loads((out / MARKER_NAME).read_text())["written"]


def test_kill_during_an_atomic_write_leaves_it_recorded_and_fresh_removes_its_temp(tmp_path):
    """A run killed (-9) inside write_atomic: the entry was recorded before the write began, the
    half-written temp is never read as the file, and --fresh removes both."""
    out = tmp_path / "run"
    code = textwrap.dedent(f"""
        import os, signal
        from stylekit.io.atomic import write_atomic
        from stylekit.io.rundir import RunDir
        run = RunDir({str(out)!r}).open()
        def half(tmp):
            tmp.write_bytes(b"half a network")
            os.kill(os.getpid(), signal.SIGKILL)
        write_atomic(run.path / "network-final.safetensors", half)
    """)
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True)
    assert proc.returncode == -9, proc.stderr
    assert not (out / "network-final.safetensors").exists()
    temps = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    assert len(temps) == 1 and temps[0].startswith(".network-final.safetensors.")
    assert "network-final.safetensors" in json.loads((out / MARKER_NAME).read_text())["written"]
    (out / ".notes.txt.x.tmp").write_text("a user's own temp-like file")
    with RunDir(out, fresh=True):
        pass
    assert not [p for p in out.iterdir() if p.name.startswith(".network-final")]
    assert (out / ".notes.txt.x.tmp").is_file()


def test_prepare_out_inside_src_is_refused(tmp_path):
    data = class_folders(tmp_path / "data")
    before = snapshot(data)
    res = invoke("prepare", str(data), str(data / "prepared"), "--size", "16")
    assert res.exit_code == 2 and "read back as input" in res.output, res.output
    assert snapshot(data) == before and not (data / "prepared").exists()


# --- item 3: --out naming an input file -------------------------------------------------------------


def test_score_out_that_is_an_input_image_is_refused(tmp_path):
    a = class_folders(tmp_path / "a") / "ink"
    b = class_folders(tmp_path / "b") / "oil"
    before = snapshot(tmp_path)
    res = invoke("score", str(a), str(b), "--out", str(a / "0.png"), "--metrics", "fid", "--device", "cpu")
    assert res.exit_code == 2 and "is a file of the input A" in res.output, res.output
    assert snapshot(tmp_path) == before


def test_transfer_out_that_is_the_style_image_is_refused(tmp_path):
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    content.write_bytes(png_bytes(1))
    style.write_bytes(png_bytes(200))
    before = snapshot(tmp_path)
    res = invoke("transfer", str(content), str(style), "--out", str(style), "--steps", "1", "--size", "16")
    assert res.exit_code == 2 and "is the input STYLE" in res.output, res.output
    assert snapshot(tmp_path) == before


def test_blend_and_generate_out_that_is_the_network_are_refused(tmp_path):
    from stylekit.nets.stylegan2.load import save_network
    from stylekit.nets.stylegan2.tiny import tiny_generator

    net = save_network(tmp_path / "net.safetensors", G_ema=tiny_generator(16, seed=1))
    before = snapshot(tmp_path)
    res = invoke("blend-layers", "--base", str(net), "--finetuned", str(net), "--out", str(net), "--swap-res", "8")
    assert res.exit_code == 2 and "is the input --base" in res.output, res.output
    res = invoke("generate", "--network", str(net), "--seeds", "0", "--out", str(tmp_path))
    assert res.exit_code == 2 and "contains the input --network" in res.output, res.output
    assert snapshot(tmp_path) == before


# --- item 2: download extraction --------------------------------------------------------------------


class FakeKaggle:
    """Writes <slug>.zip with the given members; `gate` (an Event) makes the download wait for it."""

    def __init__(self, members: dict[str, bytes], gate: threading.Event | None = None) -> None:
        self.members, self.gate, self.started = members, gate, threading.Event()

    def dataset_download_files(self, dataset, path=None, force=False, quiet=True, unzip=False):
        self.started.set()
        if self.gate is not None:
            self.gate.wait(30)
        with zipfile.ZipFile(Path(path) / f"{dataset.split('/')[-1]}.zip", "w") as zf:
            for name, data in self.members.items():
                zf.writestr(name, data)


def test_download_never_replaces_a_users_folder(tmp_path):
    out = tmp_path / "wikiart"
    (out / "Cubism").mkdir(parents=True)
    (out / "Cubism" / "my-painting.jpg").write_bytes(b"irreplaceable")
    before = snapshot(out)
    api = FakeKaggle({"wikiart/Cubism/a.jpg": png_bytes(1), "wikiart/Baroque/b.jpg": png_bytes(2)})
    with pytest.raises(BadInput, match=r"Cubism already exists and was not written by stylekit") as info:
        download_wikiart(out, api=api)
    assert info.value.exit_code == 2
    assert {k: v for k, v in snapshot(out).items() if k.startswith("Cubism/")} == before
    assert not (out / "Baroque").exists() and read_marker(out) is None


def test_download_rerun_replaces_only_its_own_entries(tmp_path):
    out = tmp_path / "wikiart"
    download_wikiart(out, api=FakeKaggle({"wikiart/Cubism/a.jpg": png_bytes(1)}))
    (out / "readme-mine.txt").write_text("mine")
    res = download_wikiart(out, api=FakeKaggle({"wikiart/Cubism/z.jpg": png_bytes(9)}), force=True)
    assert res.summary["images"] == 1 and sorted(p.name for p in (out / "Cubism").iterdir()) == ["z.jpg"]
    assert (out / "readme-mine.txt").read_text() == "mine"


@pytest.mark.parametrize("members, why", [
    ([("w/Cubism/a.jpg", b"1"), ("w/Cubism/a.jpg", b"text, not an image")], "duplicate"),
    ([("w/Cubism/a.jpg", b"1"), ("w/./Cubism/a.jpg", b"text, not an image")], "duplicate"),
    ([("w/Cubism", b"a file"), ("w/Cubism/a.jpg", b"2")], "inside 'w/Cubism', which is a file member"),
    ([("w/Cubism/a.jpg/", b""), ("w/Cubism/a.jpg", b"2")], "a file with the path of the folder"),
    ([("w/Cubism/a.jpg", b"2"), ("w/Cubism/a.jpg/", b"")], "a folder with the path of the file member"),
])
def test_duplicate_and_file_folder_members_are_refused(tmp_path, members, why):
    zpath = tmp_path / "x.zip"
    with zipfile.ZipFile(zpath, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name we write on purpose
        for name, data in members:
            zf.writestr(name, data)
    with pytest.raises(BadInput, match=why):
        archive_mod.extract_archive(zpath, tmp_path / "dest", progress=None)
    assert not any((tmp_path / "dest").rglob("*")), "nothing was extracted"


@pytest.mark.parametrize("name", [".stylekit-download.json", ".download", ".stylekit.lock"])
def test_member_named_like_stylekits_bookkeeping_is_refused(tmp_path, name):
    out = tmp_path / "wikiart"
    with pytest.raises(BadInput, match="stylekit uses for its own bookkeeping"):
        download_wikiart(out, api=FakeKaggle({"Cubism/a.jpg": png_bytes(1), name: b'{"complete": true}'}))
    assert read_marker(out) is None and not list(out.glob(".extracting-*"))


def test_member_named_like_the_old_temp_folder_extracts(tmp_path):
    out = tmp_path / "wikiart"
    res = download_wikiart(out, api=FakeKaggle({"Cubism/a.jpg": png_bytes(1), ".extracting/x.txt": b"x"}))
    assert res.summary["images"] == 1 and (out / ".extracting" / "x.txt").read_bytes() == b"x"


def test_zip_bomb_is_refused_naming_member_and_limit(tmp_path):
    zpath = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zpath, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.png", png_bytes(5))
        zf.writestr("zeros.bin", bytes(64 * 2**20))  # 64 MiB of zeros -> ~64 KB compressed
    assert zpath.stat().st_size < 2**20
    with pytest.raises(BadInput, match=r"'zeros.bin'.*ratio \d+.*limit of ratio 200 \(MAX_RATIO\)") as info:
        archive_mod.extract_archive(zpath, tmp_path / "dest", progress=None)
    assert info.value.exit_code == 2 and not any((tmp_path / "dest").rglob("*"))


def test_member_and_total_size_limits(tmp_path, monkeypatch):
    zpath = tmp_path / "big.zip"
    with zipfile.ZipFile(zpath, "w") as zf:  # stored: ratio 1
        zf.writestr("a.bin", bytes(3000))
        zf.writestr("b.bin", bytes(3000))
    monkeypatch.setattr(archive_mod, "MAX_MEMBER_BYTES", 2000)
    with pytest.raises(BadInput, match=r"'a.bin' declares 3000 bytes.*MAX_MEMBER_BYTES"):
        archive_mod.extract_archive(zpath, tmp_path / "d1", progress=None)
    monkeypatch.setattr(archive_mod, "MAX_MEMBER_BYTES", 10_000)
    monkeypatch.setattr(archive_mod, "MAX_TOTAL_BYTES", 5000)
    with pytest.raises(BadInput, match=r"'b.bin' brings the total to 6000 bytes.*MAX_TOTAL_BYTES"):
        archive_mod.extract_archive(zpath, tmp_path / "d2", progress=None)


def test_second_download_into_the_same_out_is_busy(tmp_path):
    out = tmp_path / "wikiart"
    gate = threading.Event()
    first_api = FakeKaggle({"wikiart/Cubism/a.jpg": png_bytes(1)}, gate=gate)
    results: dict[str, object] = {}
    thread = threading.Thread(target=lambda: results.setdefault("first", download_wikiart(out, api=first_api)))
    thread.start()
    try:
        assert first_api.started.wait(30)
        with pytest.raises(Busy) as info:
            download_wikiart(out, api=FakeKaggle({"Baroque/b.jpg": png_bytes(2)}))
        assert info.value.exit_code == 75
    finally:
        gate.set()
        thread.join(60)
    assert results["first"].summary["images"] == 1 and not (out / "Baroque").exists()


def test_cli_download_while_another_holds_out_exits_75(tmp_path):
    out = tmp_path / "toy"
    holder = textwrap.dedent(f"""
        import time
        from stylekit.io.rundir import DirLock
        lock = DirLock(__import__("pathlib").Path({str(out)!r}))
        __import__("pathlib").Path({str(out)!r}).mkdir(parents=True, exist_ok=True)
        lock.acquire()
        print("locked", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout.readline().strip() == "locked"
        res = invoke("download", "toy-styles", "--out", str(out), "--per-style", "1", "--styles", "1", "--size", "16")
        assert res.exit_code == 75 and "in use" in res.output, res.output
    finally:
        proc.kill()
        proc.wait(30)


# --- issue 24, not yet tried: a full disk during an export, two runs into one --out -------------------


def test_disk_full_during_an_export_keeps_the_previous_file_and_exits_2(tmp_path, monkeypatch):
    """A fake full filesystem: every write_atomic (convert's .pt and .json, blend, generate, reports)
    fails at fsync with ENOSPC. The export exits 2 naming the file; the file it would have replaced and
    the folder are as before (no temp file left)."""
    import errno

    from stylekit.io import atomic
    from stylekit.nets.stylegan2.load import save_network
    from stylekit.nets.stylegan2.tiny import tiny_generator

    net = save_network(tmp_path / "net.safetensors", G_ema=tiny_generator(16, seed=0))
    (tmp_path / "old.png").write_bytes(png_bytes(5))
    before = snapshot(tmp_path)

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)
    res = invoke("convert", str(net), "--to", "nvlabs-state", "--out", str(tmp_path / "g.pt"), "--no-verify")
    assert res.exit_code == 2, res.output
    assert f"cannot write {tmp_path / 'g.pt'}: No space left on device" in res.output and "free space" in res.output
    with pytest.raises(BadInput, match="No space left on device") as info:
        atomic.save_image_atomic(tmp_path / "old.png", __import__("PIL.Image").Image.new("RGB", (4, 4)))
    monkeypatch.undo()
    assert info.value.exit_code == 2
    assert snapshot(tmp_path) == before


def test_two_runs_into_one_out_the_second_exits_75_and_touches_nothing(tmp_path):
    out = tmp_path / "run"
    holder = textwrap.dedent(f"""
        import time
        from stylekit.io.rundir import RunDir
        with RunDir({str(out)!r}) as run:
            run.write_config({{"who": "first"}})
            print("locked", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout.readline().strip() == "locked"
        before = snapshot(out)
        for fresh in ([], ["--fresh"]):
            res = invoke("train-classifier", str(class_folders(tmp_path / "toy")), "--out", str(out), *fresh,
                         "--backbone", "small-cnn", "--no-pretrained", "--epochs", "1", "--device", "cpu")
            assert res.exit_code == 75, res.output
            assert f"{out} is in use by pid {proc.pid}" in res.output and "choose another --out" in res.output
            assert snapshot(out) == before
    finally:
        proc.kill()
        proc.wait()


def test_this_processes_tensorboard_files_are_recorded_and_another_processes_are_not(tmp_path):
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    out = tmp_path / "run"
    with RunDir(out):
        (out / "events.out.tfevents.1.host.999999999.0").write_bytes(b"a user's copy from another run")
        writer = SummaryWriter(log_dir=str(out))
        writer.add_scalar("loss", 1.0, 1)
        writer.close()
    ours = [p.name for p in out.iterdir() if f".{os.getpid()}." in p.name]
    assert len(ours) == 1 and ours[0] in json.loads((out / MARKER_NAME).read_text())["written"]
    with RunDir(out, fresh=True):
        pass
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("events.")) == ["events.out.tfevents.1.host.999999999.0"]
