"""`stylekit prepare SRC OUT`: turn a folder of class folders (or a path,label CSV) into a clean,
same-size, split, manifest-described data set.

Pipeline: discover sources -> (dedupe) -> (cap) -> decode + crop + resize + encode in a process pool
-> stratified seeded split -> write images, manifest.csv and report.json. Output names, order and
splits are fixed before the pool runs and results are consumed in order, so the output is the same
bytes for any --workers. Bad images are skipped with a reason; they never stop the run.
"""

from __future__ import annotations

import csv
import ctypes
import difflib
import hashlib
import json
import multiprocessing
import os
import re
import signal
import sys
import time
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from PIL import Image

from stylekit.checks import check_fits
from stylekit.configs.prepare import PrepareConfig
from stylekit.data import export
from stylekit.data.images import ImageReport, SkippedFile, list_images, load_rgb
from stylekit.data.manifest import (
    MANIFEST_NAME,
    SPLITS,
    ManifestRow,
    manifest_text,
    read_manifest,
    write_manifest,
)
from stylekit.data.split import split_groups, split_keys
from stylekit.errors import BadImage, BadInput
from stylekit.io.atomic import write_json_atomic, write_text_atomic
from stylekit.io.console import get_console
from stylekit.io.paths import Input, refuse_out_overlap
from stylekit.io.rundir import DirLock, ensure_writable_dir
from stylekit.standins import is_random, label

FILTERS = {"lanczos": Image.Resampling.LANCZOS, "box": Image.Resampling.BOX, "bicubic": Image.Resampling.BICUBIC}


def pool_context() -> multiprocessing.context.BaseContext:
    """forkserver where it exists, spawn elsewhere: never plain fork, whose workers would inherit the open
    OUT lock and keep it (and every rerun busy, exit 75) if the parent were killed."""
    return multiprocessing.get_context("forkserver" if sys.platform.startswith("linux") else "spawn")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def resolved_workers(cfg: PrepareConfig) -> int:
    """--workers, else auto: one process per available core (decode, resize and encode are CPU-bound
    and the output is the same for any number); 1 with a `preprocess` (--align), whose torch model
    already uses every core from one process."""
    if cfg.workers is not None:
        return max(1, cfg.workers)
    return 1 if cfg.preprocess is not None else available_cores()


def check_paths(cfg: PrepareConfig) -> None:
    """What the declaration cannot know: the inputs exist, OUT is not inside them, the memory fits."""
    if cfg.out.suffix.lower() == ".zip" and cfg.out.is_dir():
        raise BadInput(f"OUT {cfg.out} ends in .zip but is a folder", hint="give a new .zip path, or an OUT folder name without .zip")
    for name, path in (("SRC", cfg.src), ("--pair-with", cfg.pair_with)):
        if path is not None and not path.exists():
            raise BadInput(f"{name} {path} does not exist", hint="check the path")
    refuse_out_overlap(cfg.out, [Input("SRC", cfg.src, data_folder=True),
                                 Input("--pair-with", cfg.pair_with, data_folder=True)], out_option="OUT")
    if cfg.size is not None:  # an RGB image and its resampled copy per worker, before anything is read
        check_fits(f"--size {cfg.size}", 2 * 3 * cfg.size**2 * resolved_workers(cfg),
                   hint="images are stored at --size x --size; use a smaller --size (e.g. 1024)")


def _earlier_settings(cfg: PrepareConfig) -> dict[str, Any] | None:
    """The settings of the set OUT already holds (its report.json), or None when OUT holds none."""
    if cfg.out.suffix.lower() == ".zip":
        if not cfg.out.is_file():
            return None
        try:
            with zipfile.ZipFile(cfg.out) as zf:
                text = zf.read("report.json").decode()
        except (OSError, KeyError, zipfile.BadZipFile, UnicodeDecodeError):
            return {}
    else:
        path = cfg.out / "report.json"
        if not path.is_file():
            return None
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return {}
    try:
        doc = json.loads(text)
    except ValueError:
        return {}
    return doc.get("settings", {}) if isinstance(doc, dict) else {}


