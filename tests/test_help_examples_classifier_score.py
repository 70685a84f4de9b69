"""Every `--help` example of train-classifier and score runs as written, offline, in an empty folder: the data
comes from the toy-styles example, weights and networks from the random-init stand-ins the examples name."""

import json
import shlex

import pytest
import typer
from typer.testing import CliRunner

from stylekit.cli.app import app

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
COMMANDS = ("train-classifier", "score")


def help_examples(command: str) -> list[str]:
    epilog = typer.main.get_command(app).commands[command].epilog or ""
    return [line.strip() for line in epilog.splitlines() if line.strip().startswith(("stylekit ", "torchrun "))]


def in_process(example: str) -> list[str]:
    """The words after `stylekit` (a torchrun line runs its command in one process: tests/test_classifier_ddp.py
    runs two)."""
    words = shlex.split(example)
    if words[0] == "torchrun":
        words = words[words.index("-m") + 1:]
    assert words[0] == "stylekit", example
    return words[1:]


def test_every_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    examples = list(dict.fromkeys(e for command in COMMANDS for e in help_examples(command)))
    assert len(examples) >= 10 and examples[0].startswith("stylekit download toy-styles")
    runner = CliRunner()
    for example in examples:
        result = runner.invoke(app, in_process(example))
        assert result.exit_code == 0, f"{example}\n{result.output}"
        if "--json" in example:
            doc = json.loads(result.stdout)
            assert "random-init stand-in" in result.stderr and doc["stand_ins"]
    assert json.loads((tmp_path / "report.json").read_text())["pairs"]["matched"] == 10
    assert (tmp_path / "runs" / "style-eval" / "test_metrics.json").is_file()
