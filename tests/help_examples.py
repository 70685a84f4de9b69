"""The `Examples:` lines of a command's --help, as argument lists (tests run them on data they make)."""

import shlex

import typer

from stylekit.cli.app import app


def help_examples(name: str) -> list[list[str]]:
    """Every `stylekit ...` example line of `stylekit NAME --help`, without the leading `stylekit`."""
    epilog = typer.main.get_command(app).commands[name].epilog or ""
    lines = [line.strip() for line in epilog.splitlines() if line.strip().startswith("stylekit ")]
    assert lines, f"{name}: no examples in --help"
    return [shlex.split(line)[1:] for line in lines]
