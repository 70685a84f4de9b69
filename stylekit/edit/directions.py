"""`stylekit directions`: latent edit directions in W, found two ways, applied as a labelled edit sheet.

- SeFa (Shen & Zhou, "Closed-Form Factorization of Latent Semantics in GANs", CVPR 2021): every synthesis layer
  turns w into styles with an affine map s = A w + b, so moving w by n moves the styles by A n. The directions
  that move the styles most are the top eigenvectors of A^T A, with A the stacked affine weights of the chosen
  layers (here every affine that reads one of them: the convolutions' and the toRGB's). No sampling, no data.
- classifier (InterFaceGAN, Shen et al. 2020): sample latents from --seed, generate, score each image with a
  style model (the probability of --style), fit a linear boundary in W between the top and the bottom fraction,
  and take its unit normal, pointing towards the style.

Both apply a direction d at strength s to the chosen layers only: w'[l] = w[l] + s d for l in layers. The
directions file (directions.npz) holds `directions` [k, w_dim] float32, `layers`, `method`, `network` and
`eigenvalues` (SeFa) or `accuracy` (classifier, on held-out latents). Edited latents go to edited.npz in the latent
format of stylekit/edit/latents.py (rows: direction-major, then seed, then strength).
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylekit.configs.directions import DirectionsConfig, Method
from stylekit.data.grid import save_labelled_grid
from stylekit.data.images import mark_composite
from stylekit.edit.generate import check_amp, load_generator, map_seeds, synthesize, to_unit
from stylekit.edit.latents import load_latents, save_latents
from stylekit.edit.outdir import claim_out, network_identity, warn_standins
from stylekit.errors import BadInput
from stylekit.io.atomic import write_bytes_atomic, write_json_atomic
from stylekit.io.console import get_console
from stylekit.io.paths import Input, open_regular, refuse_out_overlap
from stylekit.io.recipe import file_digest
from stylekit.metrics.embedders import load_style_model_or_exit
from stylekit.metrics.style import WEIGHTS_NAME
from stylekit.nets.stylegan2.networks import Generator
from stylekit.train.distributed import broadcast_object, distributed_job
from stylekit.train.shares import on_main

DIRECTIONS_NPZ = "directions.npz"
SHEET = "sheet.png"
EDITED = "edited.npz"
RESULT_JSON = "directions.json"
MAX_SHEET_CELLS = 4096  # directions x seeds x strengths on one sheet: more is a typo (and gigapixels)
HELD_OUT_MIN = 8  # held-out latents scored along the strengths (classifier): at least this many

Scorer = Callable[[torch.Tensor], torch.Tensor]  # images [N, 3, H, W] in [0, 1] -> style probability [N]


@dataclass
class Directions:
    """Unit directions in W and what they act on (the contents of directions.npz)."""

    vectors: torch.Tensor  # [k, w_dim] float32, unit rows
    layers: list[int]
    method: str
    network: str
    eigenvalues: list[float] = field(default_factory=list)  # sefa: descending
    accuracy: float | None = None  # classifier: boundary accuracy on held-out latents
    style: str | None = None  # classifier: the style the direction points to


@dataclass
class DirectionsResult:
    out: str
    method: str
    layers: list[int]
    directions: list[dict[str, Any]]  # per direction: index, and eigenvalue (sefa) or accuracy (classifier)
    strengths: list[float]
    files: dict[str, str]
    probability: list[dict[str, float]] | None = None  # classifier: mean style probability per strength, held-out latents
    held_out: int = 0
    style: str | None = None
    up_to_date: bool = False
    standins: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------------------------------------------
# SeFa


def sefa(G: Generator, layers: list[int], num: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The top `num` eigenvectors [num, w_dim] of A^T A (A: the stacked affine weights reading `layers`), and
    their eigenvalues, descending."""
    by_layer = G.synthesis.style_affines()
    with torch.no_grad():
        A = torch.cat([fc.weight.float() * fc.weight_gain for i in layers for fc in by_layer[i]])
        values, vectors = torch.linalg.eigh((A.T @ A).double())  # ascending; symmetric, so eigh
    order = torch.argsort(values, descending=True)[:num]
    return vectors[:, order].T.float().cpu().contiguous(), values[order].float().cpu()