def refuse_other_settings(cfg: PrepareConfig) -> bool:
    """The rerun rule: a rerun with the same settings refreshes OUT (same names, stale files removed); one with
    other settings is refused (exit 2) unless --fresh, so OUT never mixes two sets. True when OUT held a set."""
    earlier = _earlier_settings(cfg)
    if earlier is None or cfg.fresh:
        return earlier is not None
    now = cfg.settings()
    changed = [key for key in now if earlier.get(key) != now[key]]
    if changed:
        was = ", ".join(f"--{k.replace('_', '-')} {_shown(earlier.get(k))}" for k in changed[:3])
        raise BadInput(f"OUT {cfg.out} holds a set prepared with other settings ({was})",
                       hint="add --fresh to replace it, or choose another OUT")
    return True


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value)) or "(none)"
    return "(unknown)" if value is None else str(value)


# ---------------------------------------------------------------------------------------- sources
@dataclass
class Item:
    """One output image: its source (and pair partner), label and output stem."""

    src: Path
    label: str
    pair: Path | None = None
    name: str = ""
    prompt: str = ""


def _label_of(path: Path, root: Path) -> str:
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else ""


def _read_csv_sources(csv_path: Path) -> list[Item]:
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read {csv_path}: {exc}", hint="give a UTF-8 CSV with a path,label header") from None
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in reader.fieldnames or []]
    if "path" not in header:
        raise BadInput(f"{csv_path} has no 'path' column (found: {', '.join(header) or 'nothing'})", hint="first line must be a header such as path,label")
    reader.fieldnames = header
    items = []
    for rec in reader:
        rel = (rec.get("path") or "").strip()
        if not rel:
            continue
        path = Path(rel) if Path(rel).is_absolute() else csv_path.parent / rel
        items.append(Item(path, (rec.get("label") or "").strip(), prompt=rec.get("prompt") or ""))
    return items


def collect_sources(cfg: PrepareConfig, report: ImageReport) -> list[Item]:
    """Candidate items in a stable order; unmatched pair partners go to the report."""
    if cfg.format == "pairs":
        assert cfg.pair_with is not None
        return _collect_pairs(cfg, report)
    src = cfg.src
    if src.is_file() and src.suffix.lower() == ".csv":
        items = _read_csv_sources(src)
    else:
        items = [Item(p, _label_of(p, src) if src.is_dir() else "") for p in list_images(src, report=report)]
    check_excluded(cfg.exclude, {it.label for it in items}, cfg.src)
    items = [it for it in items if it.label not in cfg.exclude]
    if not items:
        raise BadInput(f"no images found in {src}", hint="SRC must hold images in class folders (SRC/<style>/*.png) or be a path,label CSV")
    return items


def check_excluded(excluded: tuple[str, ...], labels: set[str], where: Path) -> None:
    """Every --exclude names a class that exists: a typo never keeps the class it meant (exit 2 with the closest)."""

    for name in excluded:
        if name not in labels:
            near = difflib.get_close_matches(name, sorted(labels), n=1, cutoff=0.5)
            known = ", ".join(sorted(label for label in labels if label)) or "none"
            raise BadInput(f"--exclude {name}: {where} has no class folder '{name}'",
                           hint=f"did you mean '{near[0]}'?" if near else f"class folders: {known}")


def _collect_pairs(cfg: PrepareConfig, report: ImageReport) -> list[Item]:
    assert cfg.pair_with is not None
    a_paths = list_images(cfg.src, report=report)
    b_all = list_images(cfg.pair_with, report=report) if cfg.pair_with.is_dir() else []
    check_excluded(cfg.exclude, {_label_of(p, cfg.pair_with) for p in b_all}, cfg.pair_with)
    b_paths = [p for p in b_all if _label_of(p, cfg.pair_with) not in cfg.exclude]
    if not a_paths:
        raise BadInput(f"no images found in {cfg.src}", hint="SRC holds the A images of the pairs")
    if not b_paths:
        raise BadInput(f"no images found in --pair-with {cfg.pair_with}", hint="--pair-with holds the B images, named like the A images")
    by_stem: dict[str, Path] = {}
    for p in a_paths:
        if p.stem in by_stem:
            report.skip(p, f"another A image is also named '{p.stem}' ({by_stem[p.stem]})")
        else:
            by_stem[p.stem] = p
    items, used = [], set()
    for b in b_paths:
        a = by_stem.get(b.stem)
        if a is None:
            report.skip(b, f"no image named '{b.stem}' in SRC {cfg.src}")
            continue
        used.add(b.stem)
        items.append(Item(a, _label_of(b, cfg.pair_with), pair=b))
    for stem, a in by_stem.items():
        if stem not in used:
            report.skip(a, f"no image named '{stem}' in --pair-with {cfg.pair_with}")
    if not items:
        raise BadInput(f"no A/B pairs: no file names in {cfg.src} match those in {cfg.pair_with}", hint="pairs match by file name without extension")
    return items


