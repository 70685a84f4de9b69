"""train-classifier: an art-style classifier that is also a learned style-similarity embedding.

The model is StyleNet (backbone + classification head + L2-normalised projection head). It trains
with cross-entropy, SupCon, or both; SupCon needs same-style positives in every batch, which the
balanced P x K sampler guarantees. Every epoch it measures val top-1/top-5, macro-F1 and style
retrieval (val queries against the train database: mAP@10, Recall@1) and writes one line to
metrics.jsonl. At the end it evaluates the test split, writes tables and plots, and exports the
style model that `load_style_model` / `score --style-model` read.

The loop runs on the shared runner: auto-resume from the run directory, checkpoints at every
epoch end, SIGTERM/SIGINT -> checkpoint + exit 130, NaN guard, DDP under torchrun (the same global
batches as one process: see stylekit/data/sampling.py and losses.supcon_loss).
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from stylekit.configs.classifier import ClassifierConfig
from stylekit.data.datasets import SPLITS, StyleImageDataset, StyleSplits, load_style_splits
from stylekit.data.sampling import BalancedBatchSampler, ShuffledBatchSampler, derive_pk
from stylekit.device import amp_dtype, autocast, configure_backends, grad_scaler, resolve_device
from stylekit.errors import BadInput
from stylekit.io.atomic import write_json_atomic
from stylekit.io.checkpoint import load_module_tensors
from stylekit.io.console import get_console
from stylekit.io.limits import build_checked, parse_json
from stylekit.io.paths import Input, read_regular_text, refuse_out_overlap
from stylekit.io.rundir import RunDir
from stylekit.metrics import retrieval as R
from stylekit.metrics.style import (
    META_NAME,
    StyleModel,
    export_style_model,
    load_style_model,
    style_net_config,
)
from stylekit.nets.backbones import check_weights_available, fixed_input_size, parse_spec, sync_batchnorm
from stylekit.nets.style_embedding import StyleNet, StyleNetConfig
from stylekit.standins import label
from stylekit.train import TrainRunner, barrier, reapply_schedule, seed_everything, unwrap, wrap_ddp
from stylekit.train import classifier_report as rep
from stylekit.train.distributed import DistInfo, all_gather_tensors, distributed_job
from stylekit.train.losses import LossConfig, style_loss
from stylekit.train.plan import log_plan
from stylekit.train.stats import RunningMeans

RETRIEVAL_K = 10


def resolve_config(cfg: ClassifierConfig) -> ClassifierConfig:
    """The defaults that depend on other options filled in (pretrained, size, lr, sampler); the backbone
    name and its fixed input size checked (BadInput)."""
    kind, _ = parse_spec(cfg.backbone)
    pretrained = kind != "small" and not cfg.stand_in and (cfg.pretrained is None or cfg.pretrained)
    fixed = fixed_input_size(cfg.backbone)
    if fixed and cfg.size is not None and cfg.size != fixed:
        raise BadInput(f"--backbone {cfg.backbone} needs --size {fixed} (got {cfg.size})", hint=f"use --size {fixed}")
    size = cfg.size if cfg.size is not None else fixed or (64 if kind == "small" else 224)
    lr = cfg.lr if cfg.lr is not None else (3e-4 if pretrained else 1e-3)
    return cfg.replace(pretrained=pretrained, size=size, lr=lr, balanced_sampler=cfg.balanced)


def _loss_config(cfg: ClassifierConfig) -> LossConfig:
    return LossConfig(cfg.loss, cfg.supcon_weight, cfg.temperature, cfg.label_smoothing)


def _weights_file(cfg: ClassifierConfig) -> str | None:
    """--backbone-weights as a file or registry name (None for the random-init stand-in)."""
    return None if cfg.stand_in else cfg.weights


@dataclass
class ClassifierResult:
    out: str
    classes: list[str]
    epochs: int
    steps: int
    test: dict[str, Any]
    val: dict[str, Any] = field(default_factory=dict)
    images: dict[str, Any] = field(default_factory=dict)
    style_model: str | None = None
    seconds: float = 0.0
    resumed: bool = False
    eval_only: bool = False
    stand_ins: list[str] = field(default_factory=list)  # random-init stand-ins used (results not meaningful)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CHECK_EVERY = 50  # steps between reads of the running losses (finite check, progress bar): no read per step

# ------------------------------------------------------------------------------------------ helpers
def _default_workers(cfg: ClassifierConfig, device: torch.device) -> int:
    """--workers, else: up to 8 loader processes on CUDA; on CPU one per core but one (the training
    process keeps a core), none on a single-core machine, so decoding overlaps the network."""
    if cfg.workers is not None:
        return max(0, cfg.workers)
    cores = os.cpu_count() or 1
    return min(8, cores) if device.type == "cuda" else min(4, cores - 1)


def _worker_init(_: int) -> None:
    # Ctrl-C reaches the whole process group; only the main process saves and exits.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _gather_rows(local: torch.Tensor, n: int, dist: Any) -> torch.Tensor:
    """Rows computed for indices rank::world on each rank -> all n rows in index order, on every rank."""
    if dist.world_size == 1:
        return local
    import torch.distributed as tdist

    per = -(-n // dist.world_size)
    device = dist.device if dist.device.type == "cuda" else torch.device("cpu")
    padded = torch.zeros((per, *local.shape[1:]), dtype=local.dtype, device=device)
    padded[: local.shape[0]] = local.to(device)
    parts = [torch.zeros_like(padded) for _ in range(dist.world_size)]
    tdist.all_gather(parts, padded)
    return torch.stack(parts, dim=1).reshape(per * dist.world_size, *local.shape[1:])[:n].cpu()


@torch.no_grad()
def embed_items(
    net: StyleNet, items: list[tuple[Path, int]], size: int, batch: int, device: torch.device,
    dist: Any = None, workers: int = 0, amp: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(embeddings [n,D], logits [n,C], labels [n]) of items with the eval transform, sharded over ranks."""

    dist = dist or DistInfo()
    n = len(items)
    ds = StyleImageDataset(items, size, train=False)
    shard = list(range(dist.rank, n, dist.world_size))
    loader = DataLoader(Subset(ds, shard), batch_size=batch, shuffle=False, num_workers=workers,
                        worker_init_fn=_worker_init if workers else None)
    was_training = net.training
    net.eval()
    embs, logits = [], []
    for images, _, _ in loader:
        with autocast(device, amp):
            e, lg = net.embed_and_classify(images.to(device, non_blocking=True))
        embs.append(e.float().cpu())
        logits.append(lg.float().cpu())
    net.train(was_training)
    emb = torch.cat(embs) if embs else torch.zeros(0, net.embed_dim, device="cpu")
    lgt = torch.cat(logits) if logits else torch.zeros(0, net.cfg.num_classes, device="cpu")
    labels = torch.tensor([c for _, c in items], dtype=torch.long, device="cpu")
    return _gather_rows(emb, n, dist), _gather_rows(lgt, n, dist), labels


