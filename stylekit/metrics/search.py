"""Style search over image collections: `classify` (top-k styles per image) and `similar` (nearest
images by style), both through the per-image feature cache.

- classify: a style model's classifier logits per image (cached under the model file's identity),
  softmax, top-k.
- similar: embeddings of the collection (the "index": per-image rows of the feature cache, so a
  second query over an unchanged collection embeds nothing) and of the queries, then exact cosine
  top-k by chunked matmul (`retrieval.nearest_neighbours`, the function train-classifier's
  retrieval metrics use). When queries and collection sit in class folders, mAP@k and Recall@1 are
  reported through `retrieval.neighbour_metrics`, the same code as train-classifier's numbers.

Inputs (`open_inputs`): folders (recursive), .zip files, image files, and text files listing one
path per line (relative to the list; `#` comments). Listed paths that do not exist and undecodable
images are skipped and reported, never fatal on their own.

Under torchrun (`distributed_job`): every rank loads the model on its own device; rank 0 runs the checks
on --out and lists the inputs, and every rank gets that listing (`broadcast_object`), so the ranks index
one list and agree on every check's outcome (`agree`: a failure on one rank ends every rank with its exit
code). The features (and the index) come from the sharded `extract_features`; `similar` shards its search
over the query rows. Only rank 0 locks --out and writes into it.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from stylekit.configs.search import ClassifyConfig, SimilarConfig
from stylekit.data.images import SkippedFile, mark_composite, resize_square
from stylekit.data.imageset import ImageItem, ImageSet, decode_item, open_image_set
from stylekit.errors import BadImage, BadInput
from stylekit.io.atomic import save_image_atomic, write_text_atomic
from stylekit.io.console import get_console
from stylekit.io.rundir import LOCK_NAME, DirLock, ensure_writable_dir
from stylekit.metrics.embedders import gram_embedder, load_style_model_or_exit, style_embedder, style_logits
from stylekit.metrics.features import FeatureExtractor, FeatureResult, clip_extractor, extract_features
from stylekit.metrics.gram import load_gram_vgg
from stylekit.metrics.retrieval import nearest_neighbours, neighbour_count, neighbour_metrics
from stylekit.nets.clip import load_clip
from stylekit.standins import is_random, label
from stylekit.train.distributed import (
    DistInfo,
    agree,
    broadcast_object,
    distributed_job,
    gather_lists,
    gather_rows,
    shard,
)

LIST_SUFFIXES = (".txt", ".lst")
SHEET_TILE = 128
SHEET_MAX_ROWS = 64
SIMILAR_JSON = "similar.json"
CONTACT_SHEET = "contact_sheet.png"


# ----------------------------------------------------------------------------------------------
# Inputs

Inputs = tuple[ImageSet, list[SkippedFile]]  # the images found, and the list entries skipped


def _display(item: ImageItem) -> str:
    return item.file if item.member is None else f"{item.file}::{item.member}"


def _read_list(path: Path, skipped: list[SkippedFile]) -> list[ImageSet]:
    """The entries of a file list. Image files take a fast path (one stat, one resolve: a 100k list is
    read as often as the index is queried); folders and zips listed go through `open_image_set`.
    An image's `rel` is its path below the list's folder when it lies there (so class folders label it)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read the file list ({exc})", hint="give a UTF-8 text file with one image path per line") from None
    base = os.path.dirname(os.path.abspath(path))
    real_base = os.path.realpath(base)
    real_dirs: dict[str, str] = {}
    sets, files = [], []
    for line in (raw.strip() for raw in lines):
        if not line or line.startswith("#"):
            continue
        entry = os.path.join(base, os.path.expanduser(line))
        try:
            st = os.lstat(entry)
            if stat.S_ISLNK(st.st_mode):
                st = os.stat(entry)
        except OSError as exc:
            reason = "does not exist" if isinstance(exc, FileNotFoundError) else f"cannot read ({exc.strerror})"
            skipped.append(SkippedFile(entry, f"listed in {path.name} but {reason}"))
            continue
        if not stat.S_ISREG(st.st_mode) or entry.lower().endswith(".zip"):
            sets.append(open_image_set(entry))
            continue
        # The resolved path (the cache identity) without a realpath per file: a file's real path is its
        # folder's real path + its name unless the file itself is a link.
        folder, name = os.path.split(os.path.normpath(entry))
        if folder not in real_dirs:
            real_dirs[folder] = os.path.realpath(folder)
        real = os.path.realpath(entry) if os.path.islink(entry) else os.path.join(real_dirs[folder], name)
        rel = real[len(real_base) + 1 :] if real.startswith(real_base + os.sep) else name
        files.append(ImageItem(real, st.st_size, st.st_mtime_ns, rel.replace(os.sep, "/"), entry))
    return [ImageSet(str(path), files), *sets]


