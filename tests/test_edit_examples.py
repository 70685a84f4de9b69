"""Every --help example of generate, mix, blend-layers, convert, invert and styleclip runs (exit 0) on what the
examples themselves make (random:RES stand-ins) plus a tiny CLIP folder this test writes."""

import shlex

import pytest
import typer
from clip_tiny import make_tiny_clip_dir
from typer.testing import CliRunner

from stylekit.cli.app import app

pytestmark = pytest.mark.usefixtures("one_thread")
ORDER = ("generate", "mix", "blend-layers", "convert", "invert", "styleclip")  # later examples read earlier outputs


def _examples(name: str) -> list[str]:
    epilog = typer.main.get_command(app).commands[name].epilog or ""
    return [line.strip() for line in epilog.splitlines() if line.strip().startswith("stylekit ")]


def test_every_example_of_these_commands_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_tiny_clip_dir(tmp_path / "clip-tiny")
    runner = CliRunner()
    ran = 0
    for name in ORDER:
        examples = _examples(name)
        assert examples, f"{name} --help shows no example"
        for line in examples:
            result = runner.invoke(app, [*shlex.split(line)[1:], "--quiet"])
            assert result.exit_code == 0, f"{line}\n{result.output}"
            ran += 1
    assert ran >= 12
    assert (tmp_path / "edit" / "grid.png").is_file() and (tmp_path / "inv" / "latent.npz").is_file()
