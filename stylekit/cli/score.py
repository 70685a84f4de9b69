"""`stylekit score A B` / `score --network N REF`: the metric registry's metrics between image sets or of a generator."""

from enum import StrEnum
from typing import Annotated, Any

import typer

from stylekit.cli.common import Table, command, render
from stylekit.cli.vocabulary import option

ORDER = 40

_EXAMPLES = [
    "stylekit score real/ generated/",
    "stylekit score real/ generated/ --metrics fid,kid,cmmd --json > scores.json",
    "stylekit score data/toy/test/ samples.zip --metrics style --style-model runs/style/export",
    "stylekit score styles/ stylised/ --pairs --metrics style,gram --out report.json",
    "stylekit score generated/ stats:ffhq/256 --metrics fid,kid",
    "stylekit score --network ffhq-256 data/ffhq-256.zip --metrics fid50k_full,kid50k_full,pr50k3_full",
    "stylekit score --network runs/toon --num-gen 5000 data/toons.zip --metrics fid,kid --trunc 0.7",
    "stylekit score --network ffhq-256 --metrics ppl2_wend,is50k --batch 64 --device cuda",
]
_NOTES = ("A and B are folders (searched recursively) or .zip files of images. B may also be clean-fid's precomputed "
          "statistics, stats:NAME/RES/SPLIT (SPLIT optional) (fid and kid only), e.g. stats:ffhq/1024/trainval70k, "
          "stats:ffhq/256, stats:cifar10/32/test, stats:afhq_dog/512, stats:metfaces/1024, stats:lsun_church/256; "
          "your own data set's statistics: `stylekit stats DATA --name NAME`, then stats:NAME/RES. With --network the generator's samples (seeds --seed, --seed + 1, ...) are set A, generated on the device "
          "and never written, and the one image set given is the reference. Metrics: fid, kid, clip-fid, cmmd, style, "
          "gram, pr, is and NVlabs' names fid50k_full, kid50k_full, fid10k, pr50k3_full, is50k, ppl_zfull, ppl_wfull, "
          "ppl_zend, ppl_wend, ppl2_wend (docs/metrics.md).")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _family_rows(name: str, r: dict[str, Any]) -> list[list[Any]]:
    fam = r.get("family", name)
    if fam == "kid":
        return [[f"{name} (raw)", _fmt(r["value"]), f"x1000 = {r['x1000']:.4g} ± {r['std_x1000']:.3g}, {r['subsets']} subsets of {r['subset_size']}"]]
    if fam == "fid":
        return [[name, _fmt(r["value"]), f"mode {r['mode']}"]]
    if fam == "clip-fid":
        return [[name, _fmt(r["value"]), "Fréchet distance of CLIP embeddings"]]
    if fam == "cmmd":
        return [[f"{name} (x1000)", _fmt(r["value"]), "RBF sigma=10"]]
    if fam == "pr":
        note = f"k = {r['k']}, {r['num_gen']} vs {r['num_real']} images, VGG16 fc2"
        return [[f"{name} precision", _fmt(r["precision"]), note], [f"{name} recall", _fmt(r["recall"]), note]]
    if fam == "is":
        return [[name, _fmt(r["value"]), f"± {r['std']:.3g} over {r['splits']} splits of {r['num_gen']} images"]]
    if fam == "ppl":
        return [[name, _fmt(r["value"]), f"{r['samples']} samples, {r['space']} {r['sampling']}, {'crop' if r['crop'] else 'no crop'}"]]
    if fam == "style":
        rows = [[f"{name} cosine", _fmt(r["cosine"]), f"embedder {r['embedder']} (higher = closer)"],
                [f"{name} fd", _fmt(r["fd"]), "Fréchet distance of style embeddings (lower = closer)"]]
        if r.get("nn_label_agreement") is not None:
            rows.append([f"{name} nn-label agreement", _fmt(r["nn_label_agreement"]), f"{r['nn_labelled']} labelled B images"])
        if r.get("pairs_cosine_mean") is not None:
            rows.append([f"{name} pair cosine (mean)", _fmt(r["pairs_cosine_mean"]), "matched by file name"])
        return rows
    if fam == "gram":
        rows = [[name, _fmt(r["value"]), "mean ||mean Gram A - mean Gram B||_F over relu1_1..relu5_1"]]
        if r.get("pairs_mean") is not None:
            rows.append([f"{name} pair distance (mean)", _fmt(r["pairs_mean"]), "matched by file name"])
        return rows
    return [[name, _fmt(r.get("value")), ""]]


def _rows(doc: dict[str, Any]) -> list[list[Any]]:
    return [row for name, r in doc["metrics"].items() for row in _family_rows(name, r)]


