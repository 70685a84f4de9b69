"""The one CLIP loader of the project (score's clip metrics, the classifier's clip backbone, styleclip).

`load_clip(model_name, weights, device)` builds an open_clip model from a LOCAL file only, so open_clip
never reaches a hub:
- a built-in open_clip architecture name (default ViT-B-32) with weights from the stylekit registry
  (`clip-vit-b-32`: OpenAI's ViT-B/32 weights as the safetensors file open_clip itself fetches for
  pretrained="openai", fetched by `stylekit download clip-vit-b-32`) or a local file given as `weights`
  (an open_clip state dict: .safetensors, or .bin/.pt/.pth read with torch.load(weights_only=True));
- a local directory (or `local-dir:DIR`) holding open_clip_config.json and open_clip_model.safetensors
  (how tests ship a tiny random CLIP, and how exported fine-tunes travel).
OpenAI's weights were trained with QuickGELU, so the registry weights are loaded into the architecture
with QuickGELU (as open_clip does for its 'openai' tag); a local file with a plain name gets the
architecture as named (use ViT-B-32-quickgelu for OpenAI-trained files). TorchScript archives (OpenAI's
original ViT-B-32.pt) are refused: loading them would run code from the downloaded file.
Offline without cached weights: MissingResource (exit 3).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from stylekit.errors import BadInput, MissingResource
from stylekit.io.paths import require_regular_file
from stylekit.io.torch_file import check_torch_file, is_torchscript_archive
from stylekit.offline import offline, quiet_hub
from stylekit.standins import is_random
from stylekit.weights import REGISTRY, weights_path

# open_clip architecture name -> stylekit registry name of its default weights
REGISTRY_WEIGHTS = {"ViT-B-32": "clip-vit-b-32", "ViT-B-32-quickgelu": "clip-vit-b-32"}
# registry weights trained with QuickGELU activations (OpenAI's CLIP models)
QUICK_GELU_WEIGHTS = frozenset({"clip-vit-b-32"})
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class ClipBundle:
    """A loaded CLIP model with what is needed to feed it."""

    model: torch.nn.Module
    tokenizer: Callable[..., torch.Tensor]
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    embed_dim: int
    model_name: str
    weights_id: str  # registry name or weights file identity: part of cache keys
    device: torch.device

    def describe(self) -> dict[str, Any]:
        import open_clip

        return {"model": self.model_name, "weights": self.weights_id, "open_clip": open_clip.__version__}


def _refuse_torchscript(path: Path) -> None:
    require_regular_file(path, "CLIP weights file")  # a FIFO would block the reader forever
    if is_torchscript_archive(path):
        raise BadInput(
            f"{path} is a TorchScript archive (such as OpenAI's ViT-B-32.pt); stylekit does not execute code from weights files",
            hint="run `stylekit download clip-vit-b-32` (the same OpenAI weights as safetensors), or pass an open_clip "
            "state dict (.safetensors) with --clip-weights",
        )
    check_torch_file(path, "CLIP weights file", hint="pass an open_clip state dict (.safetensors) with --clip-weights")


def _file_identity(path: Path) -> str:
    """Short identity of a weights file (name + hash of path, size, mtime) for feature-cache keys."""

    st = path.stat()
    raw = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return f"{path.name}@{hashlib.sha256(os.fsencode(raw)).hexdigest()[:10]}"


def _registry_identity(name: str) -> str | None:
    """'clip-vit-b-32@<sha256 prefix>' for a registry name (None otherwise): the feature-cache identity
    changes with the registry file, so features of an earlier file are never reused."""

    spec = REGISTRY.get(name)
    if spec is None:
        return None
    digest = spec.sha256 or spec.sha256_prefix
    return f"{name}@{digest[:8]}" if digest else name


def _local_dir(model_name: str) -> Path | None:
    if model_name.startswith("local-dir:"):
        return Path(model_name[len("local-dir:"):]).expanduser()
    candidate = Path(model_name).expanduser()
    if candidate.is_dir() or "/" in model_name or model_name.startswith((".", "~")):
        return candidate
    return None


def load_clip(model_name: str = "ViT-B-32", weights: str | os.PathLike[str] | None = None, device: torch.device | str = "cpu") -> ClipBundle:
    """Build a CLIP model in eval mode from local weights (see module docstring)."""
    import open_clip


    quiet_hub()  # open_clip may fetch tokenizers or text towers from the hub on its own
    device = torch.device(device)
    local = _local_dir(model_name)
    if model_name.startswith("hf-hub:"):
        raise BadInput(f"--clip-model {model_name}: hub models are not fetched by stylekit",
                       hint="download the model folder and pass it as --clip-model DIR, or pass --clip-weights FILE")
    try:
        if local is not None:
            if not (local / "open_clip_config.json").is_file():
                raise BadInput(f"{local}: not an open_clip model folder (no open_clip_config.json)",
                               hint="give an open_clip architecture name such as ViT-B-32, or a folder exported by open_clip")
            ckpts = sorted(p for p in local.iterdir() if p.suffix in (".safetensors", ".bin", ".pth", ".pt"))
            for ckpt in ckpts:
                _refuse_torchscript(ckpt)
            path = weights_path(weights) if weights is not None else None
            if path is not None:
                _refuse_torchscript(path)
            elif not ckpts:
                raise MissingResource(f"{local} has no CLIP weights file", hint="put open_clip_model.safetensors in the folder")
            model = open_clip.create_model(f"local-dir:{local}", device="cpu", weights_only=True)
            tokenizer = open_clip.get_tokenizer(f"local-dir:{local}")
            if path is not None:
                open_clip.load_checkpoint(model, str(path), weights_only=True)
                weights_id = _file_identity(path)
            else:
                weights_id = _file_identity(ckpts[0])
        else:
            if model_name not in open_clip.list_models():
                raise BadInput(f"unknown CLIP architecture '{model_name}'", hint="use an open_clip name such as ViT-B-32, or a local model folder")
            if is_random(weights):  # the stand-in: the architecture, seeded random init, no file
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(0)
                    model = open_clip.create_model(model_name, device="cpu")
                return _bundle(model, open_clip.get_tokenizer(model_name), model_name, "random(seed=0)", device)
            if weights is None:
                registry = REGISTRY_WEIGHTS.get(model_name)
                if registry is None:
                    raise MissingResource(f"no registry weights for CLIP {model_name}",
                                          hint="download an open_clip checkpoint for it and pass --clip-weights FILE")
                weights = registry
            registry_id = None if Path(weights).expanduser().is_file() else _registry_identity(str(weights))
            path = weights_path(weights)
            _refuse_torchscript(path)
            weights_id = registry_id or _file_identity(path)
            model = open_clip.create_model(model_name, pretrained=str(path), device="cpu", weights_only=True,
                                           force_quick_gelu=registry_id is not None and str(weights) in QUICK_GELU_WEIGHTS)
            tokenizer = open_clip.get_tokenizer(model_name)
    except (MissingResource, BadInput):
        raise
    except Exception as exc:  # noqa: BLE001 - open_clip/torch/safetensors raise many types for a bad file
        if offline() and isinstance(exc, OSError):
            raise MissingResource(f"CLIP {model_name} needs files that are not cached and STYLEKIT_OFFLINE=1 forbids fetching them ({exc})",
                                  hint="run the same command once without STYLEKIT_OFFLINE=1, or pass a local open_clip model folder") from None
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise BadInput(f"cannot load CLIP {model_name} from {weights or model_name}: {detail}",
                       hint="pass an open_clip checkpoint (.safetensors or .bin/.pt state dict) for --clip-model") from None
    return _bundle(model, tokenizer, model_name, weights_id, device)


def _bundle(model: Any, tokenizer: Any, model_name: str, weights_id: str, device: torch.device) -> ClipBundle:
    """A loaded open_clip model in eval mode on `device`, with its preprocessing."""
    import open_clip

    model = model.to(device).eval()
    cfg = open_clip.get_model_preprocess_cfg(model)
    size = cfg.get("size", 224)
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    mean = tuple(float(v) for v in cfg.get("mean", OPENAI_MEAN))
    std = tuple(float(v) for v in cfg.get("std", OPENAI_STD))
    embed_dim = int(model.text_projection.shape[1]) if getattr(model, "text_projection", None) is not None and hasattr(model.text_projection, "shape") else int(
        model.encode_image(torch.zeros(1, 3, size, size, device=device)).shape[-1])
    return ClipBundle(model, tokenizer, size, mean, std, embed_dim, model_name, weights_id, device)  # type: ignore[arg-type]


def prepare_images(bundle: ClipBundle, images: torch.Tensor) -> torch.Tensor:
    """[N,3,H,W] in [0,1] -> CLIP input: shorter side to image_size (bicubic, antialiased), centre crop, mean/std."""
    x = images.to(bundle.device, torch.float32)
    h, w = x.shape[-2:]
    s = bundle.image_size
    if (h, w) != (s, s):
        scale = s / min(h, w)
        nh, nw = max(s, round(h * scale)), max(s, round(w * scale))
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        top, left = (nh - s) // 2, (nw - s) // 2
        x = x[..., top : top + s, left : left + s]
    mean = torch.tensor(bundle.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(bundle.std, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def encode_images(bundle: ClipBundle, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """CLIP image embeddings [N, D] (L2-normalised unless normalize=False). Differentiable: wrap in
    torch.no_grad() yourself when no gradient is needed."""
    z = bundle.model.encode_image(prepare_images(bundle, images))
    return F.normalize(z.float(), dim=-1) if normalize else z.float()


def encode_text(bundle: ClipBundle, texts: Sequence[str], normalize: bool = True) -> torch.Tensor:
    """CLIP text embeddings [N, D] (L2-normalised unless normalize=False)."""
    tokens = bundle.tokenizer(list(texts)).to(bundle.device)
    z = bundle.model.encode_text(tokens)
    return F.normalize(z.float(), dim=-1) if normalize else z.float()