def _sha1_file(path: Path) -> str | None:
    try:
        return hashlib.sha1(path.read_bytes()).hexdigest()
    except OSError:
        return None  # unreadable: decoding will report it


def dedupe(items: list[Item], report: ImageReport) -> list[Item]:
    """Keep the first of each exact duplicate (same source bytes, and same partner bytes for pairs)."""
    first: dict[tuple[str | None, ...], Path] = {}
    kept = []
    for it in items:
        key = (_sha1_file(it.src), _sha1_file(it.pair) if it.pair else None)
        if key[0] is None:
            kept.append(it)
        elif key in first:
            report.skip(it.pair or it.src, f"duplicate of {first[key]}")
        else:
            first[key] = it.pair or it.src
            kept.append(it)
    return kept


def cap(items: list[Item], max_images: int) -> list[Item]:
    """At most `max_images`, taken round-robin over labels so every class is represented."""
    if len(items) <= max_images:
        return items
    by_label: dict[str, list[Item]] = defaultdict(list)
    for it in items:
        by_label[it.label].append(it)
    chosen: set[int] = set()
    queues = [list(v) for _, v in sorted(by_label.items())]
    while len(chosen) < max_images:
        for q in queues:
            if q and len(chosen) < max_images:
                chosen.add(id(q.pop(0)))
    return [it for it in items if id(it) in chosen]


def safe_label(label: str) -> str:
    """A label as a folder name: path separators and odd characters become '_'."""
    cleaned = re.sub(r"[^\w.\- ]", "_", label).strip()
    return "_" if label and cleaned in ("", ".", "..") else cleaned


def assign_names(items: list[Item]) -> None:
    """Output stem per item, unique within its label: the source stem, plus a short hash on a clash."""
    taken: dict[str, set[str]] = defaultdict(set)  # per output folder, case-folded
    for it in items:
        base = (it.pair or it.src).stem
        name, folder = base, safe_label(it.label)
        if name.lower() in taken[folder]:
            name = f"{base}-{hashlib.sha1(os.fsencode(it.pair or it.src)).hexdigest()[:8]}"
        taken[folder].add(name.lower())
        it.name = name


