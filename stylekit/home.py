"""The one place that knows where stylekit keeps its caches: $STYLEKIT_HOME (default ~/.cache/stylekit).

Below it: weights/ (the weights registry), features/ (per-image feature cache), stats/ (FID statistics).
"""

from __future__ import annotations

import os
from pathlib import Path


def stylekit_home() -> Path:
    """$STYLEKIT_HOME, else ~/.cache/stylekit (read at call time, so tests can point it elsewhere)."""
    home = os.environ.get("STYLEKIT_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "stylekit"
