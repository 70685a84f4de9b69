"""The latent file format shared by generate, mix, invert and styleclip.

A latent file is a NumPy `.npz` with key `w`: float32 of shape [N, num_ws, w_dim] (W+, one w per
synthesis input; N is 1 for a single image, as in NVlabs `projected_w.npz`) or [N, w_dim] (one w
broadcast to every layer). Optional keys: `seeds` [N] int64, `z` [N, z_dim], `trunc` (scalar),
`network` (string); invert and styleclip add `space` (w | w+), `target` or `prompt` (string) and
`noise.<buffer name>` (the optimised noise maps, e.g. `noise.b8.conv0.noise_const`, restored by
`stylekit.edit.invert.apply_noise`). Readers need only `w`.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from stylekit.errors import BadInput
from stylekit.io.atomic import write_bytes_atomic
from stylekit.io.paths import open_regular


def save_latents(path: str | os.PathLike[str], w: torch.Tensor | np.ndarray, **extra: Any) -> Path:
    """Write `w` (+ optional arrays) as an npz latent file, atomically."""

    arr = w.detach().cpu().numpy() if isinstance(w, torch.Tensor) else np.asarray(w)
    if arr.ndim not in (2, 3):
        raise ValueError(f"w must be [N, num_ws, w_dim] or [N, w_dim], got {arr.shape}")
    payload = {"w": arr.astype(np.float32)}
    for key, value in extra.items():
        if value is not None:
            payload[key] = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    buf = io.BytesIO()
    np.savez(buf, **payload)
    return write_bytes_atomic(path, buf.getvalue())


_LATENT_HINT = ("latent files are the .npz that stylekit invert, generate and styleclip write "
                "(key 'w' of shape [N, num_ws, w_dim] or [N, w_dim])")


def _what_is(fh: BinaryIO) -> str | None:
    """A short description of an open file that is not an .npz (None when it starts like a zip, as .npz do)."""
    head = fh.read(8)
    if head.startswith(b"PK"):
        return None
    if head.startswith(b"\x93NUMPY"):
        return "a single .npy array"
    if head.startswith(b"\x80"):
        return "a Python pickle (never loaded: it could run code)"
    try:
        from PIL import Image

        fh.seek(0)
        with Image.open(fh) as img:
            return f"a {img.format} image"
    except Exception:  # noqa: BLE001 - anything PIL cannot open is just "not an npz"
        return "an unknown kind of file"


def load_latents(path: str | os.PathLike[str], num_ws: int, w_dim: int) -> torch.Tensor:
    """Read a latent file as a float32 tensor [N, num_ws, w_dim] (broadcasting [N, w_dim])."""
    path = Path(path)
    if not os.path.lexists(path):
        raise BadInput(f"latent file {path} does not exist")
    if path.is_dir():
        raise BadInput(f"latent file {path} is a folder", hint=f"pass the latent.npz inside it; {_LATENT_HINT}")
    try:
        with open_regular(path, "latent file") as fh:
            kind = _what_is(fh)
            if kind is not None:
                raise BadInput(f"{path} is {kind}: not a latent file", hint=_LATENT_HINT)
            fh.seek(0)
            data = np.load(fh, allow_pickle=False)
            with data:
                if "w" not in data.files:
                    raise BadInput(f"{path}: latent file has no 'w' array (keys: {', '.join(data.files) or 'none'})",
                                   hint=_LATENT_HINT)
                w = np.asarray(data["w"], dtype=np.float32)
    except FileNotFoundError:
        raise BadInput(f"latent file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: not a readable .npz latent file ({exc})", hint=_LATENT_HINT) from None
    if w.ndim == 1:
        w = w[None]
    if w.ndim == 2:
        w = np.repeat(w[:, None, :], num_ws, axis=1)
    if w.ndim != 3 or w.shape[1:] != (num_ws, w_dim):
        raise BadInput(f"{path}: w has shape {list(w.shape)}, the network needs [N, {num_ws}, {w_dim}] or [N, {w_dim}]",
                       hint="use a latent file made for this network")
    return torch.from_numpy(w)