def _split_key(path: Path, root: Path) -> str:
    """What the split is keyed on: the path relative to SRC (as train-classifier keys class folders)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


# ---------------------------------------------------------------------------------------- transform
@dataclass(frozen=True)
class Transform:
    size: int | None
    crop: str
    resize_filter: str
    min_size: int
    wide_aspect: tuple[int, int]
    square: bool  # stylegan-zip: non-square results are skipped


def apply_transform(img: Image.Image, t: Transform) -> Image.Image:
    """Crop and resize one decoded image; raise ValueError(reason) to skip it."""
    w, h = img.size
    if min(w, h) < t.min_size:
        raise ValueError(f"smaller than --min-size {t.min_size} ({w}x{h})")
    resample = FILTERS[t.resize_filter]
    if t.crop == "center":  # NVlabs center-crop: the central square, then resize
        side = min(w, h)
        if w != h:  # (a square image is its own crop: no copy)
            left, top = (w - side) // 2, (h - side) // 2
            img = img.crop((left, top, left + side, top + side))
        if t.size is not None and side != t.size:
            img = img.resize((t.size, t.size), resample)
    elif t.crop == "center-wide":  # NVlabs center-crop-wide: a W:H strip on a black square canvas
        assert t.size is not None
        aw, ah = t.wide_aspect
        out_w, out_h = t.size, max(1, round(t.size * ah / aw))
        if w < out_w or round(out_w * h / w) < out_h:
            raise ValueError(f"too small or too wide for --crop center-wide at {out_w}x{out_h} ({w}x{h})")
        crop_h = min(h, round(out_h * w / out_w))
        top = (h - crop_h) // 2
        strip = img.crop((0, top, w, top + crop_h)).resize((out_w, out_h), resample)
        img = Image.new("RGB", (out_w, out_w))
        img.paste(strip, (0, (out_w - out_h) // 2))
    elif t.size is not None:  # none: shorter side to size, aspect kept
        scale = t.size / min(w, h)
        new = (max(1, round(w * scale)), max(1, round(h * scale)))
        if new != (w, h):
            img = img.resize(new, resample)
    if t.square and img.width != img.height:
        raise ValueError(f"not square after --crop {t.crop} ({img.width}x{img.height}); use --crop center for stylegan-zip")
    return img


@dataclass(frozen=True)
class Task:
    """One item for a worker: paths only (what is the same for every item travels once, in `Worker`)."""

    src: str
    pair: str | None
    dest: str | None  # write here (folder/pairs); None: return the PNG bytes (zip)


@dataclass
class Result:
    ok: bool
    reason: str = ""
    bad_path: str = ""
    width: int = 0
    height: int = 0
    sha1: str = ""
    data: bytes | None = None


@dataclass(frozen=True)
class Worker:
    """Decode, transform and encode one item; the same object runs in-process (one worker) and in
    every pool process, so the output bytes do not depend on --workers."""

    transform: Transform
    png_level: int
    preprocess: Callable[[Image.Image], Image.Image] | None = None

    def __call__(self, task: Task) -> Result:
        try:
            img = load_rgb(task.src)
            if self.preprocess is not None:
                img = self.preprocess(img)
            img = apply_transform(img, self.transform)
            if task.pair is not None:
                try:
                    img = export.side_by_side(img, apply_transform(load_rgb(task.pair), self.transform))
                except ValueError as exc:
                    return Result(False, str(exc), task.pair)
        except BadImage as exc:
            return Result(False, exc.reason, exc.path)
        except ValueError as exc:
            return Result(False, str(exc), task.src)
        data = export.encode_png(img, self.png_level)
        if task.dest is not None:
            export.write_file(Path(task.dest), data)
        return Result(True, width=img.width, height=img.height, sha1=hashlib.sha1(data).hexdigest(),
                      data=None if task.dest is not None else data)


_worker: Worker | None = None  # in a pool process: set once by _init_pool_process


def _init_pool_process(worker: Worker, parent: int | None) -> None:
    """Pool process start: keep the Worker, leave Ctrl-C to the parent (which stops the pool), and on
    Linux die with the process that started this one (PR_SET_PDEATHSIG: the run itself under fork, the
    forkserver, which ends with the run, otherwise), so a killed run leaves no orphan processes behind.
    `parent`: the run's pid when forked from it (None otherwise)."""
    global _worker
    _worker = worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
        if parent is not None and os.getppid() != parent:  # the run died before prctl took effect
            os._exit(1)


def _run_task(task: Task) -> Result:
    assert _worker is not None
    return _worker(task)


def start_method(worker: Worker) -> str:
    """How pool processes start. fork where the workers run only PIL code: they start in milliseconds
    with everything imported. The pool is started before OUT's lock is taken, the archive opened or a
    progress thread runs, so no worker holds any of them. A `preprocess` (--align) runs a torch model
    in the workers, and torch (its OpenMP thread pool) is not fork-safe once the parent used it: those
    pools start from forkserver (spawn where there is none)."""
    if worker.preprocess is None and "fork" in multiprocessing.get_all_start_methods():
        return "fork"
    return pool_context().get_start_method()


@contextmanager
def _pool(workers: int, jobs: int, worker: Worker) -> Iterator[ProcessPoolExecutor | None]:
    """The worker pool (None for one worker), its processes started on entry."""
    if workers <= 1 or jobs < 2:
        yield None
        return
    method = start_method(worker)
    pool = ProcessPoolExecutor(max_workers=min(workers, jobs), mp_context=multiprocessing.get_context(method),
                               initializer=_init_pool_process, initargs=(worker, os.getpid() if method == "fork" else None))
    pool.submit(int)  # with fork, the first submit forks every worker: here, before anything is locked or opened
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on an error or Ctrl-C: only the chunks already running finish