def open_inputs(sources: Sequence[str | Path], what: str = "input") -> Inputs:
    """One ImageSet from folders, zips, image files and file lists (duplicates once), plus skipped list entries."""
    if not sources:
        raise BadInput(f"no {what} given", hint="give folders, .zip files, images or a .txt list of images")
    skipped: list[SkippedFile] = []
    items: dict[str, ImageItem] = {}
    for source in sources:
        path = Path(source).expanduser()
        if not path.exists():
            raise BadInput(f"{what} {source} does not exist", hint="give folders, .zip files, images or a .txt list of images")
        sets = _read_list(path, skipped) if path.is_file() and path.suffix.lower() in LIST_SUFFIXES else [open_image_set(path)]
        for image_set in sets:
            for item in image_set.items:
                items.setdefault(item.key_path, item)
    return ImageSet(", ".join(str(s) for s in sources), list(items.values())), skipped


def _features(image_set: ImageSet, extractor: FeatureExtractor, cfg: ClassifyConfig | SimilarConfig, what: str,
              dist: DistInfo) -> FeatureResult:
    cache: bool | str = (cfg.cache_dir or True) if cfg.cache else False
    return extract_features(image_set, extractor, cache=cache, batch_size=cfg.batch, workers=cfg.workers or 0,
                            description=what, dist=dist)


def _skipped(listed: list[SkippedFile], result: FeatureResult) -> list[dict[str, str]]:
    return [{"path": s.path, "reason": s.reason} for s in [*listed, *result.report.skipped]]


def _refuse_rerun(result: Path, fresh: bool) -> None:
    """The rerun rule: results an earlier run left are replaced only with --fresh (never silently)."""
    if result.exists() and not fresh:
        raise BadInput(f"--out already holds an earlier result: {result}",
                       hint="pass --fresh to replace it, or choose another --out")


@contextmanager
def _locked_folder(out: Path) -> Iterator[None]:
    """--out created and locked (exit 75 while another run holds it); a folder made here is removed again
    when the run fails before writing into it."""

    created = not out.exists()
    ensure_writable_dir(out)
    lock = DirLock(out)
    try:
        lock.acquire()
        yield
    except BaseException:
        lock.release()
        if created and {p.name for p in out.iterdir()} <= {LOCK_NAME}:
            shutil.rmtree(out, ignore_errors=True)
        raise
    lock.release()


# ----------------------------------------------------------------------------------------------
# classify


