"""Transitional: the typer option for a concept of stylekit/vocabulary.py (commands not yet declared)."""

from typing import Any

import typer

from stylekit.vocabulary import ANY, BANNED, COMMON_PANEL, CONCEPTS, RUN_PANEL, SHARED_PANELS  # noqa: F401


def option(concept: str, help: str | None = None, *, default: Any = ANY, required: bool = False,
           panel: str | None = None, **kwargs: Any) -> Any:
    """A typer option for `concept` with the canonical flags, default, help text and panel.

    Use as a parameter default: `device: str = option("device")`. `help` replaces the shared text
    where the command says something more precise (keep the meaning); `default` is for concepts whose
    default depends on the command (ANY in CONCEPTS); `required=True` makes it a required option.
    """
    spec = CONCEPTS[concept]
    if required:
        value: Any = ...
    elif default is not ANY:
        value = default
    else:
        value = None if spec.default is ANY else spec.default
    decls = list(spec.decls)
    if spec.off_flag:
        decls[0] = f"{decls[0]}/{spec.off_flag}"
    return typer.Option(value, *decls, help=help or spec.help, rich_help_panel=panel or spec.panel, **kwargs)
