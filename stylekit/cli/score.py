"""`stylekit score A B`: FID, KID, CLIP-FID, CMMD, style similarity and Gram distance between image sets."""

from pathlib import Path
from typing import Annotated, Any

import typer

from stylekit.cli.common import command, render
from stylekit.io.console import get_console

ORDER = 40

_EXAMPLES = """

A and B are folders (searched recursively) or .zip files of images. B may also be clean-fid's
precomputed statistics, stats:NAME/RES/SPLIT (SPLIT optional) (fid and kid only), e.g. stats:ffhq/1024/trainval70k,
stats:ffhq/256, stats:cifar10/32/test, stats:afhq_dog/512, stats:metfaces/1024, stats:lsun_church/256.
Your own data set's statistics: `stylekit stats DATA --name NAME`, then stats:NAME/RES.

Examples:

  stylekit score real/ generated/                         (fid, kid, style with CLIP embeddings)

  stylekit score real/ generated/ --metrics fid,kid,cmmd --json > scores.json

  stylekit score data/toy/test/ samples.zip --metrics style --style-model runs/style/export

  stylekit score styles/ stylised/ --pairs --metrics style,gram --out report.json

  stylekit score generated/ stats:ffhq/256 --metrics fid,kid
"""


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _rows(doc: dict[str, Any]) -> list[list[Any]]:
    m = doc["metrics"]
    rows: list[list[Any]] = []
    if "fid" in m:
        rows.append(["fid", _fmt(m["fid"]["value"]), f"mode {m['fid']['mode']}"])
    if "kid" in m:
        k = m["kid"]
        rows.append(["kid (raw)", _fmt(k["value"]), f"x1000 = {k['x1000']:.4g} ± {k['std_x1000']:.3g}, {k['subsets']} subsets of {k['subset_size']}"])
    if "clip-fid" in m:
        rows.append(["clip-fid", _fmt(m["clip-fid"]["value"]), "Fréchet distance of CLIP embeddings"])
    if "cmmd" in m:
        rows.append(["cmmd (x1000)", _fmt(m["cmmd"]["value"]), "RBF sigma=10"])
    if "style" in m:
        s = m["style"]
        rows.append(["style cosine", _fmt(s["cosine"]), f"embedder {s['embedder']} (higher = closer)"])
        rows.append(["style fd", _fmt(s["fd"]), "Fréchet distance of style embeddings (lower = closer)"])
        if s.get("nn_label_agreement") is not None:
            rows.append(["style nn-label agreement", _fmt(s["nn_label_agreement"]), f"{s['nn_labelled']} labelled B images"])
        if s.get("pairs_cosine_mean") is not None:
            rows.append(["style pair cosine (mean)", _fmt(s["pairs_cosine_mean"]), "matched by file name"])
    if "gram" in m:
        g = m["gram"]
        rows.append(["gram", _fmt(g["value"]), "mean ||mean Gram A - mean Gram B||_F over relu1_1..relu5_1"])
        if g.get("pairs_mean") is not None:
            rows.append(["gram pair distance (mean)", _fmt(g["pairs_mean"]), "matched by file name"])
    return rows


def _show(doc: dict[str, Any]) -> None:
    console = get_console()
    a, b = doc["a"], doc["b"]
    b_desc = f"{b['source']} ({b['used']}/{b['n']} images)" if "n" in b else f"{b['source']}"
    console.print_table(f"score: {a['source']} ({a['used']}/{a['n']} images) vs {b_desc} in {doc['seconds']:.1f}s",
                        ["metric", "value", "notes"], _rows(doc))
    for side in ("a", "b"):
        skipped = doc[side].get("skipped") or []
        if skipped:
            console.print_table(f"skipped in {doc[side]['source']} ({len(skipped)})", ["file", "reason"],
                                [[s["path"], s["reason"]] for s in skipped[:20]])
    if doc.get("pairs"):
        p = doc["pairs"]
        console.log(f"pairs: {p['matched']} matched, {len(p['unmatched_a'])} only in A, {len(p['unmatched_b'])} only in B")


def register(app: typer.Typer) -> None:
    @command(app, "score", help="FID, KID, CLIP-FID, CMMD, style similarity and Gram distance between two image sets." + _EXAMPLES)
    def score(
        a: Annotated[str, typer.Argument(help="Image set A: folder or .zip.", show_default=False)],
        b: Annotated[str, typer.Argument(help="Image set B: folder, .zip, or stats:NAME/RES/SPLIT (SPLIT optional).", show_default=False)],
        metrics: Annotated[str, typer.Option("--metrics", help="Comma list of fid,kid,clip-fid,cmmd,style,gram.")] = "fid,kid,style",
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the JSON report to this file.")] = None,
        mode: Annotated[str, typer.Option("--mode", help="clean-fid mode for fid/kid: clean, legacy_pytorch, legacy_tensorflow.")] = "clean",
        clip_model: Annotated[str, typer.Option("--clip-model", help="open_clip architecture name, or a local open_clip model folder.")] = "ViT-B-32",
        clip_weights: Annotated[str | None, typer.Option("--clip-weights", help="CLIP weights file (default: registry clip-vit-b-32 for ViT-B-32).")] = None,
        style_model: Annotated[str, typer.Option("--style-model", help="Style embedder: 'clip' (default), 'gram', or a style model export from train-classifier.")] = "clip",
        vgg_weights: Annotated[str | None, typer.Option("--vgg-weights", help="Local VGG19 state dict for gram (default: registry vgg19).")] = None,
        inception_weights: Annotated[str | None, typer.Option("--inception-weights", help="Local FID Inception file (default: registry inception-fid).")] = None,
        size: Annotated[int | None, typer.Option("--size", help="Image side fed to VGG (gram; default 256) and to a style model (default: the size it was trained at).", show_default=False)] = None,
        batch: Annotated[int, typer.Option("--batch", help="Images per forward pass.")] = 32,
        workers: Annotated[int, typer.Option("--workers", help="Decoding worker processes (0 = in the main process).")] = 2,
        device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
        cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Per-image feature cache in $STYLEKIT_HOME/features.")] = True,
        pairs: Annotated[bool, typer.Option("--pairs", help="Match A and B by file name: per-pair style cosine and Gram distance.")] = False,
        kid_subsets: Annotated[int, typer.Option("--kid-subsets", help="KID: number of random subsets.")] = 100,
        kid_subset_size: Annotated[int, typer.Option("--kid-subset-size", help="KID: max images per subset.")] = 1000,
        seed: Annotated[int, typer.Option("--seed", help="Seed for KID subsets.")] = 0,
    ) -> None:
        from stylekit.metrics.score import ScoreConfig, parse_metrics, score_sets

        cfg = ScoreConfig(
            a=a, b=b, metrics=None if metrics.replace(" ", "") == "fid,kid,style" else parse_metrics(metrics),
            mode=mode, clip_model=clip_model, clip_weights=clip_weights, style_model=style_model,
            vgg_weights=vgg_weights, inception_weights=inception_weights, size=size, batch=batch,
            workers=workers, device=device, cache=cache, pairs=pairs, kid_subsets=kid_subsets,
            kid_subset_size=kid_subset_size, seed=seed, out=str(out) if out else None,
        )
        report = score_sets(cfg)
        render(report.to_dict(), table=_show)
