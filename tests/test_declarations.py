"""Every command's options come from one declaration (stylekit/declare.py), and the declaration holds.

Walks every registered command: it has a declaration; each numeric option is bounded on both sides; the
bound itself is accepted and a value beyond it (or a non-finite one) is refused naming the option; a
wrong choice is refused with the closest one; --help shows every declared flag; docs/cli.md's option
tables are the generated ones.
"""

import math
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.cli.docs import declared_commands, with_tables
from stylekit.declare import Declared, check_value, declarations
from stylekit.errors import BadInput

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = typer.main.get_command(app).commands
DECLARED = declared_commands()
runner = CliRunner()


def _numbers():
    for name, config in DECLARED.items():
        for d in declarations(config):
            if d.item in (int, float) and not d.decl.argument:
                yield pytest.param(d, id=f"{name}:{d.flag}")


def test_every_command_has_one_declaration():
    assert sorted(DECLARED) == sorted(COMMANDS), f"commands without a declaration: {sorted(set(COMMANDS) - set(DECLARED))}"


@pytest.mark.parametrize("d", list(_numbers()))
def test_numeric_options_are_bounded_and_the_bounds_hold(d: Declared):
    low = d.decl.ge if d.decl.ge is not None else d.decl.gt
    assert low is not None and d.decl.le is not None, f"{d.flag}: declare both bounds (ge/gt and le)"

    def value(x: float):
        return (x,) if d.is_tuple else x

    if d.decl.ge is not None:
        assert check_value(d, value(d.item(d.decl.ge))) is not None
    assert check_value(d, value(d.item(d.decl.le))) is not None
    step = 1 if d.item is int else max(abs(d.decl.le) * 1e-6, 1e-9)
    for beyond in (d.decl.le + step, low - step if d.decl.ge is not None else low):
        with pytest.raises(BadInput, match=d.flag):
            check_value(d, value(d.item(beyond) if d.item is int else beyond))
    if d.item is float:
        with pytest.raises(BadInput, match=d.flag):
            check_value(d, value(math.nan))


def _choices():
    for name, config in DECLARED.items():
        for d in declarations(config):
            if d.choices:
                yield pytest.param(d, id=f"{name}:{d.flag}")


@pytest.mark.parametrize("d", list(_choices()))
def test_a_wrong_choice_names_the_option_and_the_closest_choice(d: Declared):
    first = d.choices[0]
    with pytest.raises(BadInput, match=d.flag) as info:
        check_value(d, (first + "x",) if d.is_tuple else first + "x")
    assert first in (info.value.hint or "")


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_help_shows_every_declared_option(name):
    result = runner.invoke(app, [name, "--help"], env={"COLUMNS": "400"})  # wide: no option name is cut
    assert result.exit_code == 0
    for d in declarations(DECLARED[name]):
        if not d.decl.argument:
            assert (d.decl.flags or ("--" + d.name.replace("_", "-"),))[0] in result.stdout, f"{name}: {d.flag}"


def test_docs_cli_tables_are_generated_from_the_declarations():
    doc = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert with_tables(doc) == doc, "docs/cli.md is stale: run `python -m stylekit.cli.docs --write docs/cli.md`"


def test_a_declared_option_is_a_config_key(tmp_path):
    """--config keys are the declared names: a value from the file reaches the config (and is validated)."""
    cfg = tmp_path / "c.toml"
    cfg.write_text("[train-pix2pix]\nrefs = 99\n")
    result = runner.invoke(app, ["train-pix2pix", str(tmp_path), "--out", str(tmp_path / "o"), "--config", str(cfg)])
    assert result.exit_code == 2 and "--refs must be >= 0, <= 64, got 99" in result.stderr
    assert not (tmp_path / "o").exists()