# ----------------------------------------------------------------------------------------------------------------
# Classifier boundary


def edit(ws: torch.Tensor, direction: torch.Tensor, layers: list[int], strength: float) -> torch.Tensor:
    """ws [N, num_ws, w_dim] moved by strength * direction on `layers` only."""
    out = ws.clone()
    out[:, layers] += strength * direction.to(ws.device, ws.dtype)
    return out


def score_ws(G: Generator, ws: torch.Tensor, score: Scorer, batch: int, amp: bool) -> torch.Tensor:
    """Style probability [N] (CPU) of the images of ws, generated with constant noise."""
    probs = [score(to_unit(synthesize(G, ws[i : i + batch], "const", None, batch, amp))).float().cpu()
             for i in range(0, len(ws), batch)]
    return torch.cat(probs)


def fit_boundary(x: torch.Tensor, labels: torch.Tensor, steps: int = 200) -> tuple[torch.Tensor, float]:
    """Logistic regression (L-BFGS, weak L2) of labels {0, 1} on x [N, D]: the weight vector and bias in x's
    coordinates. A few lines of torch because scikit-learn is not a dependency of stylekit."""
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    xs = (x - mean) / std
    weight = torch.zeros(x.shape[1], device=x.device, requires_grad=True)
    bias = torch.zeros((), device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xs @ weight + bias, labels) + 1e-3 * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    w = weight.detach() / std  # back to x's coordinates: logit = w . x + b
    return w, float(bias.detach() - (w * mean).sum())


def classifier_direction(G: Generator, ws: torch.Tensor, held: torch.Tensor, score: Scorer, fraction: float,
                         batch: int = 8, amp: bool = False) -> tuple[torch.Tensor, float]:
    """The unit normal [w_dim] of a linear boundary in W between the top and the bottom `fraction` of `ws` by style
    probability (pointing to the style), and its accuracy on `held` (labelled by the training median)."""
    probs = score_ws(G, ws, score, batch, amp)
    n = max(1, int(len(ws) * fraction))
    order = torch.argsort(probs)
    chosen = torch.cat([order[:n], order[-n:]])
    labels = torch.cat([torch.zeros(n, device="cpu"), torch.ones(n, device="cpu")])
    x = ws[:, 0]  # seeds give one w per image (every layer holds it)
    weight, bias = fit_boundary(x[chosen], labels)
    norm = float(weight.norm())
    if norm == 0.0:
        raise BadInput("the style model scores every sampled image the same: no boundary to fit",
                       hint="use more --samples, or a style model that tells these images apart")
    held_probs = score_ws(G, held, score, batch, amp)
    accuracy = float(((held[:, 0] @ weight + bias > 0) == (held_probs > probs.median())).float().mean())
    return weight / norm, accuracy


def probability_along(G: Generator, ws: torch.Tensor, direction: torch.Tensor, layers: list[int],
                      strengths: list[float], score: Scorer, batch: int = 8, amp: bool = False) -> list[dict[str, float]]:
    """Mean style probability of the images of `ws` edited at each strength."""
    return [{"strength": s, "mean": round(float(score_ws(G, edit(ws, direction, layers, s), score, batch, amp).mean()), 6)}
            for s in strengths]


def style_scorer(model: Any, style: str) -> Scorer:
    """Probability of `style` under a loaded StyleModel (exit 2 naming its classes when it has none such)."""
    model.require_head()
    if style not in model.classes:
        raise BadInput(f"--style {style}: the style model has no such class", hint=f"its classes: {', '.join(model.classes)}")
    index = model.classes.index(style)
    return lambda images: model.classify(images).softmax(dim=1)[:, index]