def _show(doc: dict[str, Any]) -> list[Table]:
    a, b = doc["a"], doc["b"]
    b_desc = f"{b['source']} ({b['used']}/{b['n']} images)" if "n" in b else f"{b['source']}"
    a_desc = f"{a['source']} (seeds {a['seeds']})" if a.get("seeds") else f"{a['source']} ({a.get('used')}/{a.get('n')} images)"
    tables = [Table(f"score: {a_desc} vs {b_desc} in {doc['seconds']:.1f}s", ["metric", "value", "notes"], _rows(doc))]
    for side in ("a", "b"):
        skipped = doc[side].get("skipped") or []
        if skipped:
            tables.append(Table(f"skipped in {doc[side]['source']} ({len(skipped)})", ["file", "reason"],
                                [[s["path"], s["reason"]] for s in skipped[:20]]))
    if doc.get("pairs"):
        p = doc["pairs"]
        tables.append(Table("pairs (matched by file name)", ["matched", "only in A", "only in B"],
                            [[p["matched"], len(p["unmatched_a"]), len(p["unmatched_b"])]]))
    return tables


class Embedder(StrEnum):
    style = "style"
    gram = "gram"
    clip = "clip"


def _embedder(embedder: Embedder | None, style_model: str | None) -> str:
    """The library's one `style_model` value: 'clip', 'gram' or the style model path."""
    from stylekit.errors import BadInput

    if embedder is None:
        embedder = Embedder.style if style_model else Embedder.clip
    if embedder is Embedder.style:
        if not style_model:
            raise BadInput("--embedder style needs --style-model RUN", hint="a train-classifier run directory or its export")
        return style_model
    if style_model:
        raise BadInput(f"--style-model is used with --embedder style, not --embedder {embedder.value}")
    return embedder.value


def register(app: typer.Typer) -> None:
    @command(app, "score", help="FID, KID, precision/recall, IS, PPL, CLIP metrics, style and Gram distance of image sets or a generator.",
             examples=_EXAMPLES, notes=_NOTES)
    def score(
        a: Annotated[str | None, typer.Argument(help="Image set A: folder or .zip (with --network: the reference set).", show_default=False)] = None,
        b: Annotated[str | None, typer.Argument(help="Image set B: folder, .zip, or stats:NAME/RES/SPLIT (SPLIT optional).", show_default=False)] = None,
        metrics: Annotated[str | None, typer.Option("--metrics", help="Comma list of metric registry names (default fid,kid,style).", show_default=False)] = None,
        network: str | None = option("network", "Score a generator's samples (registry name, .pkl, .pt, .safetensors, run dir) against the reference set."),
        num_gen: int | None = option("num_gen", "With --network: samples for metrics without a count in their name (default 50000).", default=None),
        trunc: float = option("trunc", "With --network: truncation psi (1 = none)."),
        out: Annotated[str | None, typer.Option("--out", "-o", help="Also write the JSON report to this file.")] = None,
        mode: Annotated[str, typer.Option("--mode", help="clean-fid mode for fid/kid: clean, legacy_pytorch, legacy_tensorflow.")] = "clean",
        clip_model: Annotated[str, typer.Option("--clip-model", help="open_clip architecture name, or a local open_clip model folder.")] = "ViT-B-32",
        clip_weights: Annotated[str | None, typer.Option("--clip-weights", help="CLIP weights file (default: registry clip-vit-b-32 for ViT-B-32).")] = None,
        embedder: Annotated[Embedder | None, typer.Option("--embedder", help="Embeddings of the style metric (default: style with --style-model, else clip).", show_default=False)] = None,
        style_model: str | None = option("style_model", "--embedder style: the style model (a train-classifier run or its export)."),
        vgg_weights: str | None = option("vgg_weights", "VGG19 weights for gram (default: registry vgg19)."),
        inception_weights: Annotated[str | None, typer.Option("--inception-weights", help="Local FID Inception file (default: registry inception-fid).")] = None,
        size: Annotated[int | None, typer.Option("--size", help="Image side fed to VGG (gram; default 256) and to a style model (default: the size it was trained at).", show_default=False)] = None,
        batch: int = option("batch", "Images per forward pass.", default=32),
        cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Per-image feature cache in $STYLEKIT_HOME/features.")] = True,
        pairs: Annotated[bool, typer.Option("--pairs", help="Match A and B by file name: per-pair style cosine and Gram distance.")] = False,
        kid_subsets: Annotated[int, typer.Option("--kid-subsets", help="KID: number of random subsets.")] = 100,
        kid_subset_size: Annotated[int, typer.Option("--kid-subset-size", help="KID: max images per subset.")] = 1000,
        workers: int | None = option("workers", "Decoding worker processes (0 = in the main process; default: auto = a decoding thread beside the model on CPU, one process per core up to 8 on CUDA)."),
        device: str = option("device"),
        seed: int = option("seed", "Seed for KID subsets and PPL latents; with --network the first seed."),
    ) -> None:
        from stylekit.metrics.registry import parse_metrics
        from stylekit.metrics.score import ScoreConfig, score_sets

        cfg = ScoreConfig(
            a=a, b=b, metrics=None if metrics is None else [s.name for s in parse_metrics(metrics)],
            network=network, num_gen=num_gen, trunc=trunc,
            mode=mode, clip_model=clip_model, clip_weights=clip_weights, style_model=_embedder(embedder, style_model),
            vgg_weights=vgg_weights, inception_weights=inception_weights, size=size, batch=batch,
            workers=workers, device=device, cache=cache, pairs=pairs, kid_subsets=kid_subsets,
            kid_subset_size=kid_subset_size, seed=seed, out=str(out) if out else None,
        )
        report = score_sets(cfg)
        render(report.to_dict(), table=_show)
