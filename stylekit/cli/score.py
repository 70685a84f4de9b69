"""`stylekit score A B` / `score --network N REF`: the metric registry's metrics between image sets or of a generator."""

from typing import Any

import typer

from stylekit.cli.common import Table, command, render
from stylekit.configs.score import ScoreConfig

ORDER = 40

_EXAMPLES = [
    "stylekit download toy-styles --out data/toy --size 32 --per-style 10 --styles 4",
    "stylekit score data/toy/pop data/toy/stripes --metrics kid,gram --inception-weights random --vgg-weights random --size 32",
    "stylekit score data/toy/pop data/toy/stripes --metrics fid,kid,cmmd --inception-weights random --clip-weights random --json",
    "stylekit train-classifier data/toy --size 32 --epochs 2 --out runs/style",
    "stylekit score data/toy/pop data/toy/checks --metrics style --style-model runs/style",
    "stylekit score data/toy/content data/toy/pop --pairs --metrics style,gram --embedder gram --vgg-weights random --size 32 --out report.json",
    "stylekit score --network random:32 data/toy/pop --num-gen 10 --metrics fid,kid --inception-weights random --trunc 0.7",
    "stylekit score --network random:32 data/toy/pop --metrics fid50k_full --num-gen 10 --inception-weights random",
    "stylekit score --network random:32 --metrics is10k --num-gen 10 --inception-weights random",
]
_NOTES = ("A and B are folders (searched recursively) or .zip files of images. B may also be clean-fid's precomputed "
          "statistics, stats:NAME/RES/SPLIT (SPLIT optional) (fid and kid only), e.g. stats:ffhq/1024/trainval70k, "
          "stats:ffhq/256, stats:cifar10/32/test, stats:afhq_dog/512, stats:metfaces/1024, stats:lsun_church/256; "
          "your own data set's statistics: `stylekit stats DATA --name NAME`, then stats:NAME/RES. With --network the "
          "generator's samples (seeds --seed, --seed + 1, ...) are set A, generated on the device and never written, and the "
          "one image set given is the reference. Metrics: fid, kid, clip-fid, cmmd, style, gram, pr, is and NVlabs' names "
          "fid50k_full, kid50k_full, fid10k, pr50k3_full, is50k, ppl_zfull, ppl_wfull, ppl_zend, ppl_wend, ppl2_wend "
          "(docs/metrics.md). --inception-weights/--clip-weights/--vgg-weights random and --network random:RES are "
          "random-init stand-ins for trying the command offline: the report labels them (stand_ins) and the numbers mean "
          "nothing.")


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
    if doc.get("stand_ins"):
        tables.append(Table("random-init stand-ins (the numbers are not meaningful)", ["option"], [[s] for s in doc["stand_ins"]]))
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


def register(app: typer.Typer) -> None:
    @command(app, "score", help="FID, KID, precision/recall, IS, PPL, CLIP metrics, style and Gram distance of image sets or a generator.",
             examples=_EXAMPLES, notes=_NOTES, config=ScoreConfig)
    def score_cmd(cfg: ScoreConfig) -> None:
        from stylekit.metrics.score import score_sets

        render(score_sets(cfg).to_dict(), table=_show)
