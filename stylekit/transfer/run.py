"""`run_transfer(cfg)`: one content image or a whole folder, through the method chosen by --method.

Methods live in `METHODS` (name -> factory taking the config and returning a `Stylizer`); adding a
method is one more entry. Batch mode (CONTENT is a folder) writes OUT/<relative path>.png for every
image, skips outputs that already exist (cron re-runs are cheap: nothing is loaded when all exist),
and reports per-file failures instead of stopping; it fails (exit 2) only when no image has an output
(every file failed and none was done before).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from stylekit.data.images import IMAGE_EXTENSIONS, list_images
from stylekit.errors import BadInput, StylekitError
from stylekit.io.console import get_console
from stylekit.io.rundir import ensure_writable_dir
from stylekit.transfer.config import STEP_UNIT, TransferConfig

OUTPUT_EXTENSIONS = IMAGE_EXTENSIONS - {".gif"}


class Stylizer(Protocol):
    """What a transfer method provides: run-wide facts, and one content image -> one output file."""

    name: str

    def describe(self) -> dict[str, Any]: ...

    def stylise(self, content_path: Path, out_path: Path) -> dict[str, Any]: ...


def _gatys(cfg: TransferConfig) -> Stylizer:
    from stylekit.transfer.gatys import GatysStylizer

    return GatysStylizer(cfg)


METHODS: dict[str, Callable[[TransferConfig], Stylizer]] = {"gatys": _gatys}


@dataclass
class TransferReport:
    """The result `stylekit transfer` prints (table) or emits (--json)."""

    method: str
    batch: bool
    step_unit: str
    run: dict[str, Any] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)


def _check_inputs(cfg: TransferConfig) -> None:
    if cfg.method not in METHODS:
        raise BadInput(f"unknown --method '{cfg.method}'", hint=f"use one of: {', '.join(METHODS)}")
    if not Path(cfg.content).exists():
        raise BadInput(f"content {cfg.content} does not exist", hint="give an image file or a folder of images")
    for style in cfg.styles:
        if not Path(style).exists():
            raise BadInput(f"style image {style} does not exist", hint="check the STYLE path")
        if not Path(style).is_file():
            raise BadInput(f"style {style} is not a file", hint="give one or more style image files")


def plan_outputs(content: Path, out: Path) -> tuple[bool, list[tuple[Path, Path]]]:
    """(batch?, [(content image, output path)]) for CONTENT and --out, validating --out."""
    if content.is_dir():
        if out.exists() and not out.is_dir():
            raise BadInput(f"--out {out} is a file but CONTENT {content} is a folder", hint="give a folder for --out")
        c_real, o_real = content.resolve(), out.resolve()
        if o_real == c_real or c_real in o_real.parents:
            raise BadInput(f"--out {out} is inside the CONTENT folder {content}", hint="write outputs to a separate folder")
        images = list_images(content)
        if not images:
            raise BadInput(f"no images found in {content}", hint=f"supported extensions: {', '.join(sorted(IMAGE_EXTENSIONS))}")
        rels = [p.relative_to(content) for p in images]
        stems: dict[Path, int] = {}
        for rel in rels:
            stems[rel.with_suffix("")] = stems.get(rel.with_suffix(""), 0) + 1
        jobs = []
        for path, rel in zip(images, rels, strict=True):
            # Two inputs a.jpg and a.png would both become a.png: keep their full names then.
            name = rel.with_suffix(".png") if stems[rel.with_suffix("")] == 1 else rel.with_name(rel.name + ".png")
            jobs.append((path, out / name))
        return True, jobs
    if out.is_dir() or str(out).endswith(("/", "\\")):
        return False, [(content, out / f"{content.stem}.png")]
    if out.suffix.lower() not in OUTPUT_EXTENSIONS:
        raise BadInput(f"--out {out} has no image extension", hint="use e.g. out.png (PNG keeps colours exact), or a folder")
    return False, [(content, out)]


def run_transfer(cfg: TransferConfig) -> TransferReport:
    """Stylise CONTENT (file or folder) with the styles in `cfg`; see the module docstring."""
    cfg.validate()
    _check_inputs(cfg)
    return run_stylizer(lambda: METHODS[cfg.method](cfg), Path(cfg.content), Path(cfg.out),
                        method=cfg.method, step_unit=STEP_UNIT, config=cfg.to_dict(), fresh=cfg.fresh)


def run_stylizer(make_stylizer: Callable[[], Stylizer], content: Path, out: Path, *, method: str,
                 step_unit: str, config: dict[str, Any], fresh: bool = False) -> TransferReport:
    """The batch loop every method shares: plan outputs, skip existing ones (redo them with `fresh`),
    build the stylizer only when something is left to do, report per-file failures (fatal for a single file)."""
    batch, jobs = plan_outputs(content, out)
    ensure_writable_dir(out if batch else jobs[0][1].parent)
    report = TransferReport(method=method, batch=batch, step_unit=step_unit, config=config)
    start = time.perf_counter()
    pending = []
    for src, dst in jobs:
        if batch and dst.exists() and not fresh:
            report.items.append({"content": str(src), "output": str(dst), "status": "skipped", "reason": "output exists"})
            report.skipped += 1
        else:
            pending.append((src, dst))
    console = get_console()
    if not pending:
        console.log(f"all {len(jobs)} outputs already exist in {out}: nothing to do")
        report.seconds = round(time.perf_counter() - start, 3)
        return report
    stylizer = make_stylizer()
    report.run = stylizer.describe()
    for number, (src, dst) in enumerate(pending, start=1):
        if batch:
            console.log(f"[{number}/{len(pending)}] {src} -> {dst}")
        try:
            item = stylizer.stylise(src, dst)
        except (StylekitError, RuntimeError, OSError, ValueError) as exc:
            if not batch:
                raise
            reason = exc.message if isinstance(exc, StylekitError) else f"{type(exc).__name__}: {exc}"
            console.warn(f"{src}: failed: {reason}")
            report.items.append({"content": str(src), "output": str(dst), "status": "failed", "reason": reason})
            report.failed += 1
            continue
        report.items.append({"content": str(src), "output": str(dst), "status": "done", **item})
        report.done += 1
    report.seconds = round(time.perf_counter() - start, 3)
    if batch and report.failed and report.done == 0 and report.skipped == 0:
        first = next(i for i in report.items if i["status"] == "failed")
        raise BadInput(f"all {report.failed} content images failed; first: {first['content']}: {first['reason']}")
    return report
