"""What every command shares: the command class, --config/--quiet/--json, errors -> exit codes, output.

`command(app, name, help=..., examples=[...])` registers a function as a command that:
- gains `--config FILE.toml`, `--quiet` and `--json` (the Common panel, always last in --help);
- reads --config into click's default map before parsing, so a file may supply any option or argument
  (explicit flags win): top-level keys apply to every command that has them, a [command] table
  overrides them and must hold only that command's options (docs/cli.md);
- takes its options from its declaration (`config=`, stylekit/declare.py) and passes `func` the validated config;
- maps StylekitError to one `error:` line (plus `hint:`) and its exit code, KeyboardInterrupt/SIGTERM to
  130, anything else to 1; with --json the same error is also one JSON document on stdout;
  STYLEKIT_DEBUG=1 adds the traceback and keeps the exit code;
- renders its help the same way everywhere: examples one per line in the epilog, option groups in one
  order, value placeholders instead of Python type names, help text shown literally (no rich markup).
"""

import functools
import inspect
import os
import signal
import sys
import threading
import traceback
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

import typer
from typer.core import TyperArgument, TyperCommand, TyperOption

try:  # recent typer vendors click: its classes are the ones raised and instantiated
    from typer._click.core import Context, Parameter
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover - older typer uses the click package
    from click import ClickException, Context, Parameter, UsageError  # type: ignore[assignment]

from stylekit.declare import REQUIRED, Declared, declarations, float_list, int_list, unknown_key
from stylekit.errors import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_INTERRUPTED, BadInput, StylekitError
from stylekit.io.console import configure, emit_json, get_console
from stylekit.vocabulary import COMMON_PANEL, SHARED_PANELS

_COMMON_PARAMS = {
    "config": (Path | None, typer.Option("--config", help="TOML file with values for any option or argument (explicit flags win; see docs/cli.md).", rich_help_panel=COMMON_PANEL)),
    "quiet": (bool, typer.Option("--quiet", "-q", help="No progress or log lines (results, warnings and errors still shown).", rich_help_panel=COMMON_PANEL)),
    "json_output": (bool, typer.Option("--json", help="Write the result as one JSON document to stdout (errors too).", rich_help_panel=COMMON_PANEL)),
}


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _term_as_interrupt() -> Any:
    """SIGTERM (cron timeouts, schedulers) ends a command like Ctrl-C: clean-up runs, exit 130. Trainers
    install their own handler on top (checkpoint first). Returns the previous handler to restore."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


def _debug() -> bool:
    return os.environ.get("STYLEKIT_DEBUG", "") not in ("", "0")


def _report(message: str, hint: str | None, exit_code: int) -> None:
    """The error on stderr (one line + hint) and, with --json, as the one JSON document on stdout."""
    if _debug():
        traceback.print_exc(file=sys.stderr)
    print(f"error: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)
    if get_console().json_mode:
        emit_json({"error": message, "hint": hint, "exit_code": exit_code})


def fail(error: StylekitError) -> typing.NoReturn:
    """Report the error and exit with its code.

    Under torchrun rank 0 reports it: the ranks agree on errors (train/distributed.agree), so rank 0
    holds every rank's (a `FailedOnAnotherRank` names the rank), and N copies of one line would only
    bury it. Unexpected exceptions (exit 1) are still reported by every rank that meets one."""
    if os.environ.get("RANK", "0") in ("", "0") or _debug():
        _report(error.message, error.hint, error.exit_code)
    raise typer.Exit(error.exit_code)


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a --config TOML file (a regular file; keys may use dashes or underscores)."""
    from stylekit.io.limits import parse_toml
    from stylekit.io.paths import read_regular_text  # never blocks on a FIFO named like a config

    if path.is_dir():
        raise BadInput(f"--config {path} is a directory", hint="give a .toml file")
    if not os.path.lexists(path):
        raise BadInput(f"config file {path} does not exist", hint="check the --config path")
    try:
        data = parse_toml(read_regular_text(path, "config file"), f"config file {path}")
    except UnicodeDecodeError as exc:
        raise BadInput(f"config file {path} is not valid TOML: {exc}", hint="fix the file") from None
    except OSError as exc:
        raise BadInput(f"cannot read config file {path}: {exc.strerror or exc}", hint="check the --config path") from None
    return data


