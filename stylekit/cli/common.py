"""What every command shares: --config/--quiet/--json, error -> exit code mapping, output rendering.

`command(app, name, help=...)` wraps a command function so that:
- it gains `--config FILE.toml` (defaults for any option; explicit flags win), `--quiet` and `--json`;
- the process-wide console is configured before the body runs;
- StylekitError becomes one `error:` line (plus a `hint:` line) and its exit code, KeyboardInterrupt
  exit 130, anything else exit 1; STYLEKIT_DEBUG=1 re-raises to show the traceback.
"""

import functools
import inspect
import os
import signal
import sys
import threading
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from typer import TyperException

from stylekit.errors import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_INTERRUPTED, BadInput, StylekitError
from stylekit.io.console import configure, emit_json, get_console

_COMMON_PARAMS = {
    "config": (Path | None, typer.Option("--config", help="TOML file with defaults for any option of this command (explicit flags win).", rich_help_panel="Common")),
    "quiet": (bool, typer.Option("--quiet", "-q", help="No progress or log lines (warnings and errors still shown).", rich_help_panel="Common")),
    "json_output": (bool, typer.Option("--json", help="Write one JSON document with the result to stdout.", rich_help_panel="Common")),
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


def fail(error: StylekitError) -> typing.NoReturn:
    """Print the one-line error (and hint) on stderr and exit with the error's code."""
    print(f"error: {error.message}", file=sys.stderr)
    if error.hint:
        print(f"hint: {error.hint}", file=sys.stderr)
    raise typer.Exit(error.exit_code)


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a --config TOML file; keys may use dashes or underscores; a [command] table is allowed."""
    from stylekit.io.limits import parse_toml
    from stylekit.io.paths import read_regular_text  # never blocks on a FIFO named like a config

    if not os.path.lexists(path):
        raise BadInput(f"config file {path} does not exist", hint="check the --config path")
    try:
        data = parse_toml(read_regular_text(path, "config file"), f"config file {path}")
    except UnicodeDecodeError as exc:
        raise BadInput(f"config file {path} is not valid TOML: {exc}", hint="fix the file") from None
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _command_config(ctx: typer.Context, config: dict[str, Any]) -> dict[str, Any]:
    """Top-level keys, overridden by the keys of this command's [table]."""
    command_table = config.get((ctx.info_name or "").replace("-", "_"))
    if isinstance(command_table, dict):
        config = {**config, **{str(k).replace("-", "_"): v for k, v in command_table.items()}}
    return config


def _from_default(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is None or source.name in ("DEFAULT", "DEFAULT_MAP")


def _apply_config(ctx: typer.Context, params: dict[str, Any], config: dict[str, Any], config_path: Path) -> None:
    by_name = {p.name: p for p in ctx.command.params}
    for key, value in config.items():
        if key not in by_name:
            if isinstance(value, dict):
                continue
            raise BadInput(f"{config_path}: unknown option '{key}' for '{ctx.info_name}'", hint=f"see 'stylekit {ctx.info_name} --help'")
        if _from_default(ctx, key):
            param = by_name[key]
            try:
                if isinstance(value, list) and not param.multiple and param.nargs == 1:
                    value = ",".join(str(v) for v in value)
                params[key] = param.process_value(ctx, value)
            except TyperException as exc:
                raise BadInput(f"{config_path}: bad value for '{key}': {exc}") from None


def command(app: typer.Typer, name: str, help: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `func` on `app` as command `name` with the shared options and error handling."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        hints = typing.get_type_hints(func, include_extras=True)
        sig = inspect.signature(func)
        params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()]
        params.append(inspect.Parameter("_typer_ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context))
        for pname, (ptype, option) in _COMMON_PARAMS.items():
            default = None if pname == "config" else False
            params.append(inspect.Parameter(pname, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[ptype, option]))

        @functools.wraps(func)
        def wrapper(*args: Any, **all_kwargs: Any) -> Any:
            ctx: typer.Context = all_kwargs.pop("_typer_ctx")
            config_path = all_kwargs.pop("config")
            quiet = all_kwargs.pop("quiet")
            json_output = all_kwargs.pop("json_output")
            configure(quiet=quiet, json_mode=json_output)
            previous_term = _term_as_interrupt()
            try:
                if config_path is not None:
                    config = _command_config(ctx, load_config_file(config_path))
                    shared = {key: config.pop(key) for key in ("quiet", "json") if key in config}
                    if "quiet" in shared and _from_default(ctx, "quiet"):
                        quiet = bool(shared["quiet"])
                    if "json" in shared and _from_default(ctx, "json_output"):
                        json_output = bool(shared["json"])
                    configure(quiet=quiet, json_mode=json_output)
                    _apply_config(ctx, all_kwargs, config, config_path)
                return func(*args, **all_kwargs)
            except StylekitError as exc:
                if _debug():
                    raise
                fail(exc)
            except KeyboardInterrupt:
                if _debug():
                    raise
                print("error: interrupted", file=sys.stderr)
                raise typer.Exit(EXIT_INTERRUPTED) from None
            except (typer.Exit, typer.Abort, TyperException):
                raise
            except Exception as exc:  # noqa: BLE001 - last-resort mapping to exit 1
                if _debug():
                    raise
                print(f"error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
                print("hint: set STYLEKIT_DEBUG=1 to see the traceback, and please report it", file=sys.stderr)
                raise typer.Exit(EXIT_FAILURE) from None
            finally:
                if previous_term is not None:
                    signal.signal(signal.SIGTERM, previous_term)

        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        app.command(name=name, help=help, **kwargs)(wrapper)
        return wrapper

    return decorate


def render(result: Any, table: Callable[[Any], None] | None = None) -> None:
    """Show a command's result: one JSON document on stdout with --json, else `table(result)` on stderr."""
    if get_console().json_mode:
        emit_json(result)
    elif table is not None:
        table(result)


def parse_int_list(text: str, option: str = "value") -> list[int]:
    """Parse '0-99,120' or '1,3,5' into integers (ranges inclusive, order kept)."""
    out: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            lo, sep, hi = part.partition("-") if not part.startswith("-") else (part, "", "")
            if sep:
                a, b = int(lo), int(hi)
                if b < a:
                    raise ValueError
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise BadInput(f"bad {option} '{text}'", hint="use integers and inclusive ranges, e.g. 0-99,120") from None
    if not out:
        raise BadInput(f"empty {option} '{text}'", hint="give at least one integer, e.g. 0-3")
    return out


def parse_float_list(text: str, option: str = "value") -> list[float]:
    """Parse '1,0.5,2' into floats."""
    try:
        values = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise BadInput(f"bad {option} '{text}'", hint="use comma-separated numbers, e.g. 1,0.5") from None
    if not values:
        raise BadInput(f"empty {option} '{text}'", hint="give at least one number")
    return values


def exit_bad_input(message: str, hint: str | None = None) -> typing.NoReturn:
    """Fail from CLI-level validation with exit code 2."""
    fail(BadInput(message, hint))


__all__ = [
    "EXIT_BAD_INPUT",
    "command",
    "exit_bad_input",
    "fail",
    "parse_float_list",
    "parse_int_list",
    "render",
]
