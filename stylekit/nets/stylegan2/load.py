"""Load and save StyleGAN2 and StyleGAN3 networks: NVlabs pickles (safely), rosinality .pt, stylekit .safetensors.

`load_network(name_or_path, device)` accepts
- a registry name (`ffhq-256`, `metfaces`, ...), an `https://` URL or a hub id `hf://OWNER/REPO/FILE`
  (fetched once into the cache and checksum-checked by `stylekit.weights.weights_path`, then read
  exactly like a local file),
- an NVlabs stylegan2-ada-pytorch pickle (`network-snapshot-*.pkl`, `ffhq.pkl`) or an NVlabs stylegan3
  pickle (StyleGAN3 T/R networks, and StyleGAN2-architecture ones trained there): read by
  `stylekit.io.safe_pickle`, nothing executed,
- a rosinality/stylegan2-pytorch checkpoint (`.pt`, as used by StyleCLIP): `torch.load(weights_only=True)`,
- an NVlabs-named generator state dict `.pt` with its init kwargs in the `.json` next to it
  (what `stylekit convert --to nvlabs-state` writes),
- a stylekit `.safetensors` network written by `save_network`,
- a directory holding one of the above (a training run: checkpoints/latest.safetensors, ...).
Anything else raises BadInput (exit 2) naming the file and what stylekit can read instead.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import struct
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from stylekit.data.images import is_image_name
from stylekit.errors import BadInput
from stylekit.io.atomic import write_atomic
from stylekit.io.console import get_console
from stylekit.io.limits import build_checked, check_tensor_bytes, parse_json
from stylekit.io.paths import open_regular
from stylekit.io.safe_pickle import PersistentObject, plain, safe_load
from stylekit.io.torch_file import load_torch
from stylekit.nets.stylegan2.bounds import check_network_config
from stylekit.nets.stylegan2.networks import Discriminator, Generator
from stylekit.nets.stylegan2.rosinality import (
    from_rosinality,
    from_rosinality_discriminator,
    is_rosinality_discriminator,
    is_rosinality_state,
)
from stylekit.nets.stylegan2.tiny import tiny_generator, tiny_generator_config
from stylekit.nets.stylegan3 import config as stylegan3_config
from stylekit.nets.stylegan3.networks import Generator as StyleGAN3Generator
from stylekit.nets.stylegan3.tiny import tiny_generator as tiny_stylegan3
from stylekit.nets.stylegan3.tiny import tiny_generator_config as tiny_stylegan3_config
from stylekit.standins import NETWORK_PREFIX, random_network_architecture, random_network_resolution
from stylekit.weights import REGISTRY, as_source, is_remote, weights_path

FORMAT_NAME = "stylekit.stylegan2"
FORMAT_VERSION = "1"
NETWORK_KEYS = ("G", "G_ema", "D")

_MAPPING_KEYS = {"num_layers", "embed_features", "layer_features", "activation", "lr_multiplier", "w_avg_beta"}
_SYNTHESIS_KEYS = {"channel_base", "channel_max", "num_fp16_res", "conv_clamp", "architecture", "resample_filter",
                   "fp16_channels_last", "use_noise", "activation"}
_G_KEYS = {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"}
_D_KEYS = {"c_dim", "img_resolution", "img_channels", "architecture", "channel_base", "channel_max", "num_fp16_res",
           "conv_clamp", "cmap_dim"}
_D_BLOCK_KEYS = {"activation", "resample_filter", "fp16_channels_last", "freeze_layers"}
_D_EPILOGUE_KEYS = {"mbstd_group_size", "mbstd_num_channels", "activation"}
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


@dataclass(frozen=True)
class Architecture:
    """A generator architecture: its class, how a file's init kwargs become its kwargs, their bounds check."""

    generator: type[torch.nn.Module]
    normalize: Callable[[dict[str, Any]], dict[str, Any]]
    check: Callable[[dict[str, Any], str, str], None]


