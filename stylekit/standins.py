"""Random-initialised stand-ins, by name, wherever weights or a network are taken.

A newcomer without internet can try every command: `--vgg-weights random`, `--inception-weights random`,
`--clip-weights random`, `--network random:256`. Each is a seeded random-init network of the real
architecture; results computed with one are labelled as stand-ins in every output (never meaningful
numbers). Standard library only.
"""

from __future__ import annotations

import os

RANDOM = "random"
NETWORK_PREFIX = "random:"


def is_random(spec: str | os.PathLike[str] | None) -> bool:
    """Whether a weights option names the random-init stand-in."""
    return isinstance(spec, str) and spec == RANDOM


def random_network_resolution(spec: str | os.PathLike[str] | None) -> int | None:
    """The resolution of a `random:RES` generator stand-in, or None when `spec` names something else."""
    if not isinstance(spec, str) or not spec.startswith(NETWORK_PREFIX):
        return None
    text = spec[len(NETWORK_PREFIX):]
    return int(text) if text.isdigit() else None


def label(what: str) -> str:
    """The warning every output carries when a stand-in was used."""
    return f"{what} is a random-init stand-in: results are not meaningful (for trying the command offline)"
