"""The `--help` examples of a command, run as written in a scratch folder (tiny sizes substituted)."""

from __future__ import annotations

import shlex

import typer
from typer.testing import CliRunner

from stylekit.cli.app import app

runner = CliRunner()


def help_examples(command: str) -> list[list[str]]:
    """The example lines of `stylekit COMMAND --help` as argument lists after `stylekit` (a `torchrun ... -m
    stylekit ...` line gives the same command run in one process)."""
    epilog = typer.main.get_command(app).commands[command].epilog or ""  # type: ignore[attr-defined]
    examples = []
    for line in epilog.splitlines():
        words = shlex.split(line.strip()) if line.startswith("  ") else []
        if words[:1] == ["stylekit"]:
            examples.append(words[1:])
        elif words[:1] == ["torchrun"] and "stylekit" in words:
            examples.append(words[words.index("stylekit") + 1:])
    return examples


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