def split_metrics(
    q_emb: torch.Tensor, q_logits: torch.Tensor, q_labels: torch.Tensor, num_classes: int,
    db_emb: torch.Tensor | None, db_labels: torch.Tensor | None,
) -> dict[str, Any]:
    """Classification + retrieval metrics of one query split (JSON-ready; includes the confusion matrix)."""
    cls = R.classification_metrics(q_logits, q_labels, num_classes)
    ret = R.retrieval_metrics(q_emb, q_labels, db_emb, db_labels, k=RETRIEVAL_K)
    return {
        "top1": cls["top1"], "top5": cls["top5"], "macro_f1": cls["macro_f1"],
        f"map@{RETRIEVAL_K}": ret[f"map@{RETRIEVAL_K}"], "recall@1": ret["recall@1"],
        "n": int(q_labels.shape[0]), "database": int(db_labels.shape[0]) if db_labels is not None else 0,
        "per_class_accuracy": cls["per_class_accuracy"], "confusion": cls["confusion"],
    }


def _headline(m: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in m.items() if k not in ("confusion", "per_class_accuracy")}


def write_reports(
    out: Path, classes: list[str], split_name: str, metrics: dict[str, Any],
    q_items: list[tuple[Path, int]], db_items: list[tuple[Path, int]], q_emb: torch.Tensor,
    db_emb: torch.Tensor | None, size: int, records: list[dict[str, Any]], extra: dict[str, Any],
) -> None:
    """test_metrics.json, per-class table, confusion matrix, curves, neighbours (rank 0 only)."""

    cm = metrics["confusion"]
    doc = {"split": split_name, **_headline(metrics), "classes": classes,
           "per_class_accuracy": dict(zip(classes, metrics["per_class_accuracy"], strict=True)),
           "confusion": cm.tolist(), **extra}
    write_json_atomic(out / "test_metrics.json", doc)
    rep.write_per_class(out, classes, cm, metrics["per_class_accuracy"])
    rep.plot_confusion(out / "confusion_matrix.png", classes, cm, f"{split_name} confusion (top-1 {metrics['top1']:.3f})")
    rep.plot_curves(out / "curves.png", records)
    if db_emb is None:
        db_items, db_emb = q_items, q_emb
        _, idx = R.nearest_neighbours(q_emb, db_emb, 5, exclude_self=True)
    else:
        _, idx = R.nearest_neighbours(q_emb, db_emb, 5)
    rep.plot_neighbours(out / "neighbours.png", q_items, db_items, idx, size, classes)