def _key(name: str) -> str:
    return str(name).replace("-", "_")


def _config_arg(args: list[str]) -> Path | None:
    for i, arg in enumerate(args):
        if arg == "--":
            return None
        if arg == "--config" and i + 1 < len(args):
            return Path(args[i + 1])
        if arg.startswith("--config="):
            return Path(arg.split("=", 1)[1])
    return None


def _config_keys(params: list[Parameter]) -> dict[str, Parameter]:
    """Config keys are the long flag names (dashes or underscores), and the names of arguments."""
    keys: dict[str, Parameter] = {}
    for param in params:
        if param.param_type_name == "argument" and param.name:
            keys[param.name] = param
        for flag in getattr(param, "opts", []):
            if flag.startswith("--"):
                keys[_key(flag[2:])] = param
    return keys


class StylekitCommand(TyperCommand):
    """A Typer command with the shared contract: --config as click's default map, option groups in one
    order, value placeholders and literal help text."""

    config: ClassVar[type | None] = None  # the command's declaration (stylekit/declare.py)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.sort(key=_panel_rank)
        for param in self.params:
            _set_placeholder(param)
        self._escaped = False

    # -- parsing ----------------------------------------------------------------------------------------
    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        head = args[: args.index("--")] if "--" in args else args
        configure(json_mode="--json" in head)
        try:
            config_path = _config_arg(args)
            if config_path is not None:
                ctx.default_map = self.config_defaults(ctx, config_path)
                if ctx.default_map.get("json_output"):
                    configure(json_mode=True)
            return super().parse_args(ctx, args)
        except StylekitError as exc:
            fail(exc)
        except UsageError as exc:
            _json_usage_error(ctx, exc)
            raise

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:  # typer converts some values only now
            _json_usage_error(ctx, exc)
            raise

    def config_defaults(self, ctx: Context, path: Path) -> dict[str, Any]:
        """The --config file as click's default map for this command (docs/cli.md: --config)."""
        data = load_config_file(path)
        siblings = dict(getattr(ctx.parent.command, "commands", {}) if ctx.parent else {})
        commands = set(siblings) | {ctx.info_name}
        top = {_key(k): v for k, v in data.items() if not isinstance(v, dict)}
        for table in (k for k, v in data.items() if isinstance(v, dict)):
            if table not in commands:
                raise unknown_key(str(path), f"[{table}]", [f"[{c}]" for c in sorted(c for c in commands if c)])
        own = {_key(k): v for k, v in data.get(ctx.info_name or "", {}).items()}
        everywhere = {key for cmd in [*siblings.values(), self] for key in _config_keys(cmd.params)}
        for key in top:  # a top-level key must be an option of some command: a typo is never ignored
            if key not in everywhere:
                raise unknown_key(str(path), key, sorted(everywhere))
        by_name = _config_keys(self.params)
        defaults: dict[str, Any] = {}
        for scope, values in (("top", top), ("own", own)):
            for key, value in values.items():
                param = by_name.get(key)
                if param is None or key == "config":
                    if scope == "own":
                        raise unknown_key(f"{path} [{ctx.info_name}]", key, sorted(set(by_name) - {"config"}))
                    continue
                if isinstance(value, list) and not param.multiple and param.nargs == 1:
                    value = ",".join(str(v) for v in value)
                defaults[param.name] = value
        return defaults

    # -- help -------------------------------------------------------------------------------------------
    def get_params(self, ctx: Context) -> list[Parameter]:
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "name", None) == "help":
                _set_placeholder(param)
        return params

    def format_help(self, ctx: Context, formatter: Any) -> None:
        if not self._escaped and self.rich_markup_mode == "rich":
            from rich.markup import escape  # help text is literal: "E[sign(D)]" must show its brackets

            for param in self.params:
                if getattr(param, "help", None):
                    param.help = escape(param.help)  # type: ignore[attr-defined]
            self.help = escape(self.help) if self.help else self.help
            self.epilog = escape(self.epilog) if self.epilog else self.epilog
            self._escaped = True
        super().format_help(ctx, formatter)