def chunk_size(jobs: int, workers: int, size: int | None) -> int:
    """Items per pool round trip: ~16 chunks per worker (so the last chunks balance the load), at most
    64 items, and at most ~32 MiB of returned PNG bytes per chunk for large --size."""
    per_chunk_bytes = 3 * (size or 1024) ** 2
    return max(1, min(64, jobs // (workers * 16), (32 << 20) // per_chunk_bytes))


def _results(pool: ProcessPoolExecutor | None, worker: Worker, tasks: list[Task], chunk: int) -> Iterator[Result]:
    """Results in task order (the order is what makes the output independent of --workers)."""
    if pool is None:
        return map(worker, tasks)
    return pool.map(_run_task, tasks, chunksize=chunk)


# ---------------------------------------------------------------------------------------- report
@dataclass
class PrepareReport:
    out: Path
    format: str
    used: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # label -> split -> n
    splits: dict[str, int] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    candidates: int = 0
    seconds: float = 0.0
    workers: int = 1
    size: int | None = None
    stand_in: str | None = None  # set when a random-init stand-in (--face-detector random) made the images

    @property
    def images_per_s(self) -> float:
        return self.used / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out), "format": self.format, "used": self.used,
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "counts": self.counts, "splits": self.splits, "labels": self.labels,
            "candidates": self.candidates, "size": self.size, "workers": self.workers,
            "seconds": round(self.seconds, 3), "images_per_s": round(self.images_per_s, 1), "stand_in": self.stand_in,
        }


def _old_files(out: Path) -> set[Path]:
    if not (out / MANIFEST_NAME).is_file():
        return set()
    try:
        rows = read_manifest(out)
    except BadInput:
        return set()
    return {out / export.ZIP_NAME if f"{export.ZIP_NAME}/" in r.path.as_posix() else r.path for r in rows}


def prepare(cfg: PrepareConfig) -> PrepareReport:
    """Run the whole pipeline for `cfg`; see the module docstring. Holds OUT's lock throughout."""

    check_paths(cfg)
    start = time.perf_counter()
    report = ImageReport()
    items = collect_sources(cfg, report)
    candidates = len(items) + len(report.skipped)
    refresh = refuse_other_settings(cfg)
    zipped = cfg.format == "stylegan-zip"
    single_zip = zipped and cfg.out.suffix.lower() == ".zip"  # OUT is the archive itself
    home = ensure_writable_dir(cfg.out.parent if single_zip else cfg.out)  # where files and the lock live
    out = cfg.out if single_zip else home
    lock = DirLock(home)
    if single_zip:
        lock.path = home / f".{out.name}.lock"
    transform = Transform(cfg.size, cfg.crop, cfg.resize_filter, cfg.min_size, cfg.wide_aspect, square=zipped)
    worker = Worker(transform, export.ZIP_PNG_LEVEL if zipped else export.FOLDER_PNG_LEVEL, cfg.preprocess)
    workers = resolved_workers(cfg)
    with _pool(workers, len(items), worker) as pool:  # started first: no worker inherits the lock
        lock.acquire()
        try:
            if refresh:
                get_console().log(f"{cfg.out} holds a set prepared with these settings: refreshing it (stale files are removed)")
            if result_stand_in(cfg) is not None:
                get_console().warn(result_stand_in(cfg))
            if cfg.dedupe:
                items = dedupe(items, report)
            if cfg.max_images is not None:
                items = cap(items, cfg.max_images)
            assign_names(items)
            old = set() if single_zip else _old_files(out)
            dests = [None if zipped else out / safe_label(it.label) / f"{it.name}.png" for it in items]
            tasks = [Task(str(it.src), str(it.pair) if it.pair else None, str(d) if d else None)
                     for it, d in zip(items, dests, strict=True)]
            chunk = chunk_size(len(tasks), workers, cfg.size)
            archive_path = out if single_zip else out / export.ZIP_NAME
            archive = export.StyleganZip(archive_path) if zipped else None
            kept: list[tuple[Item, Result, str]] = []  # item, result, path relative to `home`
            try:
                with get_console().progress(len(tasks), f"preparing {len(tasks)} images") as task:
                    for it, dest, res in zip(items, dests, _results(pool, worker, tasks, chunk), strict=True):
                        task.advance()
                        if not res.ok:
                            report.skip(res.bad_path, res.reason)
                        elif archive is not None:
                            assert res.data is not None
                            kept.append((it, res, f"{archive_path.name}/{archive.add(res.data)}"))
                        else:
                            assert dest is not None
                            kept.append((it, res, dest.relative_to(out).as_posix()))
                if not kept:
                    _fail_empty(cfg, None if single_zip else home / "report.json", report, candidates, start, workers)
                root = cfg.src if cfg.src.is_dir() else cfg.src.parent
                if cfg.format == "pairs":
                    splits = split_groups([_split_key(it.src, root) for it, _, _ in kept], cfg.split, cfg.seed)
                else:
                    splits = split_keys([_split_key(it.src, root) for it, _, _ in kept], cfg.split, cfg.seed,
                                        [it.label for it, _, _ in kept])
                rows = [ManifestRow(Path(rel), it.label, split, res.width, res.height, res.sha1, it.prompt)
                        for (it, res, rel), split in zip(kept, splits, strict=True)]
                result = _summarise(cfg, out, rows, report, candidates, workers)
                result.seconds = time.perf_counter() - start
                report_text = json.dumps({**result.to_dict(), **_run_record(cfg)}, indent=2) + "\n"
                if archive is not None:
                    index = {label: i for i, label in enumerate(result.labels)}  # sorted label names -> class ids
                    labels = [[rel.split("/", 1)[1], index[it.label]] for it, _, rel in kept] if all(it.label for it, _, _ in kept) else None
                    extra = {MANIFEST_NAME: manifest_text(home, rows), "report.json": report_text} if single_zip else None
                    archive.close(labels, extra)
                    archive = None
            finally:
                if archive is not None:
                    archive.abort()
            if not single_zip:
                new = {out / export.ZIP_NAME if zipped else out / r.path for r in rows}
                removed = export.remove_stale(out, old, new)
                if removed:
                    get_console().log(f"removed {removed} files left by an earlier run")
                write_text_atomic(out / "report.json", report_text)
                write_manifest(out, rows)
            return result
        finally:
            lock.release()