# ----------------------------------------------------------------------------------------------------------------
# directions.npz


def save_directions(path: Path, d: Directions) -> Path:
    payload: dict[str, Any] = {"directions": d.vectors.numpy().astype(np.float32), "layers": np.array(d.layers, np.int64),
                               "method": np.array(d.method), "network": np.array(d.network)}
    if d.eigenvalues:
        payload["eigenvalues"] = np.array(d.eigenvalues, np.float32)
    if d.accuracy is not None:
        payload["accuracy"] = np.array(d.accuracy, np.float32)
    if d.style is not None:
        payload["style"] = np.array(d.style)
    buf = io.BytesIO()
    np.savez(buf, **payload)
    return write_bytes_atomic(path, buf.getvalue())


def load_directions(path: str | os.PathLike[str], G: Generator) -> Directions:
    """Read a directions.npz (no pickles) and check it fits G."""
    path = Path(path)
    hint = "pass the directions.npz a `stylekit directions` run wrote"
    try:
        with open_regular(path, "directions file") as fh, np.load(fh, allow_pickle=False) as data:
            vectors = np.asarray(data["directions"], np.float32)
            layers = [int(i) for i in np.asarray(data["layers"]).reshape(-1)]
            d = Directions(torch.from_numpy(vectors.copy()), layers, str(data["method"]), str(data["network"]),
                           [float(v) for v in data["eigenvalues"]] if "eigenvalues" in data.files else [],
                           float(data["accuracy"]) if "accuracy" in data.files else None,
                           str(data["style"]) if "style" in data.files else None)
    except FileNotFoundError:
        raise BadInput(f"--directions {path} does not exist", hint=hint) from None
    except KeyError as exc:
        raise BadInput(f"--directions {path}: not a directions file (no {exc} array)", hint=hint) from None
    except (OSError, ValueError):  # numpy's text would suggest loading pickled data: never for a file of unknown origin
        raise BadInput(f"--directions {path}: not a directions file (not an .npz of arrays)", hint=hint) from None
    if vectors.ndim != 2 or vectors.shape[1] != G.w_dim or not len(vectors):
        raise BadInput(f"--directions {path}: directions have shape {list(vectors.shape)}, the network needs [k, {G.w_dim}]",
                       hint="use directions found for this network")
    check_layers(G, layers, "--directions " + str(path))
    return d


def default_layers(G: Generator, method: Method) -> list[int]:
    """Every w layer; for SeFa only those a style affine reads (StyleGAN3's ws[0] places its Fourier input, which
    the factorisation does not see, so its edits must not move it)."""
    affines = G.synthesis.style_affines()
    return [i for i in range(G.num_ws) if method is not Method.sefa or affines[i]]


def check_layers(G: Generator, layers: list[int], option: str = "--layers") -> None:
    bad = [i for i in layers if not 0 <= i < G.num_ws]
    if bad or not layers:
        raise BadInput(f"{option}: layers {bad or '(none)'} are not layers of this network",
                       hint=f"the network has layers 0..{G.num_ws - 1}")


# ----------------------------------------------------------------------------------------------------------------
# The command


def _options(cfg: DirectionsConfig, network_id: str, inputs: dict[str, str]) -> dict[str, object]:
    """What shapes the outputs (the rerun recipe)."""
    doc = cfg.to_dict()
    for key in ("out", "device", "batch", "fresh"):
        doc.pop(key)
    return {**doc, "network": network_id, **inputs}


def sample_seeds(seed: int, count: int) -> list[int]:
    """`count` distinct z seeds drawn from --seed (the first --samples fit the boundary, the rest are held out)."""
    rng = np.random.RandomState(seed)
    out: list[int] = []
    seen: set[int] = set()
    while len(out) < count:
        for s in rng.randint(0, 2**32 - 1, size=count - len(out), dtype=np.int64).tolist():
            if s not in seen:
                seen.add(s)
                out.append(s)
    return out