def _json_usage_error(ctx: Context, exc: UsageError) -> None:
    """With --json, a usage error (bad or missing option) is also the one JSON document on stdout."""
    if get_console().json_mode:
        hint = f"see 'stylekit {ctx.info_name} --help'"
        emit_json({"error": exc.format_message(), "hint": hint, "exit_code": exc.exit_code})


def _panel_rank(param: Parameter) -> int:
    """Arguments, the default option panel, the command's own panels, then the shared panels in order."""
    if isinstance(param, TyperArgument):
        return 0
    panel = getattr(param, "rich_help_panel", None)
    if panel is None:
        return 1
    return 3 + SHARED_PANELS.index(panel) if panel in SHARED_PANELS else 2


def _placeholder(param: Parameter) -> str:
    """What a value looks like in --help: N, NUMBER, TEXT, PATH or the choices; nothing for a flag."""
    if isinstance(param, TyperOption) and param.is_flag:
        return ""
    desc = getattr(param, "type_descriptor", None)
    annotation = desc.annotation if desc is not None else None
    item = typing.get_args(annotation)[0] if desc is not None and desc.is_list else annotation
    if desc is not None and desc.is_choice:
        text = "|".join(str(getattr(c, "value", c)) for c in desc.choices or ())
    elif desc is not None and desc.is_path:
        text = "PATH"
    elif item is int:
        text = "N"
    elif item is float:
        text = "NUMBER"
    else:
        text = "TEXT"
    return text + ("..." if param.nargs == -1 else "")


def _set_placeholder(param: Parameter) -> None:
    """Show N / NUMBER / TEXT / PATH / choices instead of <int>, <float>, <str>, <bool> (a metavar would
    also replace the option's name in error messages, so the display method is replaced instead)."""
    text = _placeholder(param)
    param.display_type_rich = lambda ctx: text  # type: ignore[attr-defined]
    if isinstance(param, TyperArgument) and param.metavar is None and param.name:
        param.metavar = param.name.upper()  # "Usage: stylekit prepare [OPTIONS] SRC OUT"


def _epilog(examples: Iterable[str], notes: str | None) -> str:
    lines = "\n".join(f"  {e}" for e in examples)
    # The leading newline keeps the examples indented (help text is dedented from its second line on).
    return f"\nExamples:\n{lines}" + (f"\n\n{notes}" if notes else "")


def _help_text(d: Declared) -> str:
    """The declaration's help with its unit and bounds (the one place they are written)."""
    text = d.decl.help
    extra = ", ".join(x for x in (d.decl.unit or "", d.decl.bounds_text()) if x)
    return f"{text} [{extra}]" if extra else text


def _cli_type(d: Declared) -> Any:
    """The type typer parses: text for parsed lists, a repeated option for other tuples, else the field's type."""
    if d.decl.parse is not None:
        return str
    if d.is_tuple:
        return list[d.item]  # type: ignore[name-defined]
    return d.type


def _cli_default(d: Declared) -> Any:
    if d.default is REQUIRED:
        return ...
    if d.is_tuple and d.decl.parse is None:
        return list(d.default) if d.default else None
    return d.default


def _typer_parameter(d: Declared) -> inspect.Parameter:
    """One typer parameter built from a declaration."""
    ptype = _cli_type(d)
    if d.optional or (d.is_tuple and d.decl.parse is None):
        ptype = ptype | None
    default = _cli_default(d)
    show = d.default is not REQUIRED and d.default is not None and default is not None
    if d.decl.argument:
        info = typer.Argument(help=_help_text(d), show_default=show, **({"metavar": d.decl.metavar} if d.decl.metavar else {}))
    else:
        flags = list(d.decl.flags or ("--" + d.name.replace("_", "-"),))
        if d.type is bool and (d.decl.off_flag or d.default is True):
            flags[0] = f"{flags[0]}/{d.decl.off_flag or '--no-' + flags[0][2:]}"
        info = typer.Option(*flags, help=_help_text(d), rich_help_panel=d.decl.panel, show_default=show,
                            **({"metavar": d.decl.metavar} if d.decl.metavar else {}))
    return inspect.Parameter(d.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[ptype, info])


