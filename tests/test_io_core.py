"""Atomic writes and run directories (lock, metrics, fresh)."""

import errno
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from stylekit.errors import BadInput, Busy
from stylekit.io.atomic import write_atomic, write_json_atomic
from stylekit.io.rundir import RunDir, ensure_writable_dir


def test_write_atomic_keeps_old_file_when_writer_fails(tmp_path):
    target = tmp_path / "a.json"
    write_json_atomic(target, {"v": 1})

    def broken(tmp):
        tmp.write_text('{"v": 2, "trunc')
        raise OSError("disk full")

    with pytest.raises(BadInput, match=r"cannot write .*a\.json: disk full"):  # names the file (exit 2)
        write_atomic(target, broken)
    assert target.read_text().strip().replace(" ", "").replace("\n", "") == '{"v":1}'
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"], "no temp file left behind"


def test_rundir_layout_metrics_and_fresh(tmp_path):
    with RunDir(tmp_path / "run") as run:
        run.write_config({"lr": 0.1})
        run.append_metrics({"epoch": 1, "loss": 1.0})
        run.append_metrics({"epoch": 2, "loss": 0.5})
        assert run.checkpoints.is_dir() and run.samples.is_dir()
    with open(tmp_path / "run" / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 3, "lo')  # torn line from a kill mid-write
    with RunDir(tmp_path / "run") as run:
        assert [r["epoch"] for r in run.read_metrics()] == [1, 2]
        run.rewind_metrics("epoch", 1)
        assert [r["epoch"] for r in run.read_metrics()] == [1]
        assert run.read_config() == {"lr": 0.1}
    with RunDir(tmp_path / "run", fresh=True) as run:
        assert run.read_metrics() == [] and run.read_config() is None
        assert (run.path / "log.txt").exists()


def test_second_process_on_same_rundir_is_busy(tmp_path):
    folder = tmp_path / "run"
    holder = textwrap.dedent(
        f"""
        import sys, time
        from stylekit.io.rundir import RunDir
        with RunDir({str(folder)!r}):
            print("locked", flush=True)
            time.sleep(30)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(Busy) as info:
            RunDir(folder).open()
        assert info.value.exit_code == 75 and f"pid {proc.pid} on {socket.gethostname()}" in info.value.message
    finally:
        proc.kill()
        proc.wait()
    with RunDir(folder):
        pass  # lock released when the holder died


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_dir_is_bad_input(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(BadInput):
        ensure_writable_dir(ro / "out")


def test_unwritable_path_under_a_file_is_bad_input(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(BadInput) as info:
        ensure_writable_dir(blocker / "out")
    assert "cannot write" in info.value.message


def test_plain_progress_is_sparse_and_ends_with_the_last_line(monkeypatch):
    import io

    from stylekit.io import console as console_module

    clock = [0.0]
    monkeypatch.setattr(console_module.time, "monotonic", lambda: clock[0])
    stream = io.StringIO()
    con = console_module.Console(stream=stream)
    with con.progress(100, "scan") as task:
        for _ in range(100):  # 100 steps in 1 s: too fast for intermediate lines
            clock[0] += 0.01
            task.advance()
    assert stream.getvalue().splitlines() == ["scan: 100/100 (100%) 1s elapsed, ETA 0s"]
    stream.truncate(0), stream.seek(0)
    with con.progress(10, "slow") as task:
        for _ in range(10):  # 10 s per step: one line per step (10 %, more than 5 s apart)
            clock[0] += 10
            task.update(loss=0.5)
            task.advance()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10 and lines[0].startswith("slow: 1/10 (10%)") and lines[-1].endswith("[loss=0.5]")
    quiet = console_module.Console(quiet=True, stream=stream)
    stream.truncate(0), stream.seek(0)
    with quiet.progress(5, "x") as task:
        task.advance(5)
    quiet.log("hidden")
    quiet.warn("shown")
    assert stream.getvalue() == "warning: shown\n"


def test_atomic_files_follow_the_umask_not_mkstemp(tmp_path):
    old = os.umask(0o022)
    try:
        target = write_json_atomic(tmp_path / "c.json", {"a": 1})
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o644


def test_a_filesystem_without_locks_runs_unlocked_with_a_warning(tmp_path, monkeypatch, capsys):
    import stylekit.io.rundir as rundir

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(rundir.fcntl, "flock", no_locks)
    with RunDir(tmp_path / "run") as run:
        assert run.path.is_dir()
    assert "has no file locks" in capsys.readouterr().err
