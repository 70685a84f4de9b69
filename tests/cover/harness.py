"""Combination tests generated from the declarations (stylekit/declare.py).

`pairwise_rows(Config)` builds an all-pairs cover (allpairspy) of a command's options from each field's
`cover_values`: every choice, each flag on and off, the default and the lower bound of a number, or the
tiny values the declaration names. Adding an option to a declaration adds it to the cover. `run_row`
runs one row in-process through the real CLI and holds it to the contract: exit 0, or exit 2 with one
`error:` line naming an option; never exit 1, never a traceback.
"""

from __future__ import annotations

import enum
import json
import math
from pathlib import Path
from typing import Any

from allpairspy import AllPairs
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.declare import Declared, cover_values, declarations

runner = CliRunner()


def varied(config: type, fixed: dict[str, Any] | None = None) -> list[tuple[Declared, list[Any]]]:
    """The options the cover varies, with their values (options in `fixed` are held at that value)."""
    fixed = fixed or {}
    out = []
    for d in declarations(config):
        values = cover_values(d)
        if d.name in fixed or len(values) < 1:
            continue
        out.append((d, values))
    return out


def pairwise_rows(config: type, fixed: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """An all-pairs cover of the varied options: each row maps option names to values (plus `fixed`)."""
    axes = varied(config, fixed)
    singles = [(d, v) for d, v in axes if len(v) == 1]
    multi = [(d, v) for d, v in axes if len(v) > 1]
    base = {d.name: v[0] for d, v in singles} | dict(fixed or {})
    if len(multi) < 2:
        return [base | ({multi[0][0].name: value} if multi else {}) for value in (multi[0][1] if multi else [None])]
    return [base | {d.name: value for (d, _), value in zip(multi, row, strict=True)} for row in AllPairs([v for _, v in multi])]


def pairwise_over(values: dict[str, list[Any]], fixed: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """An all-pairs cover over the named options only (e.g. those that change what a trainer computes)."""
    names = list(values)
    return [dict(fixed or {}) | dict(zip(names, row, strict=True)) for row in AllPairs([values[n] for n in names])]


def _text(d: Declared, value: Any) -> str:
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, tuple | list):
        return ",".join(_text(d, v) for v in value)
    return str(value)


def to_args(config: type, row: dict[str, Any]) -> list[str]:
    """The command-line words of one row (arguments first, in declaration order)."""
    by_name = {d.name: d for d in declarations(config)}
    args: list[str] = []
    opts: list[str] = []
    for name, value in row.items():
        d = by_name[name]
        if value is None:
            continue  # None: the option's own default
        flag = d.decl.flags[0] if d.decl.flags else "--" + d.name.replace("_", "-")
        if d.decl.argument:
            args.extend([_text(d, v) for v in value] if isinstance(value, tuple) and d.decl.parse is None else [_text(d, value)])
        elif d.type is bool:
            off = d.decl.off_flag or "--no-" + flag[2:]
            if value:
                opts.append(flag)
            elif d.decl.off_flag or d.default is True:
                opts.append(off)
        elif d.is_tuple and d.decl.parse is None:
            for v in value:
                opts.extend([flag, _text(d, v)])
        else:
            opts.extend([flag, _text(d, value)])
    return args + opts


def run_row(command: str, config: type, row: dict[str, Any], extra: list[str] | None = None):
    """Run one row through the CLI with --json; return (exit_code, document or None, stderr)."""
    words = [command, *to_args(config, row), *(extra or []), "--json", "--quiet"]
    result = runner.invoke(app, words)
    stderr = result.stderr
    assert "Traceback" not in stderr, f"{' '.join(words)}\n{stderr}"
    assert result.exit_code in (0, 2), f"exit {result.exit_code}: stylekit {' '.join(words)}\n{stderr}{result.output}"
    if result.exit_code == 2:
        lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1 and "-" in lines[0], f"exit 2 must name the option in one line: {stderr}"
        return 2, None, stderr
    return 0, json.loads(result.stdout), stderr


def finite_numbers(doc: Any) -> bool:
    """Every number in a result document is finite."""
    if isinstance(doc, dict):
        return all(finite_numbers(v) for v in doc.values())
    if isinstance(doc, list):
        return all(finite_numbers(v) for v in doc)
    if isinstance(doc, float):
        return math.isfinite(doc)
    return True


def promised_files(out: Path, names: list[str]) -> list[str]:
    """The promised files missing under `out`."""
    return [n for n in names if not (out / n).exists()]
