"""Random-initialised stand-ins, by name, wherever weights or a network are taken.

A newcomer without internet can try every command: `--vgg-weights random`, `--inception-weights random`,
`--clip-weights random`, `--network random:256` (a StyleGAN2 generator; `random:stylegan3:256` a StyleGAN3 one). Each is a seeded random-init network of the real
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


NETWORK_ARCHITECTURES = ("stylegan2", "stylegan3")


def _random_network(spec: str | os.PathLike[str] | None) -> tuple[str, int] | None:
    if not isinstance(spec, str) or not spec.startswith(NETWORK_PREFIX):
        return None
    arch, _, text = spec[len(NETWORK_PREFIX):].rpartition(":")
    arch = arch or NETWORK_ARCHITECTURES[0]
    return (arch, int(text)) if text.isdigit() and arch in NETWORK_ARCHITECTURES else None


def random_network_resolution(spec: str | os.PathLike[str] | None) -> int | None:
    """The resolution of a `random:RES` / `random:ARCH:RES` generator stand-in, None when `spec` names something else."""
    found = _random_network(spec)
    return found[1] if found else None


def random_network_architecture(spec: str | os.PathLike[str] | None) -> str | None:
    """stylegan2 for `random:RES`, ARCH for `random:ARCH:RES`, None when `spec` names no stand-in."""
    found = _random_network(spec)
    return found[0] if found else None


def label(what: str) -> str:
    """The warning every output carries when a stand-in was used."""
    return f"{what} is a random-init stand-in: results are not meaningful (for trying the command offline)"