@dataclass
class ClassifyResult:
    model: str
    classes: list[str]
    k: int
    images: list[dict[str, Any]]
    skipped: list[dict[str, str]]
    features: dict[str, Any]
    out: str | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def classify_images(cfg: ClassifyConfig) -> ClassifyResult:
    """Top-k styles (softmax probabilities of the style classifier) of every readable input image."""

    start = time.perf_counter()
    with distributed_job(cfg.device) as dist:
        model, inputs = agree(lambda: _classify_setup(cfg, dist), dist)
        image_set, listed = broadcast_object(inputs, dist)
        result = _features(image_set, style_logits(model), cfg, "classify", dist)
        skipped = _skipped(listed, result)
        if not result.items:
            raise BadInput(f"none of the {len(image_set)} images in {image_set.source} is readable",
                           hint="; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:3]))
        # Softmax and top-k on every rank over the gathered logits: [images x styles] values, nothing
        # beside the network that made them, so sharding them would only add a collective.
        probs = torch.from_numpy(result.features).softmax(dim=1)
        k = min(cfg.k, probs.shape[1])
        top_p, top_i = probs.topk(k, dim=1)
        rows = [{"path": _display(item), "top": [{"style": model.classes[c], "probability": round(float(p), 6)}
                                                 for p, c in zip(ps.tolist(), cs.tolist(), strict=True)]}
                for item, ps, cs in zip(result.items, top_p, top_i, strict=True)]
        for s in skipped:
            get_console().warn(f"skipped {s['path']}: {s['reason']}")
        if cfg.out is not None:
            out = cfg.out
            agree(lambda: write_classify_csv(out, rows, k) if dist.is_main else None, dist)
    return ClassifyResult(model=str(cfg.style_model), classes=model.classes, k=k, images=rows, skipped=skipped,
                          features=result.stats(), out=str(cfg.out) if cfg.out else None,
                          seconds=round(time.perf_counter() - start, 3))


def _classify_setup(cfg: ClassifyConfig, dist: DistInfo) -> tuple[Any, Inputs | None]:
    """The checks before any decoding, in order, and the model on this rank's device. Rank 0 checks --out
    and lists the images (None elsewhere): one listing, and one writer probing --out's folder."""

    if dist.is_main and cfg.out is not None:
        if cfg.out.is_dir():
            raise BadInput(f"--out {cfg.out} is a folder", hint="give a file name for the CSV, e.g. --out styles.csv")
        _refuse_rerun(cfg.out, cfg.fresh)
    model = load_style_model_or_exit(cfg.style_model, dist.device)
    model.require_head()  # before any decoding
    if not dist.is_main:
        return model, None
    image_set, listed = open_inputs(cfg.images, "image input")
    if len(image_set) == 0:
        raise BadInput(f"no images found in {image_set.source}", hint="give folders, .zip files, images or a .txt list of images")
    if cfg.out is not None:
        from stylekit.io.rundir import ensure_writable_dir

        ensure_writable_dir(cfg.out.parent)
    return model, (image_set, listed)


def write_classify_csv(path: Path, rows: list[dict[str, Any]], k: int) -> Path:
    """One row per image: path, style_1, p_1, ..., style_k, p_k (atomically written)."""


    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["path", *[f"{col}_{r}" for r in range(1, k + 1) for col in ("style", "p")]])
    for row in rows:
        writer.writerow([row["path"], *[v for t in row["top"] for v in (t["style"], f"{t['probability']:.6f}")]])
    return write_text_atomic(path, buf.getvalue())


# ----------------------------------------------------------------------------------------------
# similar


def _style(cfg: SimilarConfig, device: torch.device) -> FeatureExtractor:

    assert cfg.style_model is not None
    return style_embedder(load_style_model_or_exit(cfg.style_model, device), cfg.size)


def _gram(cfg: SimilarConfig, device: torch.device) -> FeatureExtractor:

    return gram_embedder(load_gram_vgg(cfg.vgg_weights, device), cfg.vgg_weights, cfg.size)


def _standin(cfg: SimilarConfig) -> str | None:
    """The stand-in label when the embedder runs on random-init weights (--vgg-weights/--clip-weights random)."""
    if cfg.embedder == "gram" and is_random(cfg.vgg_weights):
        return label("--vgg-weights random")
    if cfg.embedder == "clip" and is_random(cfg.clip_weights):
        return label("--clip-weights random")
    return None


def _clip(cfg: SimilarConfig, device: torch.device) -> FeatureExtractor:

    return clip_extractor(load_clip(cfg.clip_model, cfg.clip_weights, device))


EMBEDDERS: dict[str, Callable[[SimilarConfig, torch.device], FeatureExtractor]] = {"style": _style, "gram": _gram, "clip": _clip}