def _lr_lambda(total: int, warmup: int) -> Any:
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


def _param_groups(net: StyleNet, wd: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for p in net.parameters():
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def _make_sampler(cfg: ClassifierConfig, splits: StyleSplits, dist: Any) -> ShuffledBatchSampler | BalancedBatchSampler:
    labels = splits.labels("train")
    if cfg.balanced_sampler:
        p, k = derive_pk(cfg.batch, len(splits.classes), cfg.classes_per_batch, cfg.per_class, dist.world_size)
        return BalancedBatchSampler(labels, p, k, seed=cfg.seed, world_size=dist.world_size, rank=dist.rank)
    return ShuffledBatchSampler(len(labels), min(cfg.batch, len(labels) - len(labels) % dist.world_size),
                                seed=cfg.seed, world_size=dist.world_size, rank=dist.rank)


def _gather_for_supcon(z: torch.Tensor, y: torch.Tensor, dist: Any) -> tuple[torch.Tensor, torch.Tensor, int] | None:
    if dist.world_size == 1:
        return None

    return all_gather_tensors(z, dist, grad=True), all_gather_tensors(y, dist), dist.rank * z.shape[0]


# ------------------------------------------------------------------------------------------- train
def train_classifier(cfg: ClassifierConfig) -> ClassifierResult:
    """Train (or resume) a style classifier + embedding into cfg.out; see the module docstring.

    Every check (backbone, weights, DATA and its split) runs before --out is created or locked, and the
    lock before anything is printed: a refused run leaves no folder behind."""
    # --eval-only may write its report into the evaluated run folder itself, so --style-model is no overlap
    refuse_out_overlap(cfg.out, [Input("DATA", cfg.data, data_folder=True), Input("--backbone-weights", _weights_file(cfg))])
    if cfg.eval_only:
        return evaluate_classifier(cfg)
    cfg = resolve_config(cfg)

    check_weights_available(cfg.backbone, bool(cfg.pretrained), _weights_file(cfg))
    with distributed_job(cfg.device) as dist:
        workers = _default_workers(cfg, dist.device)
        splits = load_style_splits(cfg.data, cfg.split, cfg.seed, check=cfg.check_images, workers=max(workers, 4))  # type: ignore[arg-type]
        splits.require("train", "val", "test")
        with RunDir(cfg.out, fresh=cfg.fresh) as run_dir:
            return _train(cfg, dist, splits, run_dir)


def _stand_ins(cfg: ClassifierConfig) -> list[str]:
    """The random-init stand-ins of this run, each announced once as a warning."""

    names = ["--backbone-weights random"] if cfg.stand_in else []
    for name in names:
        get_console().warn(label(name))
    return names


def _train(cfg: ClassifierConfig, dist: Any, splits: StyleSplits, run_dir: RunDir) -> ClassifierResult:

    console = get_console()
    start_time = time.monotonic()
    seed_everything(cfg.seed, dist.rank)  # rank 0's initial weights are broadcast; augmentation is seeded per item
    device = dist.device
    workers = _default_workers(cfg, device)
    stand_ins = _stand_ins(cfg)
    for skipped in splits.report.skipped[:20]:
        console.warn(f"skipped {skipped.path}: {skipped.reason}")
    if len(splits.report.skipped) > 20:
        console.warn(f"... and {len(splits.report.skipped) - 20} more skipped images")
    classes = splits.classes
    console.log(f"{len(classes)} classes; images: {splits.counts()} ({len(splits.report.skipped)} skipped); source: {splits.source}")

    loss_cfg = _loss_config(cfg)
    net_cfg = StyleNetConfig(cfg.backbone, len(classes), cfg.embed_dim, "features" if cfg.loss == "ce" else "projection")
    net = StyleNet(net_cfg, pretrained=bool(cfg.pretrained), weights=_weights_file(cfg))
    if dist.distributed and device.type == "cuda":
        # BatchNorm statistics over the global batch (every rank also sees every class: sampling.py)
        net = sync_batchnorm(net)
    net = net.to(device)
    configure_backends(device, training=True, tf32=True)
    sampler = _make_sampler(cfg, splits, dist)
    steps_per_epoch = len(sampler)
    total = steps_per_epoch * cfg.epochs
    log_plan("train-classifier", epochs=cfg.epochs, steps_per_epoch=steps_per_epoch, total_steps=total,
             detail=f"batch {cfg.batch}, {cfg.backbone}")
    optimizer = torch.optim.AdamW(_param_groups(net, cfg.wd), lr=cfg.lr)
    warmup = min(int(cfg.warmup_epochs * steps_per_epoch), total // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(total, warmup))
    if cfg.amp and amp_dtype(device) is None:
        console.warn(f"--amp: {device} has no native low-precision type; training in fp32")
    scaler = grad_scaler(device, cfg.amp)
    train_ds = StyleImageDataset(splits.items["train"], cfg.size, train=True, seed=cfg.seed)
    loader = DataLoader(train_ds, batch_sampler=sampler, num_workers=workers, pin_memory=device.type == "cuda",
                        worker_init_fn=_worker_init if workers else None)
    config = {**cfg.to_dict(), "classes": classes, "steps_per_epoch": steps_per_epoch,
              "world_size": dist.world_size, "sampler": type(sampler).__name__,
              "pk": [sampler.P, sampler.K] if isinstance(sampler, BalancedBatchSampler) else None}

    with TrainRunner(run_dir, dist, config=config, total=total) as runner:
        runner.register("model", net)
        runner.register("optimizer", optimizer)
        runner.register("scheduler", scheduler)
        runner.register("scaler", scaler)
        state = runner.resume()
        reapply_schedule(scheduler)  # a rerun may extend --epochs
        step = int(state.get("step", 0))
        epoch = int(state.get("epoch", 0))
        start_batch = int(state.get("batch", 0))
        resumed = bool(state)
        if resumed and epoch >= cfg.epochs:
            console.log(f"{cfg.out} already holds all {cfg.epochs} epochs: nothing to train, the reports are rewritten "
                        "(--fresh starts over, a larger --epochs continues)")
        train_db: TrainDatabase | None = None
        frozen_phase: bool | None = None
        model: torch.nn.Module = net
        stop_at = cfg.stop_after_steps
        with runner.progress("train-classifier") as task:
            while epoch < cfg.epochs:
                frozen = epoch < cfg.freeze_backbone_epochs
                if frozen != frozen_phase:
                    # DDP tracks only parameters that require grad at construction: re-wrap per phase.
                    net.backbone.requires_grad_(not frozen)
                    model = wrap_ddp(net, dist)
                    frozen_phase = frozen
                    if frozen:
                        console.log(f"epoch {epoch + 1}: backbone frozen (heads only)")
                model.train()
                if frozen:
                    net.backbone.eval()  # frozen means frozen: BatchNorm running statistics too
                sampler.set_epoch(epoch, start_batch)
                train_ds.set_epoch(epoch)
                epoch_stats, check_stats = RunningMeans(device), RunningMeans(device)
                count = 0
                t_epoch = time.monotonic()
                for i, (images, labels, _) in enumerate(loader, start=start_batch):
                    images = images.to(device, non_blocking=True)
                    labels = labels.to(device, non_blocking=True)
                    with autocast(device, cfg.amp):
                        logits, z = model(images, probe=cfg.loss == "supcon")
                    gathered = _gather_for_supcon(z, labels, dist) if loss_cfg.uses_supcon else None
                    loss, parts = style_loss(loss_cfg, logits, z, labels, gathered, dist.world_size)
                    if cfg.loss == "supcon":  # the probe head learns on detached features
                        probe = torch.nn.functional.cross_entropy(logits.float(), labels)
                        loss = loss + probe
                        parts["probe_ce"] = probe.detach()
                    for k, v in parts.items():  # on the device: no read inside the step
                        epoch_stats.add(k, v)
                        check_stats.add(k, v)
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    scheduler.step()
                    step += 1
                    count += 1
                    task.advance()
                    if step % CHECK_EVERY == 0 or i + 1 == steps_per_epoch:  # a nan since the last check raises
                        values = runner.check_finite(step, **check_stats.means(dist))
                        task.update(epoch=epoch + 1, loss=values["loss"])
                    if stop_at is not None and step >= stop_at:
                        runner.request_stop("stop_after_steps")
                    if i + 1 < steps_per_epoch:
                        runner.stop_if_requested(step, epoch=epoch, batch=i + 1)
                start_batch = 0
                train_seconds = time.monotonic() - t_epoch
                reduced = {f"train_{k}": v for k, v in epoch_stats.means(dist).items()}
                val, train_db = _evaluate_epoch(unwrap(model), splits, cfg, device, dist, workers, step)
                epoch += 1
                runner.log_metrics(step, epoch=epoch, **reduced, **{f"val_{k}": v for k, v in _headline(val).items() if k not in ("n", "database")},
                                   lr=optimizer.param_groups[0]["lr"], epoch_seconds=round(train_seconds, 2),
                                   images_per_s=round(count * sampler.batch / max(train_seconds, 1e-9), 1))
                runner.save(step, epoch=epoch, batch=0, pin=epoch == cfg.epochs)
                runner.stop_if_requested(step, epoch=epoch, batch=0)
        net.eval()
        test, val_last = _final_outputs(net, splits, cfg, device, dist, workers, run_dir, runner,
                                        train_db if train_db is not None and train_db.step == step else None)
    return ClassifierResult(
        out=str(cfg.out), classes=classes, epochs=epoch, steps=step, test=_headline(test),
        val=val_last, images=splits.report.to_dict() | {"counts": splits.counts()},
        style_model=str(cfg.out), seconds=round(time.monotonic() - start_time, 2), resumed=resumed, stand_ins=stand_ins,
    )


@dataclass
class TrainDatabase:
    """The train split embedded by the network as it was after optimiser step `step` (the retrieval database)."""

    step: int
    emb: torch.Tensor
    labels: torch.Tensor


def _evaluate_epoch(net: StyleNet, splits: StyleSplits, cfg: ClassifierConfig, device: torch.device,
                    dist: Any, workers: int, step: int) -> tuple[dict[str, Any], TrainDatabase]:
    batch = max(cfg.batch, 64)
    v_emb, v_logits, v_labels = embed_items(net, splits.items["val"], cfg.size, batch, device, dist, workers, cfg.amp)
    t_emb, _, t_labels = embed_items(net, splits.items["train"], cfg.size, batch, device, dist, workers, cfg.amp)
    return split_metrics(v_emb, v_logits, v_labels, len(splits.classes), t_emb, t_labels), TrainDatabase(step, t_emb, t_labels)


def _final_outputs(net: StyleNet, splits: StyleSplits, cfg: ClassifierConfig, device: torch.device, dist: Any,
                   workers: int, run_dir: RunDir, runner: Any, train_db: TrainDatabase | None = None,
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Test metrics and reports. `train_db`: the last epoch's embedding of the train split, taken with
    the same weights (no step since): reused instead of embedding the whole train split again."""

    batch = max(cfg.batch, 64)
    q_emb, q_logits, q_labels = embed_items(net, splits.items["test"], cfg.size, batch, device, dist, workers, cfg.amp)
    if train_db is None:
        db_emb, _, db_labels = embed_items(net, splits.items["train"], cfg.size, batch, device, dist, workers, cfg.amp)
    else:
        db_emb, db_labels = train_db.emb, train_db.labels
    test = split_metrics(q_emb, q_logits, q_labels, len(splits.classes), db_emb, db_labels)
    records = run_dir.read_metrics()
    val_last = {k.removeprefix("val_"): v for k, v in (records[-1] if records else {}).items() if k.startswith("val_")}
    if dist.is_main:
        extra = {"backbone": cfg.backbone, "loss": cfg.loss, "epochs": cfg.epochs, "size": cfg.size,
                 "data": str(cfg.data), "images": splits.report.to_dict() | {"counts": splits.counts()}}
        write_reports(cfg.out, splits.classes, "test", test, splits.items["test"], splits.items["train"],
                      q_emb, db_emb, cfg.size, records, extra)
        last_step = int(records[-1]["step"]) if records else 0
        runner.log_image(last_step, "test/neighbours", cfg.out / "neighbours.png")
        runner.log_image(last_step, "test/confusion_matrix", cfg.out / "confusion_matrix.png")
        export_style_model(net, cfg.out, {
            "name": f"{cfg.out.name or 'style'}-{cfg.backbone}", "size": cfg.size, "classes": splits.classes,
            "loss": cfg.loss, "trained_on": str(cfg.data), "epochs": cfg.epochs,
            "test_top1": test["top1"], f"test_map@{RETRIEVAL_K}": test[f"map@{RETRIEVAL_K}"],
        })
        get_console().log(
            f"test: top-1 {test['top1']:.4f}, top-5 {test['top5']:.4f}, macro-F1 {test['macro_f1']:.4f}, "
            f"mAP@{RETRIEVAL_K} {test[f'map@{RETRIEVAL_K}']:.4f}, Recall@1 {test['recall@1']:.4f}; style model in {cfg.out}"
        )
    barrier(dist)
    return test, val_last


# -------------------------------------------------------------------------------------- eval-only
def _load_for_eval(path: Path, device: torch.device) -> Any:
    """A StyleModel from a style-model export, or from a run directory's latest checkpoint."""

    path = Path(path)
    if (path / META_NAME).is_file() or path.name.startswith("style_model."):
        return load_style_model(path, device)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise BadInput(f"{path} is neither a style model export nor a train-classifier run directory",
                       hint="give the --out folder of a train-classifier run")

    conf = parse_json(read_regular_text(config_file, "run config"), str(config_file))
    if not isinstance(conf, dict) or "classes" not in conf or "backbone" not in conf:
        raise BadInput(f"{config_file} is not a train-classifier configuration", hint="give the --out folder of a train-classifier run")
    net_cfg = style_net_config({"backbone": conf["backbone"], "classes": conf["classes"], "embed_dim": conf.get("embed_dim"),
                                "embedding": "features" if conf.get("loss") == "ce" else "projection"}, str(config_file))
    state = load_module_tensors(path, "model")
    net = build_checked(lambda: StyleNet(net_cfg, pretrained=False), {k: tuple(v.shape) for k, v in state.items()},
                        str(path), f"{config_file.name} (backbone {net_cfg.backbone})")
    net.load_state_dict(state, strict=True)
    meta = {"backbone": conf["backbone"], "classes": conf["classes"], "size": conf["size"], "embed_dim": net.embed_dim,
            "name": f"{path.name}-{conf['backbone']}", "loss": conf.get("loss")}
    return StyleModel(net, meta, path).to(device)


def evaluate_classifier(cfg: ClassifierConfig) -> ClassifierResult:
    """--eval-only: evaluate a trained model on cfg.data (split cfg.eval_split) into cfg.out."""

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise BadInput("--eval-only runs in one process", hint="run it without torchrun")
    start_time = time.monotonic()
    device = resolve_device(cfg.device)
    model = _load_for_eval(Path(cfg.style_model), device)  # type: ignore[arg-type]
    model.require_head()  # top-1/top-5/F1 need the classifier
    workers = _default_workers(cfg, device)
    splits = load_style_splits(cfg.data, cfg.split, cfg.seed, check=cfg.check_images, workers=max(workers, 4))
    unknown = [c for c in splits.classes if c not in model.classes]
    if unknown:
        raise BadInput(f"{cfg.data} has classes the model does not know: {', '.join(unknown[:8])}",
                       hint=f"the model knows: {', '.join(model.classes[:12])}")
    remap = [model.classes.index(c) for c in splits.classes]
    items = {s: [(p, remap[c]) for p, c in v] for s, v in splits.items.items()}
    split_name = cfg.eval_split
    queries = items[split_name]
    if not queries:
        split_name, queries = "all", [it for s in SPLITS for it in items[s]]
    if not queries:
        raise BadInput(f"{cfg.data} has no images to evaluate")
    db_items = items["train"] if split_name not in ("train", "all") else []
    size = model.size
    with RunDir(cfg.out, fresh=cfg.fresh) as run_dir:  # every check above ran before --out is created
        for skipped in splits.report.skipped[:20]:
            get_console().warn(f"skipped {skipped.path}: {skipped.reason}")
        q_emb, q_logits, q_labels = embed_items(model.net, queries, size, max(cfg.batch, 64), device, None, workers, cfg.amp)
        db_emb = db_labels = None
        if db_items:
            db_emb, _, db_labels = embed_items(model.net, db_items, size, max(cfg.batch, 64), device, None, workers, cfg.amp)
        metrics = split_metrics(q_emb, q_logits, q_labels, len(model.classes), db_emb, db_labels)
        extra = {"style_model": str(cfg.style_model), "data": str(cfg.data), "eval_only": True,
                 "images": splits.report.to_dict() | {"counts": splits.counts()}}
        write_reports(run_dir.path, model.classes, split_name, metrics, queries, db_items, q_emb, db_emb,
                      size, run_dir.read_metrics(), extra)
        if Path(cfg.out).resolve() != Path(model.folder or "").resolve():
            export_style_model(model.net, cfg.out, {k: v for k, v in model.meta.items()
                                                    if k not in ("format", "format_version", "stylekit_version")})
    get_console().log(f"{split_name}: top-1 {metrics['top1']:.4f}, mAP@{RETRIEVAL_K} {metrics[f'map@{RETRIEVAL_K}']:.4f}, "
                      f"Recall@1 {metrics['recall@1']:.4f} ({metrics['n']} images)")
    return ClassifierResult(
        out=str(cfg.out), classes=model.classes, epochs=0, steps=0, test=_headline(metrics),
        images=splits.report.to_dict() | {"counts": splits.counts()}, style_model=str(cfg.out),
        seconds=round(time.monotonic() - start_time, 2), eval_only=True,
    )
