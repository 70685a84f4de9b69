"""Reading weight files as data, never as code.

Every local or downloaded weights file goes through here: safetensors (sniffed from the content, not
the extension) or a torch file through `stylekit.io.torch_file.load_torch` (weights_only, its cost
bounded from the file's structure first). TorchScript archives are refused before anything is read
from them, because loading one runs the code it carries.
"""

from __future__ import annotations

from pathlib import Path

import torch

from stylekit.errors import BadInput
from stylekit.io.paths import require_regular_file
from stylekit.io.torch_file import is_torchscript_archive, load_torch, refuse_torchscript

__all__ = ["is_torchscript_archive", "read_state_dict", "refuse_torchscript"]


def _is_safetensors(head: bytes) -> bool:
    # safetensors: 8-byte little-endian header length, then the JSON header; a torch zip starts "PK".
    return len(head) == 9 and head[8:9] == b"{" and not head.startswith(b"PK")


def read_state_dict(path: str | Path, what: str, hint: str) -> dict[str, torch.Tensor]:
    """The tensors of a state-dict file (`module.` prefixes stripped, `state_dict`/`model` nesting
    unwrapped). Any file that is not such a mapping is BadInput naming `what` the file should be."""
    path = Path(path)
    require_regular_file(path, what)  # before any open(): a FIFO would block it forever
    refuse_torchscript(path, hint)
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
    except OSError as exc:
        raise BadInput(f"cannot read {what} {path}: {exc.strerror or exc}", hint=hint) from None
    if _is_safetensors(head):
        try:
            from safetensors.torch import load_file

            data: object = load_file(str(path), device="cpu")
        except Exception:  # noqa: BLE001 - any decoding failure means "not a file we can use"
            raise BadInput(f"{path} is not a readable {what}: not a PyTorch (.pth) or safetensors file of tensors",
                           hint=hint) from None
    else:
        data = load_torch(path, what, hint)
    for key in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    tensors = {k.removeprefix("module."): v for k, v in data.items() if isinstance(v, torch.Tensor)} if isinstance(data, dict) else {}
    if not tensors:
        raise BadInput(f"{path} is not a {what} (expected a mapping of names to tensors)", hint=hint)
    return tensors