def run_directions(cfg: DirectionsConfig) -> DirectionsResult:
    """Find (or read) directions, then write directions.npz, sheet.png, edited.npz and directions.json.

    Under torchrun rank 0 does the work on its GPU while the others wait (an error there ends every rank
    with its exit code): SeFa is one eigendecomposition, and the classifier method's scoring pass is not
    split over ranks (docs/directions.md)."""
    with distributed_job(cfg.device) as dist:
        return broadcast_object(on_main(lambda: _run_directions(cfg, dist.device), dist), dist)


def _run_directions(cfg: DirectionsConfig, device: torch.device) -> DirectionsResult:
    start = time.monotonic()
    out = Path(cfg.out)
    refuse_out_overlap(out, [Input("--network", cfg.network), Input("--latents", cfg.latents),
                             Input("--directions", cfg.directions), Input("--style-model", cfg.style_model)])
    loaded, label = load_generator(cfg.network, device)
    G = loaded.generator
    # Every check before --out is created: layers, files, the style model and its class.
    saved = load_directions(cfg.directions, G) if cfg.directions is not None else None
    layers = saved.layers if saved is not None else list(cfg.layers) if cfg.layers is not None else default_layers(G, cfg.method)
    check_layers(G, layers)
    if saved is None and cfg.method is Method.sefa and not any(G.synthesis.style_affines()[i] for i in layers):
        raise BadInput(f"--layers {','.join(map(str, layers))}: no style affine reads these layers (a StyleGAN3 network's layer 0 "
                       "is its Fourier input, placed by w, not modulated by it)", hint=f"e.g. --layers 1-{G.num_ws - 1}")
    if saved is None and cfg.method is Method.sefa and cfg.kept > G.w_dim:
        raise BadInput(f"--num {cfg.kept}: SeFa finds at most w_dim = {G.w_dim} directions in this network",
                       hint=f"use --num {G.w_dim} or fewer")
    k = len(saved.vectors) if saved is not None else 1 if cfg.method is Method.classifier else cfg.kept
    if cfg.latents is not None:
        ws = load_latents(cfg.latents, G.num_ws, G.w_dim)
        row_names = [f"latent {i}" for i in range(len(ws))]
    else:
        ws = map_seeds(G, list(cfg.sheet_seeds), cfg.trunc, None, cfg.class_idx)
        row_names = [f"seed {s}" for s in cfg.sheet_seeds]
    cells = k * len(ws) * len(cfg.strengths)
    if cells > MAX_SHEET_CELLS:
        raise BadInput(f"the sheet would hold {cells:,} images (directions x latents x strengths); at most {MAX_SHEET_CELLS:,}",
                       hint="use fewer --seeds, --strengths or --num")
    scorer, model_id = None, ""
    if saved is None and cfg.method is Method.classifier:
        assert cfg.style_model is not None and cfg.style is not None  # DirectionsConfig.check
        model = load_style_model_or_exit(cfg.style_model, device)
        scorer = style_scorer(model, cfg.style)
        model_id = file_digest(Path(model.folder) / WEIGHTS_NAME) if model.folder else cfg.style_model
    network_id = network_identity(cfg.network, loaded.source)
    inputs = {"latents": file_digest(cfg.latents) if cfg.latents else "", "style_model": model_id,
              "directions": file_digest(cfg.directions) if cfg.directions else ""}
    standins = [label] if label else []
    with claim_out(out, "directions", _options(cfg, network_id, inputs), cfg.fresh) as claim:
        warn_standins(standins)
        if claim.up_to_date:
            get_console().log(f"directions: {out} is up to date (same options; --fresh redoes it)")
            doc = json.loads((out / RESULT_JSON).read_text(encoding="utf-8"))
            return DirectionsResult(**{**doc, "up_to_date": True, "seconds": round(time.monotonic() - start, 3)})
        amp = check_amp(cfg.amp, device)
        found, probability, held_count = (saved, None, 0) if saved is not None else \
            _find(cfg, G, layers, k, scorer, network_id, amp)
        files = _write_outputs(G, found, ws, row_names, list(cfg.strengths), out, cfg.batch, amp)
        described = [{"index": i, **({"eigenvalue": round(found.eigenvalues[i], 6)} if found.eigenvalues else {}),
                      **({"accuracy": round(found.accuracy, 6)} if found.accuracy is not None else {})}
                     for i in range(len(found.vectors))]
        result = DirectionsResult(out=str(out), method=found.method, layers=found.layers, directions=described,
                                  strengths=list(cfg.strengths), files=files, probability=probability, held_out=held_count,
                                  style=found.style, standins=standins)
        files["result"] = str(out / RESULT_JSON)
        write_json_atomic(out / RESULT_JSON, {**result.to_dict(), "seconds": 0.0})
        claim.finish(list(files.values()))
    result.seconds = round(time.monotonic() - start, 3)
    return result