@dataclass
class SimilarResult:
    embedder: str
    k: int
    queries: list[dict[str, Any]]  # {"path", "label", "neighbours": [{"path", "label", "score"}]}
    collection: dict[str, Any]
    skipped: dict[str, list[dict[str, str]]]
    features: dict[str, dict[str, Any]]
    metrics: dict[str, float] | None
    out: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    standin: str | None = None  # set when the embedder is a random-init stand-in (not meaningful)
    searched_per_rank: list[int] = field(default_factory=list)  # under torchrun: query rows each rank searched

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _label_ids(q_items: list[ImageItem], db_items: list[ImageItem]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Integer labels from class folders when every query and collection image has one, else None."""
    labels = [it.label for it in [*q_items, *db_items]]
    if any(label is None for label in labels):
        return None
    vocab = {name: i for i, name in enumerate(sorted(set(labels)))}  # type: ignore[arg-type]
    q = torch.tensor([vocab[it.label] for it in q_items], dtype=torch.long, device="cpu")  # type: ignore[index]
    db = torch.tensor([vocab[it.label] for it in db_items], dtype=torch.long, device="cpu")  # type: ignore[index]
    return q, db


def similar_images(cfg: SimilarConfig) -> SimilarResult:
    """Nearest collection images by style for each query (see the module docstring).

    Every check (inputs exist, models located, --out usable and not holding an earlier result) runs before
    --out is created and locked; the lock is taken before anything is printed. Under torchrun rank 0 alone
    locks --out (another rank would meet rank 0's lock), and its Busy ends every rank with exit 75."""
    with distributed_job(cfg.device) as dist:
        extractor, inputs = agree(lambda: _similar_setup(cfg, dist), dist)
        queries, collection = broadcast_object(inputs, dist)
        with ExitStack() as held:
            if cfg.out is not None:
                out = cfg.out
                agree(lambda: held.enter_context(_locked_folder(out)) if dist.is_main else None, dist)
            return _search(cfg, extractor, dist, queries, collection)



def _similar_setup(cfg: SimilarConfig, dist: DistInfo) -> tuple[FeatureExtractor, tuple[Inputs, Inputs] | None]:
    """The checks before any decoding, in order, and the embedder on this rank's device. Rank 0 checks --out
    and lists queries and collection (None elsewhere)."""
    if dist.is_main and cfg.out is not None:
        if cfg.out.exists() and not cfg.out.is_dir():
            raise BadInput(f"--out {cfg.out} is a file", hint="give a folder for similar.json and contact_sheet.png")
        _refuse_rerun(cfg.out / SIMILAR_JSON, cfg.fresh)
    extractor = EMBEDDERS[cfg.embedder](cfg, dist.device)  # missing models fail before any decoding
    if not dist.is_main:
        return extractor, None
    q_set, q_listed = open_inputs(cfg.queries, "query")
    db_set, db_listed = open_inputs(cfg.collection, "collection")
    if len(db_set) == 0:
        raise BadInput(f"the collection {db_set.source} holds no images", hint="give --in a folder, .zip or .txt list of images")
    if len(q_set) == 0:
        raise BadInput(f"no query images found in {q_set.source}", hint="give image files, folders, .zip files or a .txt list")
    return extractor, ((q_set, q_listed), (db_set, db_listed))


def _nearest(q_emb: torch.Tensor, db_emb: torch.Tensor, exclude: torch.Tensor, cfg: SimilarConfig,
             dist: DistInfo) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Top-k (scores, indices) of every query, and the query rows each rank searched.

    Each rank searches its block of query rows (`shard`) and the blocks are gathered in rank order,
    rather than every rank searching all queries: the search is queries x collection dot products
    (all-vs-all over 100k images: 1e10 of them), work that drops to 1/N per rank for one gather of
    [queries x k] rows. A query's neighbours depend on its own row and the whole collection only, so the
    gathered blocks are the one-process result. k is fixed from every query's exclusions, so that the
    blocks (one with an excluded row, one without) return as many columns as one process does."""

    k = neighbour_count(cfg.k, db_emb.shape[0], exclude)
    mine = shard(q_emb.shape[0], dist)
    block = slice(mine.start, mine.stop)
    scores, idx = nearest_neighbours(q_emb[block], db_emb, k, chunk=256, db_chunk=cfg.chunk, exclude=exclude[block])
    scores = torch.from_numpy(gather_rows(scores.cpu().numpy(), dist))
    idx = torch.from_numpy(gather_rows(idx.cpu().numpy(), dist))
    return scores, idx, gather_lists([len(mine)], dist) if dist.distributed else []


def _search(cfg: SimilarConfig, extractor: FeatureExtractor, dist: DistInfo, queries: Inputs, collection: Inputs) -> SimilarResult:
    """Embed, search, and write --out (its checks done and, on rank 0, its folder locked by the caller)."""

    start = time.perf_counter()
    (q_set, q_listed), (db_set, db_listed) = queries, collection
    standin = _standin(cfg)
    if standin:
        get_console().warn(standin)
    db = _features(db_set, extractor, cfg, "index (collection)", dist)
    if not db.items:
        raise BadInput(f"none of the {len(db_set)} collection images in {db_set.source} is readable",
                       hint="; ".join(f"{s['path']}: {s['reason']}" for s in _skipped(db_listed, db)[:3]))
    q = _features(q_set, extractor, cfg, "queries", dist)
    q_skipped = _skipped(q_listed, q)
    if not q.items:
        raise BadInput(f"no readable query image in {q_set.source}",
                       hint="; ".join(f"{s['path']}: {s['reason']}" for s in q_skipped[:3]))
    for s in q_skipped:
        get_console().warn(f"skipped query {s['path']}: {s['reason']}")

    q_emb = torch.nn.functional.normalize(torch.from_numpy(q.features), dim=1)
    db_emb = torch.nn.functional.normalize(torch.from_numpy(db.features), dim=1).to(dist.device)
    position = {it.key_path: i for i, it in enumerate(db.items)}
    exclude = torch.tensor([position.get(it.key_path, -1) for it in q.items], dtype=torch.long, device="cpu")
    scores, idx, searched = _nearest(q_emb, db_emb, exclude, cfg, dist)
    rows = []
    for qi, item in enumerate(q.items):
        neighbours = [{"path": _display(db.items[j]), "label": db.items[j].label, "score": round(float(s), 6)}
                      for s, j in zip(scores[qi].tolist(), idx[qi].tolist(), strict=True)]
        rows.append({"path": _display(item), "label": item.label, "neighbours": neighbours})
    labels = _label_ids(q.items, db.items)
    metrics = neighbour_metrics(idx, labels[0], labels[1], cfg.k, exclude) if labels is not None else None
    result = SimilarResult(
        embedder=extractor.name, k=int(idx.shape[1]), queries=rows,
        collection={"source": db_set.source, "n": len(db_set), "used": len(db.items)},
        skipped={"queries": q_skipped, "collection": _skipped(db_listed, db)},
        features={"collection": db.stats(), "queries": q.stats()}, metrics=metrics, standin=standin,
        searched_per_rank=searched,
    )
    if cfg.out is not None:
        out = cfg.out
        result.out = {"json": str(out / SIMILAR_JSON), "contact_sheet": str(out / CONTACT_SHEET)}

        def write() -> None:
            from stylekit.io.atomic import write_json_atomic

            contact_sheet(q.items, db.items, idx, scores, out / CONTACT_SHEET)
            result.seconds = round(time.perf_counter() - start, 3)
            write_json_atomic(out / SIMILAR_JSON, result.to_dict())

        agree(lambda: write() if dist.is_main else None, dist)
    result.seconds = round(time.perf_counter() - start, 3)
    return result


# ----------------------------------------------------------------------------------------------
# Contact sheet


def _tile(item: ImageItem, size: int) -> Any:
    from PIL import Image


    try:
        return resize_square(decode_item(item), size)
    except BadImage:  # changed since it was embedded: a grey tile keeps the row aligned
        return Image.new("RGB", (size, size), (128, 128, 128))


def _caption(text: str, width: int, draw: Any, font: Any) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength("..." + text, font=font) > width:
        text = text[1:]
    return "..." + text


def contact_sheet(q_items: list[ImageItem], db_items: list[ImageItem], idx: torch.Tensor, scores: torch.Tensor,
                  path: Path, tile: int = SHEET_TILE, max_rows: int = SHEET_MAX_ROWS) -> Path:
    """One row per query: the query (blue frame), then its neighbours, each captioned (name; cosine)."""
    from PIL import Image, ImageDraw, ImageFont


    rows = min(len(q_items), max_rows)
    if len(q_items) > rows:
        get_console().log(f"contact sheet shows the first {rows} of {len(q_items)} queries (all are in similar.json)")
    cols = 1 + idx.shape[1]
    pad, text_h = 6, 28
    font = ImageFont.load_default()
    sheet = Image.new("RGB", (cols * (tile + pad) + pad, rows * (tile + text_h + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r in range(rows):
        y = pad + r * (tile + text_h + pad)
        cells = [(q_items[r], "query", (40, 90, 220))]
        cells += [(db_items[j], f"{s:.3f}", (160, 160, 160)) for s, j in zip(scores[r].tolist(), idx[r].tolist(), strict=True)]
        for c, (item, second, frame) in enumerate(cells):
            x = pad + c * (tile + pad)
            sheet.paste(_tile(item, tile), (x, y))
            draw.rectangle([x - 2, y - 2, x + tile + 1, y + tile + 1], outline=frame, width=2)
            name = "/".join(item.rel.split("/")[-2:])
            draw.text((x, y + tile + 2), _caption(name, tile, draw, font), fill=(0, 0, 0), font=font)
            draw.text((x, y + tile + 14), second, fill=(0, 0, 0) if c else frame, font=font)
    save_image_atomic(path, sheet)
    mark_composite(path)
    return path

