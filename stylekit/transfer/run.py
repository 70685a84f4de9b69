"""`run_transfer(cfg)`: one content image or a whole folder, through the method chosen by --method.

Methods live in `METHODS` (name -> `TransferMethod`: a factory taking the config and returning a
`Stylizer`, and the recipe of what shapes its outputs); adding a method is one more entry.

One rerun rule for both modes: every output's recipe is recorded in stylekit-outputs.json in the folder
that holds it (`io/recipe.py`; batch mode: OUT, one file: the output's folder). A rerun skips up-to-date
outputs and says so (cron re-runs are cheap: nothing is loaded when all are current), redoes those whose
content image changed, and refuses (exit 2, `--fresh` redoes them) outputs made with other styles,
options or model, or with no record. Every check (inputs, method, weights located, that plan) runs before
that folder is created and locked (exit 75 while another run holds it). Batch mode writes
OUT/<relative path>.png for every image; per-file failures are reported instead of stopping (with
--batch N, a failure inside a batch fails its images); it fails (exit 2) only when no image has an output
(every file failed and none was done before). Under torchrun each rank stylises its block of the images left
to do; rank 0 alone locks, and folds the other ranks' record parts into the one record (`OutputRecord`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from stylekit.configs.transfer import TransferConfig
from stylekit.data.images import IMAGE_EXTENSIONS, list_images
from stylekit.errors import BadInput, StylekitError
from stylekit.io.console import get_console
from stylekit.io.outpath import names_folder
from stylekit.io.paths import Input, refuse_out_overlap, require_regular_file
from stylekit.io.recipe import OutputRecord, Plan, file_digest, plan_outputs, recipe_digest
from stylekit.nets.vgg import check_layers, locate_weights
from stylekit.standins import is_random, label
from stylekit.train.cyclegan import META_FILE
from stylekit.train.distributed import agree, distributed_job, gather_lists
from stylekit.train.shares import lock_on_main, on_main, run_share
from stylekit.transfer.cyclegan import CycleGANStylizer, load_cyclegan_generator
from stylekit.transfer.gatys import GatysStylizer, check_init
from stylekit.transfer.pix2pix import Pix2PixStylizer, resolve_model, write_results_page

if TYPE_CHECKING:
    from stylekit.train.distributed import DistInfo

OUTPUT_EXTENSIONS = IMAGE_EXTENSIONS - {".gif"}
STEP_UNIT = ("one loss+gradient evaluation (VGG forward+backward): one Adam update; an L-BFGS iteration "
             "takes one or more (strong-Wolfe line search)")


class Stylizer(Protocol):
    """What a transfer method provides: run-wide facts, and one content image -> one output file."""

    name: str

    def describe(self) -> dict[str, Any]: ...

    def stylise(self, content_path: Path, out_path: Path) -> dict[str, Any]: ...

    # Used only with --batch > 1, which TransferConfig.check allows for methods that have them (gatys).
    def batch_key(self, content_path: Path) -> object: ...  # only jobs with equal keys share a batch

    def stylise_batch(self, jobs: list[tuple[Path, Path]]) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class TransferMethod:
    """One entry of METHODS: how to build the stylizer and what shapes its outputs."""

    build: Callable[[TransferConfig, str], Stylizer]  # (config, this process's device: under torchrun its own GPU)
    recipe: Callable[[TransferConfig], dict[str, Any]]  # JSON-able; files enter by their bytes
    step_unit: str
    check: Callable[[TransferConfig], None] = lambda cfg: None  # method-specific input checks (exit 2)
    finish: Callable[[TransferConfig, Any], None] = lambda cfg, report: None  # after the batch (e.g. a results page)


def _style_digests(cfg: TransferConfig) -> list[str]:
    return [file_digest(s) for s in cfg.styles]


def _weights_identity(name: str | None) -> str | None:
    """A local weights file by its bytes; a registry name (checksum-pinned) by its name."""
    return file_digest(name) if name and Path(name).expanduser().is_file() else name


def _gatys(cfg: TransferConfig, device: str) -> Stylizer:

    return GatysStylizer(cfg, device)


def _gatys_recipe(cfg: TransferConfig) -> dict[str, Any]:
    return {**cfg.shaping_options(), "styles": _style_digests(cfg), "vgg_weights": _weights_identity(cfg.vgg_weights)}


def _check_gatys(cfg: TransferConfig) -> None:
    """Layers known, --init readable and the VGG weights located, before anything is created."""

    check_layers(cfg.arch, cfg.content_layers, "--content-layers")
    check_layers(cfg.arch, cfg.style_layers, "--style-layers")
    check_init(cfg.init)
    locate_weights(cfg.vgg_weights or "auto", cfg.arch)


def _pix2pix(cfg: TransferConfig, device: str) -> Stylizer:

    assert cfg.model is not None  # _check_pix2pix
    return Pix2PixStylizer(cfg.model, list(cfg.styles), size=cfg.size, device=device)


def _pix2pix_recipe(cfg: TransferConfig) -> dict[str, Any]:

    assert cfg.model is not None
    weights, config = resolve_model(cfg.model)
    return {"method": "pix2pix", "model": file_digest(weights), "model_config": file_digest(config),
            "styles": _style_digests(cfg), "size": cfg.size}


def _pix2pix_finish(cfg: TransferConfig, report: Any) -> None:

    write_results_page(cfg, report)


def _check_pix2pix(cfg: TransferConfig) -> None:
    if cfg.targets is not None and not (Path(cfg.content).is_dir() and Path(cfg.targets).is_dir()):
        raise BadInput(f"--targets {cfg.targets} needs a folder of targets and a CONTENT folder",
                       hint="give CONTENT and --targets as folders with the same relative image names")

    resolve_model(cfg.model)


def _cyclegan(cfg: TransferConfig, device: str) -> Stylizer:

    assert cfg.model is not None  # TransferConfig.check
    return CycleGANStylizer(cfg.model, str(cfg.direction), size=cfg.size, device=device, amp=cfg.amp)


def _cyclegan_recipe(cfg: TransferConfig) -> dict[str, Any]:

    assert cfg.model is not None
    folder = Path(cfg.model).expanduser()
    model = file_digest(folder / META_FILE) if folder.is_dir() else _weights_identity(cfg.model)  # a run: its latest export
    return {"method": "cyclegan", "model": model, "direction": str(cfg.direction), "size": cfg.size}


def _check_cyclegan(cfg: TransferConfig) -> None:

    assert cfg.model is not None
    load_cyclegan_generator(cfg.model, str(cfg.direction), "cpu")  # the model is readable before anything is created


METHODS: dict[str, TransferMethod] = {
    "gatys": TransferMethod(_gatys, _gatys_recipe, STEP_UNIT, _check_gatys),
    "pix2pix": TransferMethod(_pix2pix, _pix2pix_recipe, "one generator forward pass", _check_pix2pix, _pix2pix_finish),
    "cyclegan": TransferMethod(_cyclegan, _cyclegan_recipe, "one generator forward pass", _check_cyclegan),
}


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
    standin: str | None = None  # set when the VGG is a random-init stand-in (not meaningful)
    per_rank: list[int] = field(default_factory=list)  # under torchrun: images each rank stylised (or failed), in rank order


def _check_inputs(cfg: TransferConfig) -> None:
    if not Path(cfg.content).exists():
        raise BadInput(f"content {cfg.content} does not exist", hint="give an image file or a folder of images")
    for style in cfg.styles:
        if not Path(style).exists():
            raise BadInput(f"style image {style} does not exist", hint="check the STYLE path")
        if not Path(style).is_file():
            raise BadInput(f"style {style} is not a file", hint="give one or more style image files")


def output_paths(content: Path, out_arg: str | Path) -> tuple[bool, list[tuple[Path, Path]]]:
    """(batch?, [(content image, output path)]) for CONTENT and --out, validating --out."""
    out = Path(out_arg)
    if content.is_dir():
        if out.exists() and not out.is_dir():
            raise BadInput(f"--out {out} is a file but CONTENT {content} is a folder", hint="give a folder for --out")
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
    if names_folder(out_arg):
        return False, [(content, out / f"{content.stem}.png")]
    if out.suffix.lower() not in OUTPUT_EXTENSIONS:
        raise BadInput(f"--out {out} has no image extension", hint="use e.g. out.png (PNG keeps colours exact), or a folder")
    return False, [(content, out)]


def _groups(stylizer: Stylizer, jobs: list[tuple[Path, Path]], size: int) -> list[list[tuple[Path, Path]]]:
    """Jobs in batches of at most `size` whose `batch_key` (output sizes) is equal, in first-seen order.

    A job whose key cannot be read (a broken file) goes alone, so its error is reported for it only.
    """
    if size == 1:
        return [[job] for job in jobs]
    open_groups: dict[object, list[tuple[Path, Path]]] = {}
    groups: list[list[tuple[Path, Path]]] = []
    for job in jobs:
        try:
            key: object = stylizer.batch_key(job[0])
        except (StylekitError, OSError, ValueError):
            key = ("alone", job)
        group = open_groups.get(key)
        if group is None or len(group) == size:
            group = open_groups[key] = []
            groups.append(group)
        group.append(job)
    return groups


def _plan(cfg: TransferConfig, method: TransferMethod, folder: Path, jobs: list[tuple[Path, Path]],
          rank: int) -> tuple[OutputRecord, str, Plan]:
    """The record of `folder` (this rank's writer), this run's recipe, and which jobs are up to date (BadInput for
    foreign outputs)."""
    record = OutputRecord(folder, rank)
    recipe = recipe_digest(method.recipe(cfg))
    plan = plan_outputs(jobs, record.recorded([dst for _, dst in jobs]), recipe, Path(cfg.out), cfg.fresh)
    return record, recipe, plan


def run_transfer(cfg: TransferConfig) -> TransferReport:
    """Stylise CONTENT (file or folder) with the styles in `cfg`; see the module docstring.

    Under torchrun each rank stylises its block of the images left to do and records them; rank 0 holds the lock,
    merges the records and writes the report's page (pix2pix) from every rank's items."""

    _check_inputs(cfg)
    method = METHODS[cfg.method]
    content, out = Path(cfg.content), Path(cfg.out)
    inputs = [Input("STYLE", s) for s in cfg.styles] + [Input("--model", cfg.model)]
    if not is_random(cfg.vgg_weights):
        inputs.append(Input("--vgg-weights", cfg.vgg_weights))
    refuse_out_overlap(out, [Input("CONTENT", content, data_folder=True), *inputs])
    if not content.is_dir():
        require_regular_file(content, "CONTENT image")  # before any weights load; a FIFO is exit 2
    with distributed_job(cfg.device) as dist:

        def prepare() -> tuple[bool, list[tuple[Path, Path]], Path, OutputRecord, str, Plan]:
            method.check(cfg)  # method-specific inputs; weights located (exit 3 when they cannot be had)
            batch, jobs = output_paths(content, cfg.out)
            folder = out if batch else jobs[0][1].parent
            if folder.exists() and not folder.is_dir():
                raise BadInput(f"cannot write to {folder}: it is a file, not a folder", hint="choose a folder for --out")
            return batch, jobs, folder, *_plan(cfg, method, folder, jobs, dist.rank)

        batch, jobs, folder, record, recipe, plan = agree(prepare, dist)
        lock = lock_on_main(folder, dist, then=record.merge_parts)  # takes in what an interrupted run left
        try:
            return _run(cfg, method, batch, jobs, plan, record, recipe, dist)
        finally:
            if lock is not None:
                lock.release()


def _run(cfg: TransferConfig, method: TransferMethod, batch: bool, jobs: list[tuple[Path, Path]], plan: Plan,
         record: OutputRecord, recipe: str, dist: DistInfo) -> TransferReport:
    """Stylise the jobs the plan leaves to do, each rank its block (checks done, the output folder locked by rank 0)."""

    report = TransferReport(method=cfg.method, batch=batch, step_unit=method.step_unit, config=cfg.to_dict())
    start = time.perf_counter()
    console = get_console()
    if cfg.method == "gatys" and is_random(cfg.vgg_weights):
        report.standin = label("--vgg-weights random")
        console.warn(report.standin)
    for src, dst in plan.current:
        report.items.append({"content": str(src), "output": str(dst), "status": "skipped", "reason": "up to date"})
    report.skipped = len(plan.current)
    pending = plan.todo
    if plan.redo_changed:
        console.log(f"{plan.redo_changed} content image(s) changed since their output was made: redoing them")
    if not pending:
        what = f"all {len(jobs)} outputs in {cfg.out} are" if batch else f"{jobs[0][1]} is"
        console.log(f"{what} up to date: nothing to do (--fresh redoes it)")
        report.seconds = round(time.perf_counter() - start, 3)
        on_main(lambda: method.finish(cfg, report), dist)
        return report
    stylizer = agree(lambda: method.build(cfg, str(dist.device)), dist)
    report.run = stylizer.describe()

    def work(block: range) -> list[dict[str, Any]]:
        """This rank's images, in batches of --batch: their outputs written and recorded; one item each."""
        items: list[dict[str, Any]] = []
        number = block.start
        for group in _groups(stylizer, pending[block.start : block.stop], cfg.batch):
            for src, dst in group:
                number += 1
                if batch:
                    console.log(f"[{number}/{len(pending)}] {src} -> {dst}")
            try:
                done = stylizer.stylise_batch(group) if len(group) > 1 else [stylizer.stylise(*group[0])]
            except (StylekitError, RuntimeError, OSError, ValueError) as exc:
                if not batch:
                    raise
                reason = exc.message if isinstance(exc, StylekitError) else f"{type(exc).__name__}: {exc}"
                for src, dst in group:
                    console.warn(f"{src}: failed: {reason}")
                    items.append({"content": str(src), "output": str(dst), "status": "failed", "reason": reason})
                continue
            for (src, dst), item in zip(group, done, strict=True):
                record.add(dst, recipe, src)
                items.append({"content": str(src), "output": str(dst), "status": "done", **item})
        return items

    mine, report.per_rank = run_share(len(pending), work, dist)
    items = gather_lists(mine, dist)
    report.items += items
    report.done = sum(item["status"] == "done" for item in items)
    report.failed = len(items) - report.done
    on_main(record.merge_parts, dist)
    report.seconds = round(time.perf_counter() - start, 3)
    if batch and report.failed and report.done == 0 and report.skipped == 0:
        first = next(i for i in report.items if i["status"] == "failed")
        raise BadInput(f"all {report.failed} content images failed; first: {first['content']}: {first['reason']}")
    on_main(lambda: method.finish(cfg, report), dist)
    return report
