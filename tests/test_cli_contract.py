"""The CLI contract of docs/cli.md, checked over every registered command (new ones included).

- every option uses the vocabulary (stylekit/vocabulary.py): canonical names, one default, no banned name;
- --help is the same everywhere: examples one per line at the end, option groups in one order, value
  placeholders instead of Python type names, help text shown literally;
- renamed options are gone (one name per concept; the renames are listed once in CHANGELOG.md);
- results go to stdout, --json failures are JSON, --config drives a pipeline.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.cli.common import StylekitCommand
from stylekit.vocabulary import ANY, BANNED, CONCEPTS, SHARED_PANELS

runner = CliRunner()
COMMANDS = typer.main.get_command(app).commands
STYLEKIT = str(Path(sys.executable).parent / "stylekit")


def _options(cmd):
    return [p for p in cmd.params if p.param_type_name == "option"]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_uses_the_vocabulary(name):
    cmd = COMMANDS[name]
    assert isinstance(cmd, StylekitCommand), f"{name}: register it with stylekit.cli.common.command"
    by_flag = {spec.decls[0]: (key, spec) for key, spec in CONCEPTS.items()}
    for param in _options(cmd):
        for flag in [*param.opts, *param.secondary_opts]:
            assert flag not in BANNED, f"{name}: {flag} is not a stylekit name; use {BANNED[flag]} (docs/cli.md)"
        if param.opts[0] not in by_flag:
            assert param.name not in CONCEPTS or param.name in ("out",), \
                f"{name}: parameter '{param.name}' must use the canonical flag {CONCEPTS[param.name].decls[0]}"
            continue
        key, spec = by_flag[param.opts[0]]
        assert tuple(param.opts) == spec.decls, f"{name}: {key} is spelled {' / '.join(spec.decls)}"
        assert tuple(param.secondary_opts) == ((spec.off_flag,) if spec.off_flag else ()), f"{name}: {key} flag form"
        if spec.default is not ANY and not param.required:
            assert param.default == spec.default, f"{name}: {param.opts[0]} defaults to {spec.default!r}, not {param.default!r}"


def test_every_command_that_writes_takes_out():
    for name, cmd in COMMANDS.items():
        flags = {o for p in _options(cmd) for o in p.opts}
        args = {p.name for p in cmd.params if p.param_type_name == "argument"}
        assert "--out" in flags or "out" in args or name in ("download", "stats"), name  # these two write only the cache
        if "--out" in flags:
            assert "-o" in flags, f"{name}: --out/-o"


def _help(name: str) -> str:
    result = runner.invoke(app, [name, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_has_examples_last_one_per_line_and_panels_in_order(name):
    text = _help(name)
    assert not re.search(r"<(int|str|bool|float|path|list\[\w+\])>", text), f"{name}: Python type names in --help"
    head, sep, examples = text.partition("Examples:")
    assert sep, f"{name}: no Examples: (give command(..., examples=[...]))"
    assert "╭" not in examples, f"{name}: the examples must come after every option group"
    lines = [line.strip() for line in examples.strip().splitlines() if line.strip()]
    commands = [line for line in lines if line.startswith(("stylekit ", "torchrun "))]
    assert commands and commands[0] == lines[0], f"{name}: examples start at the line after Examples:"
    assert all(f"stylekit {name}" in c or "stylekit" in c for c in commands)
    panels = re.findall(r"╭─ (.+?) ─", head)
    shared = [p for p in panels if p in SHARED_PANELS]
    assert shared == [p for p in SHARED_PANELS if p in panels] and panels[-len(shared):] == shared, \
        f"{name}: option groups out of order: {panels}"
    assert panels[0] in ("Arguments", "Options"), panels


def test_help_text_is_literal_not_rich_markup():
    assert "r_t = E[sign(D(real))]" in _help("finetune-stylegan")


def test_results_on_stdout_so_they_can_be_piped():
    result = runner.invoke(app, ["download", "--list"], terminal_width=200)
    assert result.exit_code == 0
    assert "ffhq-256" in result.stdout and "toy-styles" in result.stdout and "ffhq" not in result.stderr
    proc = subprocess.run(["bash", "-c", f"'{STYLEKIT}' download --list | grep ffhq-256"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "ffhq-256" in proc.stdout


def test_json_failure_of_a_real_command_is_json_on_stdout(tmp_path):
    result = runner.invoke(app, ["generate", "--network", str(tmp_path / "nope.pkl"), "--seeds", "0", "--out", str(tmp_path / "g"), "--json"])
    assert result.exit_code in (2, 3)
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == result.exit_code and "nope.pkl" in doc["error"]
    result = runner.invoke(app, ["generate", "--seeds", "0", "--json"])  # a usage error: missing options
    assert result.exit_code == 2 and json.loads(result.stdout)["exit_code"] == 2


def test_one_config_file_drives_a_pipeline(tmp_path):
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(f"""
size = 16          # every command with --size
seed = 3           # every command with --seed
quiet = true

[download]
name = "toy-styles"
out = "{tmp_path / 'toy'}"
per-style = 4
styles = 2

[prepare]
src = "{tmp_path / 'toy'}"
out = "{tmp_path / 'toy16'}"
exclude = ["content"]
split = [0.5, 0.25, 0.25]
""")
    first = runner.invoke(app, ["download", "--config", str(cfg)])
    assert first.exit_code == 0, first.output
    from PIL import Image

    pngs = sorted((tmp_path / "toy").rglob("*.png"))
    assert pngs and Image.open(pngs[0]).size == (16, 16)
    second = runner.invoke(app, ["prepare", "--config", str(cfg), "--json"])
    assert second.exit_code == 0, second.output
    doc = json.loads(second.stdout)
    assert doc["used"] == 8 and sorted(doc["labels"]) == sorted(p.name for p in (tmp_path / "toy").iterdir() if p.is_dir() and p.name != "content")
    assert (tmp_path / "toy16" / "manifest.csv").is_file()
    cfg.write_text(cfg.read_text() + "[prepare.extra]\n")  # a table is not an option
    bad = runner.invoke(app, ["prepare", "--config", str(cfg)])
    assert bad.exit_code == 2
