"""The CLI conventions every command shares: start-up, --version, errors -> exit codes, --config, --json."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from stylekit.cli.common import Table, command, render
from stylekit.declare import float_list, int_list
from stylekit.errors import BadInput, Busy, MissingResource
from stylekit.io.console import get_console

STYLEKIT = str(Path(sys.executable).parent / "stylekit")


def _demo_app() -> typer.Typer:
    app = typer.Typer()

    @command(app, "echo", help="Echo options back.")
    def echo(
        name: Annotated[str, typer.Argument(help="a name")],
        size: Annotated[int, typer.Option(help="a size")] = 64,
        lr: Annotated[float, typer.Option(help="learning rate")] = 0.1,
        fail: Annotated[str, typer.Option(help="raise an error of this kind")] = "",
    ) -> None:
        if fail == "bad":
            raise BadInput("bad.png: not an image", hint="remove it")
        if fail == "missing":
            raise MissingResource("weights vgg19 not found", fetch_command="stylekit download vgg19")
        if fail == "busy":
            raise Busy("runs/x is in use")
        if fail == "interrupt":
            raise KeyboardInterrupt
        if fail == "boom":
            raise RuntimeError("kaboom")
        if fail == "term":
            import os
            import signal
            import time

            os.kill(os.getpid(), signal.SIGTERM)  # what cron's timeout or a scheduler sends
            time.sleep(5)
        get_console().log("working")
        render({"name": name, "size": size, "lr": lr}, table=lambda r: Table("table", ["k", "v"], [list(kv) for kv in r.items()]))

    @command(app, "other", help="A second command so typer keeps subcommands.")
    def other() -> None:
        pass

    return app


runner = CliRunner()


def test_json_output_is_one_document_on_stdout():
    result = runner.invoke(_demo_app(), ["echo", "x", "--size", "32", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"name": "x", "size": 32, "lr": 0.1}


@pytest.mark.parametrize(
    ("kind", "code", "text"),
    [("bad", 2, "bad.png: not an image"), ("missing", 3, "stylekit download vgg19"), ("busy", 75, "in use"),
     ("interrupt", 130, "interrupted"), ("term", 130, "interrupted"), ("boom", 1, "unexpected RuntimeError: kaboom")],
)
def test_errors_map_to_exit_codes_and_one_line(kind, code, text):
    result = runner.invoke(_demo_app(), ["echo", "x", "--fail", kind])
    assert result.exit_code == code
    assert text in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")


@pytest.mark.parametrize(("kind", "code"), [("boom", 1), ("bad", 2), ("missing", 3), ("interrupt", 130)])
def test_debug_env_adds_the_traceback_and_keeps_the_exit_code(monkeypatch, kind, code):
    monkeypatch.setenv("STYLEKIT_DEBUG", "1")
    result = runner.invoke(_demo_app(), ["echo", "x", "--fail", kind])
    assert result.exit_code == code
    assert "Traceback" in result.stderr and "error: " in result.stderr


@pytest.mark.parametrize(("kind", "code"), [("bad", 2), ("boom", 1), ("interrupt", 130)])
def test_json_failure_is_one_json_document_on_stdout(kind, code):
    result = runner.invoke(_demo_app(), ["echo", "x", "--fail", kind, "--json"])
    assert result.exit_code == code
    doc = json.loads(result.stdout)
    assert set(doc) == {"error", "hint", "exit_code"} and doc["exit_code"] == code
    result = runner.invoke(_demo_app(), ["echo", "x", "--size", "big", "--json"])  # a click usage error
    assert result.exit_code == 2 and json.loads(result.stdout)["exit_code"] == 2


def test_config_file_supplies_defaults_and_flags_win(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('size = 128\nlr = 0.5\n[echo]\nlr = 0.25\n')
    result = runner.invoke(_demo_app(), ["echo", "x", "--config", str(cfg), "--json"])
    assert json.loads(result.stdout) == {"name": "x", "size": 128, "lr": 0.25}
    result = runner.invoke(_demo_app(), ["echo", "x", "--config", str(cfg), "--size", "16", "--json"])
    assert json.loads(result.stdout)["size"] == 16


def test_config_file_errors(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("sise = 1\n[echo]\nsize = 8\n")  # a top-level typo is never ignored
    result = runner.invoke(_demo_app(), ["echo", "x", "--config", str(cfg)])
    assert result.exit_code == 2 and "unknown option 'sise'" in result.stderr and "did you mean 'size'" in result.stderr
    cfg.write_text("[echo]\nsixe = 1\n")  # nor in the command's own table
    result = runner.invoke(_demo_app(), ["echo", "x", "--config", str(cfg)])
    assert result.exit_code == 2 and "unknown option 'sixe'" in result.stderr and "did you mean 'size'" in result.stderr
    cfg.write_text("[ecko]\nsize = 1\n")
    result = runner.invoke(_demo_app(), ["echo", "x", "--config", str(cfg)])
    assert result.exit_code == 2 and "unknown option '[ecko]'" in result.stderr and "[echo]" in result.stderr
    result = runner.invoke(_demo_app(), ["echo", "x", "--config", str(tmp_path)])
    assert result.exit_code == 2 and "is a directory" in result.stderr
    cfg.write_text("size = [")
    result = runner.invoke(_demo_app(), ["echo", "x", "--config", str(cfg)])
    assert result.exit_code == 2 and "not valid TOML" in result.stderr
    result = runner.invoke(_demo_app(), ["echo", "x", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_quiet_silences_logs_but_not_results():
    result = runner.invoke(_demo_app(), ["echo", "x", "--quiet"])
    assert result.exit_code == 0 and "working" not in result.stderr
    assert "table" in result.stdout
    result = runner.invoke(_demo_app(), ["echo", "x"])
    assert "working" in result.stderr and "table" in result.stdout and "table" not in result.stderr


def test_parse_lists():
    assert int_list("0-3,7") == (0, 1, 2, 3, 7)
    assert float_list("1,0.5") == (1.0, 0.5)
    with pytest.raises(BadInput):
        int_list("5-2")
    with pytest.raises(BadInput):
        int_list("a,b")


def test_help_is_fast_and_imports_no_torch():
    code = "import sys, stylekit.cli.app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_installed_entry_point_version_and_help():
    out = subprocess.run([STYLEKIT, "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("stylekit ")
    out = subprocess.run([sys.executable, "-m", "stylekit", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "Usage" in out.stdout


def test_config_file_may_hold_required_arguments(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('name = "from-config"\n')
    result = runner.invoke(_demo_app(), ["echo", "--config", str(cfg), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["name"] == "from-config"


def test_config_file_may_set_the_shared_options(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("json = true\nquiet = true\nsize = 8\n")
    result = runner.invoke(_demo_app(), ["echo", "x", "--config", str(cfg)])
    assert result.exit_code == 0 and json.loads(result.stdout)["size"] == 8
    assert "working" not in result.stderr
