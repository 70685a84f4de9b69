"""STYLEKIT_OFFLINE=1: the one switch that forbids every network access.

Each place where stylekit itself could open a connection calls `require_online` first (the HTTP
downloader, the Kaggle client, hub-named backbones); with the switch set it raises MissingResource
(exit 3) naming the exact command that fetches the resource, and no connection is attempted.
Third-party libraries that may reach the Hugging Face hub on their own (timm, open_clip, their
tokenizers and text towers) are put in the hub's own offline mode by `quiet_hub`.
"""

from __future__ import annotations

import os
import sys

from stylekit.errors import MissingResource

HUB_PREFIX = "hf-hub:"


def offline() -> bool:
    """STYLEKIT_OFFLINE=1: never touch the network; only the cache and local files count."""
    return (os.environ.get("STYLEKIT_OFFLINE") or "").strip().lower() in ("1", "true", "yes", "on")


def require_online(what: str, fetch_command: str, then: str | None = None) -> None:
    """Raise MissingResource (exit 3) when offline. The hint is `run: FETCH_COMMAND` (what fetches
    `what` with network access), followed by `then` (how to use what it fetched) when given."""
    if offline():
        raise MissingResource(f"{what} needs the network, and STYLEKIT_OFFLINE=1 forbids network access",
                              fetch_command=fetch_command, hint=f"run: {fetch_command}; then {then}" if then else None)


def require_hub_allowed(name: str, option: str, local_form: str) -> None:
    """A `hf-hub:ORG/REPO` model name is fetched by its library: refused offline (exit 3), with the
    command that downloads the repo and the `local_form` (e.g. timm:local-dir:DIR) that then loads it."""
    if name.startswith(HUB_PREFIX):
        repo = name[len(HUB_PREFIX):].split("@")[0]
        require_online(f"{option} {name} (a Hugging Face hub model)", f"hf download {repo} --local-dir DIR",
                       then=f"pass {option} {local_form}")


def quiet_hub() -> None:
    """When offline, make huggingface_hub (and transformers) cache-only before timm/open_clip use them."""
    if not offline():
        return
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # already imported: it read the variable at import time
        constants.HF_HUB_OFFLINE = True
