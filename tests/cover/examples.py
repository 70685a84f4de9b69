"""The `--help` examples of a command, run as written in a scratch folder (tiny sizes substituted)."""

from __future__ import annotations

import shlex

import typer
from typer.testing import CliRunner

from stylekit.cli.app import app

runner = CliRunner()


def help_examples(command: str) -> list[list[str]]:
    """The example lines of `stylekit COMMAND --help` as argument lists (without the leading `stylekit`)."""
    epilog = typer.main.get_command(app).commands[command].epilog or ""  # type: ignore[attr-defined]
    lines = [line.strip() for line in epilog.splitlines() if line.strip().startswith("stylekit ")]
    return [shlex.split(line)[1:] for line in lines]


def shrink(words: list[str], overrides: dict[str, str]) -> list[str]:
    """`words` with the values of the options in `overrides` replaced (options it lacks are left out)."""
    out = list(words)
    for option, value in overrides.items():
        if option in out:
            out[out.index(option) + 1] = value
    return out


def run_example(words: list[str]) -> tuple[int, str]:
    """Run one example in-process; (exit code, stderr + stdout)."""
    result = runner.invoke(app, words)
    return result.exit_code, result.stderr + result.stdout
