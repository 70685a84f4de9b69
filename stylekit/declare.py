"""Option declarations: every command's options are the fields of one frozen config dataclass.

A field declares, once, everything about one option: its flag, type, default, bounds or choices (an
Enum type), unit, help text and the values the combination tests try. From the declaration come the
Typer signature (stylekit/cli/common.py), the `--config` keys, the option tables of docs/cli.md
(stylekit/cli/docs.py) and validation: constructing the config validates it, so the CLI and a Python
caller get the same one-line BadInput (exit 2). Cross-option rules live in the config's `check()`.
The library receives a validated config and never re-checks it.

    @dataclass(frozen=True)
    class Pix2PixConfig(Config):
        data: Path = argument("toy-styles folder, A/ + B/, or aligned pairs.")
        refs: int = option(5, "K style references per target (0 = plain pix2pix).", ge=0, le=64)
        norm: Norm = option(Norm.batch, "Normalisation layers.")

        def check(self) -> None:
            require(self.refs or not self.ref_cls_weight, "--ref-cls-weight needs --refs >= 1")

Standard library only: the CLI imports every declaration to build `--help`.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
import os
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any

from stylekit.errors import BadInput
from stylekit.vocabulary import ANY, CONCEPTS


@dataclass(frozen=True)
class Decl:
    """What the command line knows about one config field (see `option`)."""

    help: str
    flags: tuple[str, ...] = ()  # long flag first, then short ones; () = --field-name
    off_flag: str | None = None  # bools: the flag that turns it off (--no-NAME by default)
    argument: bool = False  # a positional argument
    panel: str | None = None  # --help group
    ge: float | None = None  # inclusive lower bound (numbers, or each number of a tuple)
    le: float | None = None  # inclusive upper bound
    gt: float | None = None  # exclusive lower bound
    unit: str | None = None  # shown in --help and the docs: "px", "images", "kimg"
    parse: Callable[[str, str], Any] | None = None  # CLI text -> value, e.g. '0-99,120' -> (0, ..., 99, 120)
    cover: tuple[Any, ...] | None = None  # values the combination tests try (None: derived; (): not varied)
    metavar: str | None = None

    def bounds_text(self) -> str:
        parts = [f">= {_num(self.ge)}" if self.ge is not None else "", f"> {_num(self.gt)}" if self.gt is not None else "",
                 f"<= {_num(self.le)}" if self.le is not None else ""]
        return ", ".join(p for p in parts if p)


def _num(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() and abs(value) >= 10_000 else f"{value:g}"


REQUIRED: Any = MISSING


def option(default: Any = REQUIRED, help: str = "", *, concept: str | None = None, flags: tuple[str, ...] | str | None = None,
           **decl: Any) -> Any:
    """A config field that is a command-line option. `concept` takes the flags, default, help and panel
    of a shared concept (stylekit/vocabulary.py); `help`/`default` given here sharpen them."""
    if isinstance(flags, str):
        flags = (flags,)
    if concept is not None:
        spec = CONCEPTS[concept]
        flags = flags or spec.decls
        help = help or spec.help
        decl.setdefault("panel", spec.panel)
        if spec.off_flag:
            decl.setdefault("off_flag", spec.off_flag)
        if default is REQUIRED and spec.default is not ANY:
            default = spec.default
    meta = {"decl": Decl(help=help, flags=tuple(flags or ()), **decl)}
    if isinstance(default, list | dict | set):
        raise TypeError("declare sequences as tuples (a frozen config holds no mutable default)")
    return dataclasses.field(default=default, metadata=meta)


def argument(help: str, default: Any = REQUIRED, **decl: Any) -> Any:
    """A config field that is a positional command-line argument."""
    return option(default, help, argument=True, **decl)


def require(condition: Any, message: str, hint: str | None = None) -> None:
    """A cross-option rule: exit 2 with `message` (which names the options) when `condition` is false."""
    if not condition:
        raise BadInput(message, hint=hint)


def flag_name(name: str, decl: Decl) -> str:
    """How an option is written on the command line (arguments: upper case)."""
    if decl.argument:
        return name.upper()
    return decl.flags[0] if decl.flags else "--" + name.replace("_", "-")


@dataclass(frozen=True)
class Declared:
    """One declared field: its name, declaration, type (Optional unwrapped) and default."""

    name: str
    decl: Decl
    type: Any  # the value type: int, float, bool, str, Path, an Enum, or tuple[X, ...]
    optional: bool  # None is allowed
    default: Any  # REQUIRED when the field has none

    @property
    def flag(self) -> str:
        return flag_name(self.name, self.decl)

    @property
    def item(self) -> Any:
        """The element type of a tuple field, else the type itself."""
        return typing.get_args(self.type)[0] if typing.get_origin(self.type) is tuple else self.type

    @property
    def is_tuple(self) -> bool:
        return typing.get_origin(self.type) is tuple

    @property
    def choices(self) -> list[str] | None:
        item = self.item
        return [m.value for m in item] if isinstance(item, type) and issubclass(item, enum.Enum) else None


def declarations(cls: type) -> list[Declared]:
    """The declared fields of a config class, in declaration order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        decl = f.metadata.get("decl")
        if decl is None:
            continue
        tp = hints[f.name]
        args = typing.get_args(tp)
        optional = (typing.get_origin(tp) in (typing.Union, types.UnionType)) and type(None) in args
        if optional:
            rest = [a for a in args if a is not type(None)]
            tp = rest[0]
        out.append(Declared(f.name, decl, tp, optional, f.default))
    return out


def _closest(word: str, choices: list[str]) -> str | None:
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return match[0] if match else None


