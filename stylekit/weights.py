"""Registry of every pretrained artifact stylekit uses: name -> URLs, checksum, file name, licence.

Commands take a registry name (`--network ffhq-256`) or a local file. `weights_path` turns either into
a verified local path: local files are used as they are; names are looked up in the cache
($STYLEKIT_HOME/weights, default ~/.cache/stylekit/weights) and fetched on first use unless
STYLEKIT_OFFLINE=1. When a file can't be had the error is exit 3 with `stylekit download NAME`.

Checksums: where a sha256 is published it is pinned here (the Hugging Face hub lists each LFS file's
sha256; pytorch-fid's Inception file carries the first 8 hex digits in its name, and its full sha256 is
quoted identically by independent projects), as is a sha256 prefix (torchvision's `-<8 hex>.pth` names).
NVIDIA publishes none for its files, so those entries use trust-on-first-use: the first successful
download records its sha256 in weights/checksums.json and every later load or re-download must match
it (docs/weights.md).
This module must stay importable without torch: it only moves and verifies bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from stylekit.errors import BadInput, MissingResource
from stylekit.home import stylekit_home
from stylekit.offline import offline

_NV = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained"
_HF_CLIP_B32 = "https://huggingface.co/timm/vit_base_patch32_clip_224.openai"
_NV_LICENCE = (
    "NVIDIA Source Code License for StyleGAN2-ADA: non-commercial research and evaluation only"
)


@dataclass(frozen=True)
class WeightSpec:
    """One downloadable artifact. `urls` are mirrors tried in order; `size_bytes` is approximate."""

    name: str
    urls: tuple[str, ...]
    sha256: str | None
    filename: str
    licence: str
    description: str
    size_bytes: int | None = None
    sha256_prefix: str | None = None
    format: str = "file"

    @property
    def checksum_policy(self) -> str:
        if self.sha256:
            return "pinned sha256"
        if self.sha256_prefix:
            return "pinned sha256 prefix + recorded on first download"
        return "recorded on first download"

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["urls"] = list(self.urls)
        doc["checksum_policy"] = self.checksum_policy
        return doc


def _nv_pkl(name: str, path: str, description: str, size_bytes: int | None = None) -> WeightSpec:
    return WeightSpec(
        name=name,
        urls=(f"{_NV}/{path}",),
        sha256=None,
        filename=path.rsplit("/", 1)[-1],
        licence=_NV_LICENCE + "; FFHQ/CelebA-HQ/LSUN training data have their own terms",
        description=description,
        size_bytes=size_bytes,
        format="nvlabs-pkl",
    )


def _torchvision(name: str, filename: str, size_bytes: int, description: str) -> WeightSpec:
    """A torchvision ImageNet state dict; torchvision names files <arch>-<first 8 hex of sha256>.pth."""
    return WeightSpec(
        name=name,
        urls=(f"https://download.pytorch.org/models/{filename}",),
        sha256=None,
        sha256_prefix=filename.rsplit("-", 1)[1].split(".")[0],
        filename=filename,
        licence="torchvision (BSD-3-Clause); trained on ImageNet, whose terms allow non-commercial research use",
        description=f"{description} (torchvision state dict)",
        size_bytes=size_bytes,
        format="torchvision-state-dict",
    )


_SPECS = [
    _torchvision("vgg16", "vgg16-397923af.pth", 553_433_881, "VGG16 ImageNet classifier (IMAGENET1K_V1): LPIPS, Image2StyleGAN loss"),
    _torchvision("vgg19", "vgg19-dcbb9e9d.pth", 574_673_361, "VGG19 ImageNet classifier (IMAGENET1K_V1): Gatys style transfer, Gram metrics"),
    _torchvision("resnet18", "resnet18-f37072fd.pth", 46_830_571, "ResNet-18 ImageNet classifier: train-classifier backbone"),
    _torchvision("resnet34", "resnet34-b627a593.pth", 87_319_819, "ResNet-34 ImageNet classifier: train-classifier backbone"),
    _torchvision("resnet50", "resnet50-11ad3fa6.pth", 102_540_417, "ResNet-50 ImageNet classifier (IMAGENET1K_V2): train-classifier backbone"),
    _torchvision("efficientnet_b0", "efficientnet_b0_rwightman-7f5810bc.pth", 21_444_401, "EfficientNet-B0 ImageNet classifier: train-classifier backbone"),
    _torchvision("efficientnet_b1", "efficientnet_b1_rwightman-bac287d4.pth", 31_598_277, "EfficientNet-B1 ImageNet classifier: train-classifier backbone"),
    _torchvision("efficientnet_b2", "efficientnet_b2_rwightman-c35c1473.pth", 36_882_761, "EfficientNet-B2 ImageNet classifier: train-classifier backbone"),
    _torchvision("efficientnet_b3", "efficientnet_b3_rwightman-b3899882.pth", 49_475_213, "EfficientNet-B3 ImageNet classifier: train-classifier backbone"),
    _torchvision("vgg16_bn", "vgg16_bn-6c64b313.pth", 553_507_836, "VGG16-BN ImageNet classifier: train-classifier backbone"),
    _torchvision("vit_b_16", "vit_b_16-c867db91.pth", 346_328_529, "ViT-B/16 ImageNet classifier: train-classifier backbone"),
    _torchvision("convnext_tiny", "convnext_tiny-983f1562.pth", 114_419_989, "ConvNeXt-Tiny ImageNet classifier: train-classifier backbone"),
    WeightSpec(
        name="inception-fid",
        urls=(
            "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
            "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
        ),
        sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
        sha256_prefix="6726825d",
        filename="pt_inception-2015-12-05-6726825d.pth",
        licence="pytorch-fid (Apache-2.0); weights ported from TensorFlow's Inception-v3 2015-12-05 graph (Apache-2.0)",
        description="FID/KID Inception-v3 feature extractor: pytorch-fid's state dict of the TF 2015-12-05 graph "
        "(the network clean-fid builds for legacy_pytorch; loaded with weights_only=True)",
        size_bytes=95_628_359,
        format="torch-state-dict",
    ),
    WeightSpec(
        # NVlabs' metrics/vgg16.pt holds the same metric as TorchScript, which stylekit never executes;
        # LPIPS = registry vgg16 + these per-channel weights (see stylekit/nets/lpips.py).
        name="lpips-vgg16",
        urls=("https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth",),
        sha256=None,
        filename="vgg.pth",
        licence="LPIPS by Zhang et al. (BSD-2-Clause)",
        description="LPIPS v0.1 linear-layer weights for VGG16 (with registry vgg16: the NVlabs projector distance); "
        "also shipped inside the lpips package",
        format="torch-state-dict",
    ),
    WeightSpec(
        name="clip-vit-b-32",
        urls=(
            f"{_HF_CLIP_B32}/resolve/a6f597a30f7b82c51704746581f9a4e41421e878/open_clip_model.safetensors",
            f"{_HF_CLIP_B32}/resolve/main/open_clip_model.safetensors",
        ),
        sha256="e6d1bd7789aa45192b3bf90570a789b478bae1b74ebcce7eddd908e83a2b7c31",
        filename="open_clip_model.safetensors",
        licence="OpenAI CLIP weights (MIT); safetensors conversion by timm on the Hugging Face hub (repo marked Apache-2.0)",
        description="CLIP ViT-B/32, OpenAI weights as safetensors: the file open_clip loads for 'ViT-B-32' "
        "pretrained='openai' (hf-hub timm/vit_base_patch32_clip_224.openai; QuickGELU)",
        size_bytes=605_143_284,
        format="open_clip-safetensors",
    ),
    WeightSpec(
        # biubug6/Pytorch_Retinaface's release, re-hosted on GitHub by facexlib and CodeFormer (no sha256
        # published anywhere: recorded on first download). stylekit/nets/retinaface.py builds the network.
        name="retinaface-mobilenet0.25",
        urls=(
            "https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_mobilenet0.25_Final.pth",
            "https://github.com/sczhou/CodeFormer/releases/download/v0.1.0/detection_mobilenet0.25_Final.pth",
        ),
        sha256=None,
        filename="detection_mobilenet0.25_Final.pth",
        licence="Pytorch_Retinaface by biubug6 (MIT); trained on WIDER FACE (research use)",
        description="RetinaFace MobileNet-0.25 face detector with 5 landmarks: prepare/invert --align ffhq",
        size_bytes=1_789_735,
        format="torch-state-dict",
    ),
    _nv_pkl("ffhq-256", "transfer-learning-source-nets/ffhq-res256-mirror-paper256-noaug.pkl", "StyleGAN2 FFHQ 256x256 (paper256 config, x-flips, no aug): NVlabs transfer-learning source"),
    _nv_pkl("ffhq-512", "transfer-learning-source-nets/ffhq-res512-mirror-stylegan2-noaug.pkl", "StyleGAN2 FFHQ 512x512 (stylegan2 config, x-flips, no aug): NVlabs transfer-learning source"),
    _nv_pkl("ffhq-1024", "transfer-learning-source-nets/ffhq-res1024-mirror-stylegan2-noaug.pkl", "StyleGAN2 FFHQ 1024x1024 (stylegan2 config, x-flips, no aug): NVlabs transfer-learning source"),
    _nv_pkl("celebahq-256", "transfer-learning-source-nets/celebahq-res256-mirror-paper256-kimg100000-ada-target0.5.pkl", "StyleGAN2-ADA CelebA-HQ 256x256 (100k kimg, ADA target 0.6->0.5): NVlabs transfer-learning source"),
    _nv_pkl("lsundog-256", "transfer-learning-source-nets/lsundog-res256-paper256-kimg100000-noaug.pkl", "StyleGAN2 LSUN Dog 256x256 (100k kimg, no aug): NVlabs transfer-learning source"),
]

REGISTRY: dict[str, WeightSpec] = {spec.name: spec for spec in _SPECS}

CHECKSUMS_FILE = "checksums.json"


def register(spec: WeightSpec, replace: bool = False) -> WeightSpec:
    """Add an entry (e.g. a library module's extra backbones). An existing name is kept unless `replace`."""
    if not isinstance(spec, WeightSpec):
        raise TypeError(f"register() needs a WeightSpec, got {type(spec).__name__}")
    if replace or spec.name not in REGISTRY:
        REGISTRY[spec.name] = spec
    return REGISTRY[spec.name]




def weights_dir() -> Path:
    return stylekit_home() / "weights"


def registry_names() -> list[str]:
    return list(REGISTRY)


def get_spec(name: str) -> WeightSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise BadInput(f"unknown weights name '{name}'", hint=f"known names: {', '.join(REGISTRY)}; or give a path to a local file") from None


def mirror_urls(spec: WeightSpec) -> list[str]:
    """The URLs tried in order: $STYLEKIT_MIRROR/<filename> first when set (a site-local mirror), then the registry's."""
    urls = []
    for base in (os.environ.get("STYLEKIT_MIRROR") or "").split(","):
        if base.strip():
            urls.append(f"{base.strip().rstrip('/')}/{spec.filename}")
    return urls + list(spec.urls)


# --- recorded checksums (trust on first use) -------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock: torchrun ranks fetching the same file wait for the first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; downloads still land atomically.
            yield
            return
        from stylekit.io.rundir import UNLOCKABLE

        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        except OSError as exc:  # a filesystem without locks: ranks may fetch twice; each lands atomically
            if exc.errno not in UNLOCKABLE:
                raise
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def read_checksums() -> dict[str, dict[str, Any]]:
    path = weights_dir() / CHECKSUMS_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadInput(f"{path} is not valid JSON", hint="fix or delete it (recorded checksums are then re-recorded on the next download)") from None
    entries = doc.get("entries", {}) if isinstance(doc, dict) else {}
    return entries if isinstance(entries, dict) else {}


def _record(name: str, entry: dict[str, Any]) -> None:
    from stylekit.io.atomic import write_json_atomic

    folder = weights_dir()
    with _locked(folder / f".{CHECKSUMS_FILE}.lock"):
        entries = read_checksums()
        entries[name] = {**entries.get(name, {}), **entry}
        write_json_atomic(folder / CHECKSUMS_FILE, {"version": 1, "entries": entries})


def _expected(spec: WeightSpec, recorded: dict[str, Any] | None) -> str | None:
    """The full sha256 a file must have: pinned in the registry, else the one recorded on first use."""
    if spec.sha256:
        return spec.sha256.lower()
    if recorded and isinstance(recorded.get("sha256"), str):
        return recorded["sha256"].lower()
    return None


@dataclass
class WeightsResult:
    """What `ensure_weights` did: where the file is, its sha256 and how it was trusted."""

    name: str
    path: Path
    sha256: str
    size: int
    skipped: bool
    trust: str
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["path"] = str(self.path)
        return doc


def _verify_file(spec: WeightSpec, path: Path, in_cache: bool) -> WeightsResult:
    """Check a file already on disk against the pinned/recorded checksum (recording it if none yet)."""
    from stylekit.data.http import checksum_ok, sha256_file
    from stylekit.io.console import get_console

    recorded = read_checksums().get(spec.name)
    expected = _expected(spec, recorded)
    st = path.stat()
    stamp_ok = (
        in_cache
        and recorded is not None
        and expected is not None
        and recorded.get("sha256") == expected
        and recorded.get("size") == st.st_size
        and recorded.get("mtime_ns") == st.st_mtime_ns
    )
    digest = expected if stamp_ok and expected else sha256_file(path)
    if not checksum_ok(digest, expected, spec.sha256_prefix):
        raise MissingResource(
            f"{path} fails its checksum check for '{spec.name}' (sha256 {digest[:16]}..., expected "
            f"{(expected or spec.sha256_prefix or '')[:16]}...): it is corrupt or not the registry file",
            fetch_command=f"stylekit download {spec.name} --fresh",
        )
    trust = "pinned sha256" if spec.sha256 else ("recorded on first download" if expected else "recorded now (first use)")
    if expected is None:
        get_console().warn(f"{spec.name}: no published checksum; recording sha256 {digest[:16]}... of {path} (trust on first use)")
    if in_cache and not stamp_ok:
        _record(spec.name, {"filename": spec.filename, "sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                            **({} if recorded else {"recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "source": str(path)})})
    elif expected is None:
        _record(spec.name, {"filename": spec.filename, "sha256": digest, "size": st.st_size,
                            "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "source": str(path)})
    return WeightsResult(spec.name, path, digest, st.st_size, True, trust)


def ensure_weights(
    name: str,
    force: bool = False,
    dest_dir: str | os.PathLike[str] | None = None,
    *,
    timeout: float = 60.0,
    retries: int = 3,
    backoff: float = 1.0,
) -> WeightsResult:
    """Make registry artifact `name` present and verified in the cache (or `dest_dir`); fetch if needed.

    An existing verified file is kept (skipped=True). `force` downloads again and, for entries without
    a published checksum, replaces the recorded one. Mirrors are tried in order; a checksum mismatch
    discards the bytes and moves on to the next mirror.
    """
    from stylekit.data.http import DownloadError, fetch_url
    from stylekit.io.console import get_console

    spec = get_spec(name)
    folder = Path(dest_dir) if dest_dir is not None else weights_dir()
    in_cache = dest_dir is None or folder.resolve() == weights_dir().resolve()
    dest = folder / spec.filename
    fetch = f"stylekit download {name}"
    with _locked(folder / f".{spec.filename}.lock"):
        if dest.is_file() and not force:
            try:
                return _verify_file(spec, dest, in_cache)
            except MissingResource as exc:
                if offline():
                    raise
                get_console().warn(f"{exc.message}; downloading it again")
                dest.unlink()
        if offline():
            raise MissingResource(
                f"weights '{name}' are not in the cache ({dest}) and STYLEKIT_OFFLINE=1 forbids downloading; "
                f"run `{fetch}` on a machine with network access and copy {spec.filename} into {folder}",
                fetch_command=fetch,
            )
        recorded = read_checksums().get(name)
        expected = spec.sha256 or (None if force else _expected(spec, recorded))
        errors: list[str] = []
        statuses: list[int] = []  # HTTP statuses among the failures (none: the network did not answer)
        mismatch: DownloadError | None = None
        for url in mirror_urls(spec):
            try:
                fetched = fetch_url(url, dest, sha256=expected, sha256_prefix=spec.sha256_prefix, timeout=timeout,
                                    retries=retries, backoff=backoff, progress=f"{name}", expected_size=spec.size_bytes)
            except DownloadError as exc:
                errors.append(exc.message)
                if exc.status is not None:
                    statuses.append(exc.status)
                if exc.reason == "checksum":
                    mismatch = exc
                get_console().warn(exc.message)
                continue
            st = dest.stat()
            if spec.sha256:
                trust = "pinned sha256"
            elif expected:
                trust = "recorded on first download"
            else:
                trust = "recorded now (first download)"
            entry = {"filename": spec.filename, "sha256": fetched.sha256, "size": st.st_size, "url": url}
            if not expected:
                entry["recorded_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            if in_cache:
                entry["mtime_ns"] = st.st_mtime_ns
            if in_cache or not expected:
                _record(name, entry)
            return WeightsResult(name, dest, fetched.sha256, st.st_size, False, trust, url)
        if mismatch is not None and not spec.sha256 and expected:
            raise MissingResource(
                f"'{name}': the downloaded file differs from the sha256 recorded on first download "
                f"({expected[:16]}... in {weights_dir() / CHECKSUMS_FILE}); nothing was kept",
                hint=f"if the upstream file changed legitimately, trust the new one with `{fetch} --fresh`",
            )
        raise MissingResource(f"could not download '{name}': " + "; ".join(errors), fetch_command=fetch,
                              hint=_failed_download_hint(spec, folder, statuses))


def _failed_download_hint(spec: WeightSpec, folder: Path, statuses: list[int]) -> str:
    """What to do when every URL failed; repeating the command that just failed would not help."""
    why = (f"the server answered HTTP {', '.join(map(str, sorted(set(statuses))))}" if statuses
           else "the network is unreachable from here")
    return (f"{why}: set STYLEKIT_MIRROR to a site-local mirror that holds {spec.filename}, or fetch it where the "
            f"network works and copy it into {folder}, or pass a local weights file instead of the name '{spec.name}'")


def download_weights(name: str, force: bool = False, dest_dir: str | os.PathLike[str] | None = None) -> Path:
    """Fetch registry artifact `name` (see ensure_weights) and return its path."""
    return ensure_weights(name, force=force, dest_dir=dest_dir).path


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.startswith((".", "~")) or Path(text).suffix != ""


def weights_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A local file as is, or a registry name resolved to its verified cached file (fetched on first use).

    Raises MissingResource (exit 3, with `stylekit download NAME`) when the file is not cached and
    STYLEKIT_OFFLINE=1 or the download fails; BadInput (exit 2) for a name that is neither.
    """
    text = os.fspath(name_or_path)
    candidate = Path(text).expanduser()
    if candidate.is_file():
        return candidate
    if text in REGISTRY:
        return ensure_weights(text).path
    if _looks_like_path(text):
        raise BadInput(f"weights file {text} does not exist", hint=f"give an existing file or a registry name: {', '.join(REGISTRY)}")
    raise BadInput(f"unknown weights name '{text}'", hint=f"known names: {', '.join(REGISTRY)}; or give a path to a local file")