def generator_architecture(names: Collection[str]) -> str | None:
    """Which generator a state dict's (or a pickle's synthesis modules') names describe, None for neither."""
    if any(n.startswith("synthesis.input.") or n == "input" for n in names):
        return "stylegan3"
    if any(n.startswith("synthesis.b4.") or n == "b4" for n in names):
        return "stylegan2"
    return None


@dataclass
class LoadedNetwork:
    """What load_network returns. `generator` is the one to sample from (G_ema when present)."""

    G: Generator | None
    D: Discriminator | None = None
    G_ema: Generator | None = None
    config: dict[str, Any] = field(default_factory=dict)  # {"G": init kwargs, "G_ema": ..., "D": ...}
    source: str = ""
    format: str = ""  # nvlabs-pkl | rosinality | nvlabs-state | stylekit
    extra: dict[str, Any] = field(default_factory=dict)  # training_set_kwargs, metadata, ...

    @property
    def architecture(self) -> str:
        """stylegan2 | stylegan3 (what commands that only fit one of them check)."""
        return self.generator.architecture

    @property
    def generator(self) -> Generator:
        g = self.G_ema if self.G_ema is not None else self.G
        if g is None:
            raise BadInput(f"{self.source}: holds no generator", hint="pass a file with G or G_ema")
        return g


# ----------------------------------------------------------------------------- configs


def _pick(kwargs: dict[str, Any], allowed: set[str], where: str, dropped: list[str]) -> dict[str, Any]:
    out = {}
    for key, value in kwargs.items():
        if key in allowed:
            out[key] = value
        else:
            dropped.append(f"{where}{key}")
    return out


def normalize_generator_config(raw: dict[str, Any]) -> dict[str, Any]:
    """NVlabs (or StyleGAN3-repo, flattened) Generator init kwargs -> stylekit Generator kwargs."""
    raw = copy.deepcopy(dict(raw))
    dropped: list[str] = []
    mapping = dict(raw.pop("mapping_kwargs", None) or {})
    synthesis = dict(raw.pop("synthesis_kwargs", None) or {})
    for key in list(raw):
        if key not in _G_KEYS:  # StyleGAN3-repo Generators take synthesis kwargs flattened
            synthesis.setdefault(key, raw.pop(key))
    missing = {"z_dim", "c_dim", "w_dim", "img_resolution"} - set(raw)
    if missing:
        raise BadInput(f"generator config lacks {sorted(missing)}")
    cfg = dict(raw)
    cfg.setdefault("img_channels", 3)
    cfg["mapping_kwargs"] = _pick(mapping, _MAPPING_KEYS, "mapping_kwargs.", dropped)
    cfg["synthesis_kwargs"] = _pick(synthesis, _SYNTHESIS_KEYS, "synthesis_kwargs.", dropped)
    if dropped:
        get_console().log(f"stylegan2: ignoring generator options that do not change the weights: {', '.join(dropped)}")
    return cfg