def _scalar(d: Declared, tp: Any, value: Any) -> Any:
    """One value converted to `tp` and checked against the declaration's bounds."""
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value.value if isinstance(value, enum.Enum) else value)
        except ValueError:
            choices = [m.value for m in tp]
            near = _closest(str(value), choices)
            raise BadInput(f"{d.flag} must be one of {' | '.join(choices)}, got '{value}'",
                           hint=f"did you mean '{near}'?" if near else None) from None
    if tp is bool:
        if not isinstance(value, bool):
            raise BadInput(f"{d.flag} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise BadInput(f"{d.flag} must be an integer, got {value!r}")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadInput(f"{d.flag} must be a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise BadInput(f"{d.flag} must be a finite number, got {value}")
    elif tp is Path:
        if not isinstance(value, str | Path):
            raise BadInput(f"{d.flag} must be a path, got {value!r}")
        return Path(value)
    elif tp is str:
        if isinstance(value, os.PathLike):  # a Python caller's Path for a text option (a spec that may be a path)
            return os.fspath(value)
        if not isinstance(value, str):
            raise BadInput(f"{d.flag} must be text, got {value!r}")
        return value
    if (d.decl.ge is not None and value < d.decl.ge) or (d.decl.le is not None and value > d.decl.le) or \
            (d.decl.gt is not None and value <= d.decl.gt):
        raise BadInput(f"{d.flag} must be {d.decl.bounds_text()}, got {value}")
    return value


def check_value(d: Declared, value: Any) -> Any:
    """The value a field holds after validation (parsed, converted, in bounds) or BadInput naming the option."""
    if value is None:
        if d.optional:
            return None
        raise BadInput(f"{d.flag} is required")
    if d.decl.parse is not None and isinstance(value, str):
        value = d.decl.parse(value, d.flag)
    if d.is_tuple:
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
            raise BadInput(f"{d.flag} must be a list, got {value!r}")
        return tuple(_scalar(d, d.item, v) for v in value)
    return _scalar(d, d.type, value)


class Config:
    """Base of every command's declaration (a frozen dataclass): validates itself on construction.

    Subclasses add cross-option rules in `check()`, using `require`."""

    def __post_init__(self) -> None:
        for d in declarations(type(self)):
            object.__setattr__(self, d.name, check_value(d, getattr(self, d.name)))
        self.check()

    def check(self) -> None:
        """Rules that involve several options (BadInput naming them)."""

    def replace(self, **changes: Any) -> Any:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (paths and enums as text, tuples as lists), e.g. for OUT/config.json."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str) -> Any:
        """A config from a mapping (a saved config.json, a TOML table): unknown keys are BadInput naming the
        closest valid one."""
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        for key in values:
            if key not in names:
                raise unknown_key(source, key, names)
        return cls(**values)


def unknown_key(source: str, key: str, valid: list[str]) -> BadInput:
    """The error for a key that names no option, with the closest one that does."""
    near = _closest(key, valid)
    return BadInput(f"{source}: unknown option '{key}'", hint=f"did you mean '{near}'?" if near else "see the command's --help")


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def cover_values(d: Declared) -> list[Any]:
    """The values the combination tests try for one option: its `cover`, else every choice, both states of
    a flag, or the default and the lower bound of a number; () means the option is not varied."""
    if d.decl.cover is not None:
        return list(d.decl.cover)
    if d.choices is not None and not d.is_tuple:
        return list(d.item)
    if d.type is bool:
        return [False, True]
    if d.type in (int, float) and d.default is not REQUIRED:
        low = d.decl.ge if d.decl.ge is not None else None
        values = [d.default] + ([d.type(low)] if low is not None and low != d.default else [])
        return values + ([None] if d.optional and d.default is not None else [])
    return []


def iter_numbers(cls: type) -> Iterator[Declared]:
    """Every numeric option of a config (ints and floats, also inside tuples)."""
    for d in declarations(cls):
        if d.item in (int, float):
            yield d


# -- parsers for list-valued options (declare with parse=...) ----------------------------------------

MAX_LIST = 1_000_000  # values one option may name: more is a typo or a run to split (a list of 1e9 ints is ~40 GB)


def int_list(text: str, option: str = "value", limit: int = MAX_LIST) -> tuple[int, ...]:
    """Parse '0-99,120' or '1,3,5' into integers (ranges inclusive, order kept); at most `limit` values,
    counted before anything is expanded."""
    spans: list[tuple[int, int]] = []
    try:
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            lo, sep, hi = part.partition("-") if not part.startswith("-") else (part, "", "")
            a, b = (int(lo), int(hi)) if sep else (int(part), int(part))
            if b < a:
                raise ValueError
            spans.append((a, b))
    except ValueError:
        raise BadInput(f"bad {option} '{text}'", hint="use integers and inclusive ranges, e.g. 0-99,120") from None
    count = sum(b - a + 1 for a, b in spans)
    if not count:
        raise BadInput(f"empty {option} '{text}'", hint="give at least one integer, e.g. 0-3")
    if count > limit:
        raise BadInput(f"{option} '{text}' names {count:,} values (about {count * 36 / 2**30:.1f} GB as a list); at most {limit:,} per run",
                       hint="split the work into several runs with smaller ranges")
    return tuple(v for a, b in spans for v in range(a, b + 1))


def float_list(text: str, option: str = "value") -> tuple[float, ...]:
    """Parse '1,0.5,2' into floats."""
    try:
        values = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise BadInput(f"bad {option} '{text}'", hint="use comma-separated numbers, e.g. 1,0.5") from None
    if not values:
        raise BadInput(f"empty {option} '{text}'", hint="give at least one number")
    return tuple(values)


__all__ = ["REQUIRED", "Config", "Decl", "Declared", "argument", "check_value", "cover_values", "declarations",
           "flag_name", "float_list", "int_list", "iter_numbers", "option", "require", "unknown_key"]