def _build_config(config: type, values: dict[str, Any]) -> Any:
    """The command's config from what typer parsed (lists of repeated options become tuples)."""
    for d in declarations(config):
        if d.is_tuple and d.decl.parse is None and d.name in values:
            values[d.name] = tuple(values[d.name] or ())
    return config(**values)


def command(app: typer.Typer, name: str, help: str, examples: Iterable[str] | None = None, notes: str | None = None,
            config: type | None = None,
            **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `func` on `app` as command `name` with the shared options, help layout and error handling.

    config: the command's declaration (a stylekit.declare.Config dataclass): its fields become the options,
    and `func(cfg)` receives the validated config. examples: command lines shown one per line under
    "Examples:"; notes: a paragraph after them.
    """
    if examples is not None:
        kwargs["epilog"] = _epilog(examples, notes)
    cls = type(f"{name.title().replace('-', '')}Command", (StylekitCommand,), {"config": config})

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(func)
        if config is not None:
            params = [_typer_parameter(d) for d in declarations(config)]
        else:
            hints = typing.get_type_hints(func, include_extras=True)
            params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()]
        for pname, (ptype, option) in _COMMON_PARAMS.items():
            default = None if pname == "config" else False
            params.append(inspect.Parameter(pname, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[ptype, option]))

        @functools.wraps(func)
        def wrapper(*args: Any, **all_kwargs: Any) -> Any:
            all_kwargs.pop("config")
            configure(quiet=all_kwargs.pop("quiet"), json_mode=all_kwargs.pop("json_output"))
            previous_term = _term_as_interrupt()
            try:
                if config is not None:
                    return func(_build_config(config, all_kwargs))
                return func(*args, **all_kwargs)
            except StylekitError as exc:
                fail(exc)
            except KeyboardInterrupt:
                _report("interrupted", None, EXIT_INTERRUPTED)
                raise typer.Exit(EXIT_INTERRUPTED) from None
            except (typer.Exit, typer.Abort, ClickException):
                raise
            except Exception as exc:  # noqa: BLE001 - last-resort mapping to exit 1
                _report(f"unexpected {type(exc).__name__}: {exc}",
                        "set STYLEKIT_DEBUG=1 to see the traceback, and please report it", EXIT_FAILURE)
                raise typer.Exit(EXIT_FAILURE) from None
            finally:
                if previous_term is not None:
                    signal.signal(signal.SIGTERM, previous_term)

        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        app.command(name=name, help=help, cls=cls, **kwargs)(wrapper)
        return wrapper

    return decorate


@dataclass
class Table:
    """A result table: what every command shows on stdout when it is not asked for --json."""

    title: str
    columns: list[str]
    rows: list[list[Any]]


def fields(title: str, rows: list[list[Any]]) -> Table:
    """The common two-column result: field | value."""
    return Table(title, ["field", "value"], rows)


def render(result: Any, table: Callable[[Any], Table | list[Table]] | None = None) -> None:
    """Show a command's result on stdout: one JSON document with --json, else the table(s) `table(result)` builds.

    `result` may be a dict, a dataclass, or anything with `to_dict()`."""
    if get_console().json_mode:
        emit_json(result.to_dict() if hasattr(result, "to_dict") else result)
    elif table is not None:
        built = table(result)
        for t in built if isinstance(built, list) else [built]:
            get_console().print_table(t.title, t.columns, t.rows)


def parse_int_list(text: str, option: str = "value") -> list[int]:  # transitional: declarations use int_list
    return list(int_list(text, option))


def parse_float_list(text: str, option: str = "value") -> list[float]:  # transitional: declarations use float_list
    return list(float_list(text, option))


__all__ = [
    "EXIT_BAD_INPUT",
    "Table",
    "command",
    "fail",
    "fields",
    "parse_float_list",
    "parse_int_list",
    "render",
]