def normalize_discriminator_config(raw: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(dict(raw))
    dropped: list[str] = []
    cfg = _pick({k: v for k, v in raw.items() if not k.endswith("_kwargs")}, _D_KEYS, "", dropped)
    cfg["block_kwargs"] = _pick(dict(raw.get("block_kwargs") or {}), _D_BLOCK_KEYS, "block_kwargs.", dropped)
    cfg["mapping_kwargs"] = _pick(dict(raw.get("mapping_kwargs") or {}), _MAPPING_KEYS, "mapping_kwargs.", dropped)
    cfg["epilogue_kwargs"] = _pick(dict(raw.get("epilogue_kwargs") or {}), _D_EPILOGUE_KEYS, "epilogue_kwargs.", dropped)
    if dropped:
        get_console().log(f"stylegan2: ignoring discriminator options: {', '.join(dropped)}")
    return cfg


def _check_stylegan2(config: dict[str, Any], source: str, kind: str) -> None:
    check_network_config(kind, config, source)


ARCHITECTURES: dict[str, Architecture] = {
    "stylegan2": Architecture(Generator, normalize_generator_config, _check_stylegan2),
    "stylegan3": Architecture(StyleGAN3Generator, stylegan3_config.normalize_generator_config,
                              stylegan3_config.check_generator_config),
}


def _build(kind: str, config: dict[str, Any], state: dict[str, torch.Tensor], source: str) -> torch.nn.Module:

    if kind.startswith("G"):
        arch = ARCHITECTURES[generator_architecture(state) or "stylegan2"]
        arch.check(config, source, kind)
        cls: type[torch.nn.Module] = arch.generator
    else:
        check_network_config(kind, config, source)
        cls = Discriminator
    # Constant FIR buffers keep their defaults when a format does not store them; w_avg is estimated.
    def optional(key: str) -> bool:
        return key.endswith("resample_filter") or (kind.startswith("G") and key == "mapping.w_avg")

    net: torch.nn.Module = build_checked(lambda: cls(**config), {k: tuple(v.shape) for k, v in state.items()}, source,
                                         f"its {kind} config", optional)
    own = net.state_dict()
    net.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=not any(optional(k) for k in set(own) - set(state)))
    if kind.startswith("G") and "mapping.w_avg" not in state:
        _fill_w_avg(net)
    return net.eval()


# ----------------------------------------------------------------------------- NVlabs pickles


def _state_of(obj: Any, prefix: str, out: dict[str, torch.Tensor]) -> None:

    state = obj.state if isinstance(obj, PersistentObject) else None
    if state is None:
        raise BadInput(f"network pickle: module '{prefix.rstrip('.')}' is not an NVlabs persistent module")
    for group in ("_parameters", "_buffers"):
        for name, tensor in (state.get(group) or {}).items():
            if tensor is not None:
                if not isinstance(tensor, torch.Tensor):
                    raise BadInput(f"network pickle: {prefix}{name} is not a tensor")
                out[prefix + name] = tensor.detach()  # converted after check_tensor_bytes (_load_pickle)
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            _state_of(child, f"{prefix}{name}.", out)


def _load_pickle(path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:

    data = safe_load(path)
    if isinstance(data, int):  # legacy torch.save archive: its first pickle is a magic number
        raise _TorchArchive()
    if isinstance(data, PersistentObject):
        data = {"G_ema": data}
    if not isinstance(data, dict) or not any(isinstance(data.get(k), PersistentObject) for k in NETWORK_KEYS):
        raise BadInput(f"{path}: a pickle without G/D/G_ema networks", hint="pass an NVlabs network-snapshot pkl")
    states: dict[str, Any] = {}
    configs: dict[str, Any] = {}
    for key in NETWORK_KEYS:
        obj = data.get(key)
        if not isinstance(obj, PersistentObject):
            continue
        if obj.init_args:
            raise BadInput(f"{path}: {key} was built with positional arguments, which stylekit cannot map")
        if key.startswith("G"):
            synth = obj.modules.get("synthesis")
            arch = generator_architecture(synth.modules) if isinstance(synth, PersistentObject) else None
            if arch is None:
                raise BadInput(f"{path}: {key} is neither a StyleGAN2 nor a StyleGAN3 generator (no synthesis.b4 or synthesis.input)",
                               hint="pass an NVlabs stylegan2-ada-pytorch or stylegan3 network pickle")
            configs[key] = ARCHITECTURES[arch].normalize(obj.init_kwargs)
        else:
            configs[key] = normalize_discriminator_config(obj.init_kwargs)
        state: dict[str, torch.Tensor] = {}
        _state_of(obj, "", state)
        states[key] = state

    check_tensor_bytes([t for st in states.values() for t in st.values()], str(path))  # before any copy
    states = {key: {k: t.to(torch.float32) if t.is_floating_point() else t for k, t in st.items()} for key, st in states.items()}
    extra = {"training_set_kwargs": plain(data.get("training_set_kwargs"))} if data.get("training_set_kwargs") else {}
    return states, configs, extra


class _TorchArchive(Exception):
    pass


# ----------------------------------------------------------------------------- rosinality / torch


def _torch_load(path: Path) -> Any:

    return load_torch(path, "torch checkpoint", safe_globals=[argparse.Namespace],
                      hint="stylekit reads rosinality/stylegan2-pytorch .pt files holding tensors, NVlabs pkl and stylekit .safetensors")


def _load_torch_file(path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], str]:
    """A torch.save archive: a rosinality checkpoint or a stylekit `convert --to nvlabs-state` export."""
    ckpt = _torch_load(path)
    if isinstance(ckpt, dict) and all(isinstance(v, torch.Tensor) for v in ckpt.values()) and generator_architecture(ckpt):
        return *_load_nvlabs_state(path, ckpt), "nvlabs-state"
    return *_load_rosinality(path, ckpt), "rosinality"


