"""Where progress and log lines go: rich on a terminal, sparse plain lines in cron, nothing with --quiet.

Library code never prints. It calls `get_console().log(...)` and wraps long loops in
`get_console().progress(total, "what")`; the CLI configures the process-wide console once per
command (`configure(quiet=..., json_mode=...)`). Only rank 0 of a torchrun job writes anything.
Progress and logs go to stderr; results (`print_table`, the `--json` document) go to stdout, so that
`stylekit download --list | grep ffhq` and `> result.json` work.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO


def _is_rank_zero() -> bool:
    return os.environ.get("RANK", "0") == "0"


class ProgressTask:
    """Handle returned by `Console.progress`: call `advance(n)` and optionally `update(**fields)`."""

    def __init__(self, console: Console, total: int | None, description: str, ranks: int = 1) -> None:
        self._console = console
        self._ranks = ranks
        self.total = total
        self.description = description
        self.completed = 0
        self.fields: dict[str, Any] = {}
        self._start = time.monotonic()
        self._last_plain = self._start
        self._last_fraction = 0.0
        self._rich: Any = None
        self._rich_id: Any = None

    def advance(self, n: int = 1) -> None:
        """`n` more done by this process; with `ranks` > 1 (an even share of the work per rank), the bar
        shows the job's count: rank 0's count times the number of ranks, at most the total."""
        self.completed += n * self._ranks
        if self._ranks > 1 and self.total is not None:
            self.completed = min(self.completed, self.total)
        self._render()

    def update(self, **fields: Any) -> None:
        """Attach short status fields (loss=0.12, p=0.3) shown next to the bar."""
        self.fields.update(fields)
        self._render()

    def _status(self) -> str:
        return " ".join(f"{k}={_fmt(v)}" for k, v in self.fields.items())

    def _render(self) -> None:
        if self._rich is not None:
            self._rich.update(self._rich_id, completed=self.completed, status=self._status())
            return
        if not self._console.enabled:
            return
        now = time.monotonic()
        fraction = self.completed / self.total if self.total else 0.0
        # Plain mode (cron, pipes): a line per 10% (at most one per 5 s), or per 30 s, and the last one.
        done = self.total is not None and self.completed >= self.total
        since = now - self._last_plain
        if not done and since < 30 and (fraction - self._last_fraction < 0.1 - 1e-9 or since < 5):
            return
        self._last_plain, self._last_fraction = now, fraction
        elapsed = now - self._start
        if self.total:
            eta = elapsed / max(self.completed, 1) * (self.total - self.completed)
            head = f"{self.description}: {self.completed}/{self.total} ({100 * fraction:.0f}%) {elapsed:.0f}s elapsed, ETA {eta:.0f}s"
        else:
            head = f"{self.description}: {self.completed} done, {elapsed:.0f}s elapsed"
        status = self._status()
        self._console.log(head + (f" [{status}]" if status else ""))


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


class Console:
    """Progress bars and log lines on stderr, honouring --quiet, --json and the torchrun rank."""

    def __init__(self, quiet: bool = False, json_mode: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.json_mode = json_mode
        self.stream = stream
        self.log_file: TextIO | None = None

    @property
    def enabled(self) -> bool:
        return not self.quiet and _is_rank_zero()

    def _stream(self) -> TextIO:
        return self.stream or sys.stderr

    def is_terminal(self) -> bool:
        try:
            return self._stream().isatty()
        except (AttributeError, ValueError):
            return False

    def log(self, message: str) -> None:
        """A line for the user (stderr) and, when a run directory is attached, for its log.txt."""
        if self.log_file is not None and _is_rank_zero():
            self.log_file.write(time.strftime("%Y-%m-%d %H:%M:%S ") + message + "\n")
            self.log_file.flush()
        if self.enabled:
            print(message, file=self._stream(), flush=True)

    def warn(self, message: str) -> None:
        """Warnings are shown even with --quiet (they change how results should be read)."""
        if self.log_file is not None and _is_rank_zero():
            self.log_file.write(time.strftime("%Y-%m-%d %H:%M:%S ") + "warning: " + message + "\n")
            self.log_file.flush()
        if _is_rank_zero():
            print(f"warning: {message}", file=self._stream(), flush=True)

    @contextmanager
    def progress(self, total: int | None, description: str, ranks: int = 1) -> Iterator[ProgressTask]:
        """A progress bar of `total` steps; `ranks` > 1: `total` is the whole job's and each rank does its share."""
        task = ProgressTask(self, total, description, ranks)
        if self.enabled and self.is_terminal():
            from rich.console import Console as RichConsole
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[status]}"),
                console=RichConsole(file=self._stream()),
                transient=False,
            )
            with bar:
                task._rich, task._rich_id = bar, bar.add_task(description, total=total, status="")
                yield task
            task._rich = None
        else:
            yield task

    def print_table(self, title: str, columns: list[str], rows: list[list[Any]]) -> None:
        """A result table on stdout (rich on a terminal, aligned text otherwise), shown even with --quiet."""
        if not _is_rank_zero():
            return
        out = sys.stdout
        if out.isatty():
            from rich.console import Console as RichConsole
            from rich.markup import escape
            from rich.table import Table

            table = Table(title=escape(title))
            for c in columns:
                table.add_column(escape(c))
            for r in rows:
                table.add_row(*[escape(_fmt(v)) for v in r])
            RichConsole(file=out).print(table)
            return
        cells = [columns] + [[_fmt(v) for v in r] for r in rows]
        widths = [max(len(str(row[i])) for row in cells) for i in range(len(columns))]
        print(title, file=out)
        for row in cells:
            print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip(), file=out)
        out.flush()


_console = Console()


def get_console() -> Console:
    return _console


def configure(quiet: bool = False, json_mode: bool = False, stream: TextIO | None = None) -> Console:
    """Replace the process-wide console (the CLI calls this once per command)."""
    global _console
    _console = Console(quiet=quiet, json_mode=json_mode, stream=stream)
    return _console


def emit_json(document: Any) -> None:
    """The one JSON document a `--json` command writes to stdout (rank 0 only)."""
    if _is_rank_zero():
        sys.stdout.write(json.dumps(document, indent=2, default=_json_default) + "\n")
        sys.stdout.flush()


def _json_default(obj: Any) -> Any:
    import dataclasses
    from pathlib import Path

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