def _summarise(cfg: PrepareConfig, out: Path, rows: list[ManifestRow], report: ImageReport, candidates: int,
               workers: int) -> PrepareReport:
    splits = SPLITS[: len(cfg.split)]
    result = PrepareReport(out=out, format=cfg.format, used=len(rows), skipped=report.skipped,
                           labels=sorted({r.label for r in rows}), candidates=candidates, workers=workers,
                           size=cfg.size, splits={s: 0 for s in splits}, stand_in=result_stand_in(cfg))
    for r in rows:
        result.counts.setdefault(r.label, {s: 0 for s in splits})[r.split] += 1
        result.splits[r.split] += 1
    return result


def _fail_empty(cfg: PrepareConfig, report_path: Path | None, report: ImageReport, candidates: int, start: float,
                workers: int) -> NoReturn:
    """Nothing decodable: keep the reasons in OUT/report.json (folder outputs), then fail with exit 2."""

    hint = "check the files and --min-size/--crop"
    if report_path is not None:
        result = PrepareReport(out=report_path.parent, format=cfg.format, skipped=report.skipped, candidates=candidates,
                               seconds=time.perf_counter() - start, workers=workers, size=cfg.size)
        write_json_atomic(report_path, {**result.to_dict(), **_run_record(cfg)})
        hint = f"reasons per file are in {report_path}"
    first = f" (first: {report.skipped[0].path}: {report.skipped[0].reason})" if report.skipped else ""
    raise BadInput(f"no usable images in {cfg.src}: all {candidates} candidates were skipped{first}", hint=hint)


def result_stand_in(cfg: PrepareConfig) -> str | None:
    """The stand-in label when --align runs with `--face-detector random`, else None."""

    return label("--face-detector random") if cfg.align is not None and is_random(cfg.face_detector) else None


def _run_record(cfg: PrepareConfig) -> dict[str, Any]:
    """What report.json records about the run: every option, and the settings a rerun compares."""
    return {"config": cfg.to_dict(), "settings": cfg.settings()}