def nvlabs_state_config_path(path: Path) -> Path:
    """Where the init kwargs of an NVlabs-named state dict live: the same name with .json."""
    return path.with_suffix(".json")


def _load_nvlabs_state(path: Path, state: dict[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    config_path = nvlabs_state_config_path(path)
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"{path}: an NVlabs-named generator state dict without its init kwargs {config_path.name}",
                       hint=f"put the Generator kwargs JSON written by 'stylekit convert --to nvlabs-state' at {config_path}") from None
    except (OSError, ValueError) as exc:
        raise BadInput(f"{config_path}: unreadable generator kwargs ({exc})", hint="restore the JSON written next to the .pt") from None
    if not isinstance(raw, dict):
        raise BadInput(f"{config_path}: generator kwargs must be a JSON object")
    tensors = {k: v.detach().to(torch.float32) if v.is_floating_point() else v for k, v in state.items()}
    arch = generator_architecture(state) or "stylegan2"
    return {"G_ema": tensors}, {"G_ema": ARCHITECTURES[arch].normalize(raw)}, {}


def _load_rosinality(path: Path, ckpt: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:

    if not isinstance(ckpt, dict):
        raise BadInput(f"{path}: not a StyleGAN2 checkpoint (top level is {type(ckpt).__name__})")
    latent_avg = ckpt.get("latent_avg") if isinstance(ckpt.get("latent_avg"), torch.Tensor) else None
    states, configs = {}, {}
    for src, dst in (("g", "G"), ("g_ema", "G_ema")):
        sd = ckpt.get(src)
        if isinstance(sd, dict) and is_rosinality_state(sd):
            states[dst], configs[dst] = from_rosinality(sd, latent_avg)
    if not states and is_rosinality_state(ckpt):
        states["G_ema"], configs["G_ema"] = from_rosinality(ckpt, latent_avg)
    d = ckpt.get("d")
    if isinstance(d, dict) and is_rosinality_discriminator(d):
        states["D"], configs["D"] = from_rosinality_discriminator(d)
    if not states:
        raise BadInput(
            f"{path}: not a rosinality/stylegan2-pytorch network checkpoint (no g_ema/g with style.N and convs.N keys, no d)",
            hint="stylekit reads NVlabs pkl, rosinality .pt and stylekit .safetensors networks",
        )
    for key in ("G", "G_ema"):
        if key in states and "mapping.w_avg" not in states[key]:
            get_console().warn(f"{path}: no latent_avg; truncation will use the mean w of 10000 random z")
    return states, configs, {}


def _fill_w_avg(G: Generator) -> None:
    gen = torch.Generator(device="cpu").manual_seed(0)
    with torch.no_grad():
        z = torch.randn(10000, G.z_dim, generator=gen, device="cpu")
        c = torch.zeros(10000, G.c_dim, device="cpu") if G.c_dim else None
        G.mapping.w_avg.copy_(G.mapping(z, c)[:, 0].mean(0))


# ----------------------------------------------------------------------------- stylekit safetensors


def _is_safetensors(head: bytes) -> bool:
    if len(head) < 10:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n < 100_000_000 and head[8:9] == b"{"


def _load_safetensors(path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    from safetensors import safe_open


    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            keys = list(fh.keys())
            if meta.get("format") != FORMAT_NAME:
                raise BadInput(
                    f"{path}: a safetensors file that is not a stylekit StyleGAN network (metadata format={meta.get('format')!r})",
                    hint="write networks with stylekit (blend-layers, finetune-stylegan) or pass an NVlabs pkl / rosinality .pt",
                )
            configs = parse_json(meta.get("config", "{}"), f"{path} (config metadata)")
            if not isinstance(configs, dict):
                raise BadInput(f"{path}: the network config is a {type(configs).__name__}, not a table of networks",
                               hint="the file is damaged or was not written by stylekit")
            states: dict[str, dict[str, torch.Tensor]] = {k: {} for k in configs}
            for key in keys:
                net, _, name = key.partition(".")
                if net in states:
                    states[net][name] = fh.get_tensor(key)
            extra = parse_json(meta.get("extra", "{}"), f"{path} (extra metadata)")
    except BadInput:
        raise
    except Exception as exc:  # noqa: BLE001
        raise BadInput(f"{path}: unreadable safetensors network ({type(exc).__name__}: {exc})") from None
    return states, configs, extra


def save_network(
    path: str | os.PathLike[str],
    *,
    G: Generator | None = None,
    G_ema: Generator | None = None,
    D: Discriminator | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write networks as one safetensors file (state dicts + JSON config in metadata), atomically."""
    from safetensors.torch import save_file


    tensors: dict[str, torch.Tensor] = {}
    configs: dict[str, Any] = {}
    for key, net in (("G", G), ("G_ema", G_ema), ("D", D)):
        if net is None:
            continue
        configs[key] = net.init_kwargs
        for name, t in net.state_dict().items():
            tensors[f"{key}.{name}"] = t.detach().to("cpu").clone().contiguous()
    if not configs:
        raise ValueError("save_network needs at least one network")
    meta = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "config": json.dumps(configs),
            "extra": json.dumps(extra or {}, default=str)}
    return write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


# ----------------------------------------------------------------------------- entry point


def resolve_network_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A local file/dir as is; a registry name, URL or hub id through stylekit.weights (exit 3 if missing)."""

    text = as_source(name_or_path)
    if is_remote(text):
        return Path(weights_path(text))
    path = Path(text).expanduser()
    if path.exists():
        return _pick_from_dir(path) if path.is_dir() else path
    looks_like_path = os.sep in text or "/" in text or path.suffix.lower() in {".pkl", ".pt", ".pth", ".safetensors"}
    if not looks_like_path and text in REGISTRY:
        return Path(weights_path(text))
    raise BadInput(
        f"network '{text}' is neither an existing file nor a known registry name",
        hint="pass a .pkl/.pt/.safetensors path, an https:// URL, hf://OWNER/REPO/FILE or a name from "
             "'stylekit download --list' (e.g. ffhq-256)",
    )


def _pick_from_dir(folder: Path) -> Path:
    candidates = [folder / "network-final.safetensors", folder / "network.safetensors", folder / "checkpoints" / "latest.safetensors"]
    for pattern in ("network-snapshot-*.safetensors", "checkpoints/*.safetensors", "*.safetensors", "network-snapshot-*.pkl", "*.pkl", "*.pt"):
        candidates += sorted(folder.glob(pattern), key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
    for cand in candidates:
        if cand.is_file():
            if cand.suffix == ".safetensors" and not _has_network_metadata(cand):
                continue
            return cand
    kind = _folder_kind(folder)
    raise BadInput(f"{folder} is {kind}, not a StyleGAN network" if kind else f"{folder}: no StyleGAN network file in this directory",
                   hint="pass a finetune-stylegan run directory, a network file (.pkl, .pt, .safetensors) or a registry name "
                        "(stylekit download --list)")


# What other stylekit folders hold, so a wrong --network says what it was given (first match wins).
_FOLDER_KINDS = (
    ("style_model.safetensors", "a train-classifier run (its style model goes to --style-model of score, classify, similar)"),
    ("generator.safetensors", "a train-pix2pix run (use it with stylekit transfer --method pix2pix --model)"),
    ("manifest.csv", "a prepared data set (stylekit prepare)"),
)


def _folder_kind(folder: Path) -> str | None:
    for marker, kind in _FOLDER_KINDS:
        if (folder / marker).is_file():
            return kind

    if any(is_image_name(p) for p in folder.iterdir() if p.is_file()):
        return "a folder of images"
    return None


def _has_network_metadata(path: Path) -> bool:
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device="cpu") as fh:
            return (fh.metadata() or {}).get("format") == FORMAT_NAME
    except Exception:  # noqa: BLE001
        return False


# The random stand-ins by architecture: (tiny generator, its config), both taking the resolution.
_STANDINS: dict[str, tuple[Callable[..., torch.nn.Module], Callable[..., dict[str, Any]]]] = {
    "stylegan2": (tiny_generator, tiny_generator_config),
    "stylegan3": (tiny_stylegan3, tiny_stylegan3_config),
}


def random_network(spec: str, device: str | torch.device = "cpu") -> LoadedNetwork | None:
    """`random:RES` / `random:stylegan3:RES`: a seeded random-init generator at RES px (the stand-in for trying
    commands offline; stylekit.standins), or None when `spec` names something else."""

    if not isinstance(spec, str) or not spec.startswith(NETWORK_PREFIX):
        return None
    res, arch = random_network_resolution(spec), random_network_architecture(spec)
    if res is None or arch is None or not 4 <= res <= 1024 or res & (res - 1):
        raise BadInput(f"network '{spec}': random:RES (or random:stylegan3:RES) needs a power of two RES from 4 to 1024",
                       hint="e.g. random:64 or random:stylegan3:64")
    build, config = _STANDINS[arch]
    with torch.random.fork_rng(devices=[]):  # the stand-in is seeded without touching the caller's RNG
        G = build(res, seed=0).to(device)
    return LoadedNetwork(G=None, G_ema=G, config={"G_ema": config(res)}, source=spec, format="random")


def load_network(name_or_path: str | os.PathLike[str], device: str | torch.device = "cpu") -> LoadedNetwork:
    """Load G / G_ema / D from any supported file or registry name onto `device` (eval mode); `random:RES` is
    a random-init stand-in (`random_network`)."""
    standin = random_network(name_or_path, device) if isinstance(name_or_path, str) else None
    if standin is not None:
        return standin
    path = resolve_network_path(name_or_path)
    try:
        with open_regular(path, "network file") as fh:  # a FIFO would block a plain open() forever
            head = fh.read(64)
    except OSError as exc:
        raise BadInput(f"{path}: cannot read ({exc.strerror})") from None
    if _is_safetensors(head):
        states, configs, extra = _load_safetensors(path)
        fmt = "stylekit"
    elif head.startswith(b"PK\x03\x04") or head.startswith(_LEGACY_TORCH_MAGIC):
        states, configs, extra, fmt = _load_torch_file(path)
    elif head[:1] == b"\x80":
        try:
            states, configs, extra = _load_pickle(path)
            fmt = "nvlabs-pkl"
        except _TorchArchive:
            states, configs, extra, fmt = _load_torch_file(path)
    else:
        raise BadInput(
            f"{path}: unsupported network format",
            hint="stylekit reads NVlabs StyleGAN2(-ADA) and StyleGAN3 .pkl, rosinality .pt and stylekit .safetensors",
        )

    check_tensor_bytes([t for st in states.values() for t in st.values()], str(path))
    nets: dict[str, Any] = {}
    for key in NETWORK_KEYS:
        if key in states:
            nets[key] = _build(key, configs[key], states[key], str(path)).to(device)
    return LoadedNetwork(G=nets.get("G"), D=nets.get("D"), G_ema=nets.get("G_ema"), config=configs,
                         source=str(path), format=fmt, extra=extra)
