"""The exception hierarchy every layer raises and the CLI maps to one-line messages and exit codes.

Library code raises these; it never calls sys.exit. Each carries the exit code from DESIGN.md and an
optional hint (the fix, or the exact command that fetches a missing resource).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_MISSING = 3
EXIT_BUSY = 75
EXIT_INTERRUPTED = 130


class StylekitError(Exception):
    """Base class: a failure with a user-facing one-line message."""

    exit_code: int = EXIT_FAILURE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class BadInput(StylekitError):
    """Usage error or unusable input: the message names the file/option and the fix. Exit 2."""

    exit_code = EXIT_BAD_INPUT


class MissingResource(StylekitError):
    """Weights, a data set or credentials are not available. Exit 3.

    `fetch_command` is the exact command that obtains the resource; it becomes the hint.
    """

    exit_code = EXIT_MISSING

    def __init__(self, message: str, fetch_command: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint or (f"run: {fetch_command}" if fetch_command else None))
        self.fetch_command = fetch_command


class Busy(StylekitError):
    """Another run holds the lock on the same output directory. Exit 75."""

    exit_code = EXIT_BUSY


class Interrupted(StylekitError):
    """SIGINT/SIGTERM arrived; resumable state was saved first. Exit 130."""

    exit_code = EXIT_INTERRUPTED


class BadImage(BadInput):
    """One image file cannot be decoded. Callers that process many files skip and report it."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class FailedOnAnotherRank(StylekitError):
    """Under torchrun, rank `rank` failed: every other rank ends with its message and exit code."""

    def __init__(self, rank: int, message: str, hint: str | None, exit_code: int) -> None:
        super().__init__(f"rank {rank}: {message}", hint)
        self.exit_code = exit_code
