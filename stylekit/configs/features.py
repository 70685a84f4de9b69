"""Options shared by the commands that embed image collections through the feature cache (classify,
similar, stats): batch, workers and the cache switch, declared once."""

from __future__ import annotations

from typing import Any

from stylekit.declare import option

MAX_BATCH = 4096  # images per forward pass: more only trades host memory for nothing


def batch_option() -> Any:
    return option(32, "Images per forward pass.", concept="batch", ge=1, le=MAX_BATCH, cover=(2,))


def workers_option() -> Any:
    return option(help="Decoding worker processes (0 = in the main process; default: auto = 0).", concept="workers",
                  ge=0, le=256, cover=())


def cache_option(help: str = "Per-image feature cache in $STYLEKIT_HOME/features.") -> Any:
    return option(True, help)