def _find(cfg: DirectionsConfig, G: Generator, layers: list[int], k: int, scorer: Scorer | None, network_id: str,
          amp: bool) -> tuple[Directions, list[dict[str, float]] | None, int]:
    """New directions (SeFa, or the classifier boundary when `scorer` is given), with the classifier's mean
    probability along the strengths on held-out latents and their count."""
    if scorer is None:
        vectors, values = sefa(G, layers, k)
        return Directions(vectors, layers, str(Method.sefa), network_id, eigenvalues=[float(v) for v in values]), None, 0
    held_count = max(HELD_OUT_MIN, cfg.samples // 4)
    drawn = sample_seeds(cfg.seed, cfg.samples + held_count)
    get_console().log(f"directions: scoring {cfg.samples} + {held_count} held-out images for style {cfg.style}")
    train = map_seeds(G, drawn[: cfg.samples], cfg.trunc, None, cfg.class_idx)
    held = map_seeds(G, drawn[cfg.samples :], cfg.trunc, None, cfg.class_idx)
    vector, accuracy = classifier_direction(G, train, held, scorer, cfg.fraction, cfg.batch, amp)
    found = Directions(vector[None], layers, str(Method.classifier), network_id, accuracy=accuracy, style=cfg.style)
    return found, probability_along(G, held, vector, layers, list(cfg.strengths), scorer, cfg.batch, amp), held_count


def _write_outputs(G: Generator, found: Directions, ws: torch.Tensor, row_names: list[str], strengths: list[float],
                   out: Path, batch: int, amp: bool) -> dict[str, str]:
    """directions.npz, the edited latents (edited.npz) and the sheet: one row per (direction, latent), one column
    per strength."""
    edited = torch.stack([edit(ws, vector, found.layers, s) for vector in found.vectors for s in strengths])
    k, n, S = len(found.vectors), len(ws), len(strengths)
    edited = edited.view(k, S, n, G.num_ws, G.w_dim).transpose(1, 2).reshape(k * n * S, G.num_ws, G.w_dim)
    images = to_unit(synthesize(G, edited, "const", None, batch, amp))
    rows = [list(images[r * S : (r + 1) * S]) for r in range(k * n)]
    labels = [f"d{d} {name}" for d in range(k) for name in row_names]
    paths = {"directions": save_directions(out / DIRECTIONS_NPZ, found)}
    paths["edited"] = save_latents(out / EDITED, edited, direction=np.repeat(np.arange(k), n * S),
                                   strength=np.tile(np.array(strengths, np.float32), k * n), network=np.array(found.network))
    paths["sheet"] = save_labelled_grid(out / SHEET, rows, columns=[f"{s:+g}" for s in strengths], row_labels=labels)
    mark_composite(paths["sheet"])
    return {key: str(p) for key, p in paths.items()}
