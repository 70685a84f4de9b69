"""`stylekit finetune-stylegan`: an all-pairs cover of its declaration on a tiny network, its --help examples, and
its edge rules (checks before OUT, the lock before any output, --num-gen, stand-in labels, what a step is)."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.configs.finetune import AugPipe, FinetuneConfig
from stylekit.errors import BadInput
from tests.cover.examples import help_examples, run_example, shrink
from tests.cover.harness import finite_numbers, pairwise_rows, promised_files, run_row
from tests.test_finetune import RES, make_tiny_setup

pytestmark = pytest.mark.usefixtures("one_thread")

FIXED = {"data": Path("data"), "out": Path("out"), "network": "net", "kimg": 0.004, "tick_kimg": 0.004, "snap": 1}
ROWS = pairwise_rows(FinetuneConfig, fixed=FIXED)
PROMISED = ["network-final.safetensors", "metrics.jsonl", "config.json", "samples/reals.png", "checkpoints"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return make_tiny_setup(tmp_path_factory.mktemp("cover-ft"))


def test_the_cover_varies_every_choice():
    assert len(ROWS) >= 8
    for name in ("aug", "cfg", "freezed", "mirror", "amp", "batch", "gamma", "ada_kimg"):
        assert len({row[name] for row in ROWS}) >= 2, name


@pytest.mark.parametrize("row", ROWS, ids=[f"row{i}" for i in range(len(ROWS))])
def test_row(row, setup, tmp_path):
    data, src = setup
    out = tmp_path / "run"
    code, doc, stderr = run_row("finetune-stylegan", FinetuneConfig, row | {"data": data, "network": str(src), "out": out},
                                ["--device", "cpu"])
    if code == 2:
        assert not out.exists(), stderr
        return
    assert finite_numbers(doc) and doc["kimg"] >= 0.004 and doc["resolution"] == RES
    assert not promised_files(out, PROMISED)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == round(doc["kimg"] * 1000)  # a step is one real image


def test_augpipe_choices_are_the_networks_pipes():
    from stylekit.nets.stylegan2.augment import AUGPIPES

    assert {p.value for p in AugPipe} == set(AUGPIPES)


@pytest.mark.parametrize("extra", [["--kimg", "0"], ["--augpipe", "xyz"], ["--aug", "fixed"], ["--freezed", "65"],
                                   ["--metrics", "fidd"], ["--batch", "64"], ["--freezed", "20"], ["--target", "1"],
                                   ["--num-gen", "1"], ["--metrics", "pr50k5", "--num-gen", "100"]])
def test_a_failed_check_leaves_no_out_behind(setup, tmp_path, extra):
    data, src = setup
    res = CliRunner().invoke(app, ["finetune-stylegan", str(data), "--network", str(src), "--out", str(tmp_path / "o"),
                                   "--device", "cpu", "--batch", "4", *extra])
    assert res.exit_code == 2 and extra[0] in res.stderr, res.output
    assert not (tmp_path / "o").exists()


def test_busy_out_is_refused_before_anything_is_printed(setup, tmp_path):
    from stylekit.io.rundir import DirLock

    data, src = setup
    out = tmp_path / "busy"
    out.mkdir()
    lock = DirLock(out)
    lock.acquire()
    try:
        res = CliRunner().invoke(app, ["finetune-stylegan", str(data), "--network", str(src), "--out", str(out),
                                       "--device", "cpu", "--batch", "4", "--kimg", "0.004"])
    finally:
        lock.release()
    assert res.exit_code == 75 and "plan" not in res.stderr and res.stderr.startswith("error:"), res.stderr


def test_explicit_num_gen_wins_over_a_metric_name_and_is_recorded():
    cfg = FinetuneConfig(data=Path("d"), out=Path("o"), network="n", metrics="fid10k,kid,ppl2_wend", num_gen=50)
    assert cfg.metric_overrides == ("fid10k",) and cfg.metric_counts == {"fid": 50, "kid": 50, "ppl2_wend": 50}
    default = FinetuneConfig(data=Path("d"), out=Path("o"), network="n", metrics="fid10k,kid")
    assert default.metric_counts == {"fid10k": 10_000, "kid": 1000} and not default.metric_overrides
    assert FinetuneConfig(data=Path("d"), out=Path("o"), network="n", metrics="none").metric_specs == ()
    with pytest.raises(BadInput, match="--metrics"):
        FinetuneConfig(data=Path("d"), out=Path("o"), network="n", metrics="gram")  # two image sets


def test_random_network_is_labelled_a_stand_in(setup, tmp_path, monkeypatch):
    import stylekit.train.stylegan as trainer

    data, src = setup
    resolve = trainer.resolve_network_path  # the trainer's name for it: the tiny source stands in for random:RES
    monkeypatch.setattr(trainer, "resolve_network_path", lambda spec: src if spec == f"random:{RES}" else resolve(spec))
    res = CliRunner().invoke(app, ["finetune-stylegan", str(data), "--network", f"random:{RES}", "--out", str(tmp_path / "r"),
                                   "--device", "cpu", "--batch", "4", "--kimg", "0.004", "--json"])
    assert res.exit_code == 0, res.output
    assert "random-init stand-in" in json.loads(res.stdout)["stand_in"] and "random-init stand-in" in res.stderr
    assert "plan 0.2 epochs, 4 steps in total (a step is one real image" in res.stderr


def test_help_examples_run_on_toy_styles(setup, tmp_path, monkeypatch):
    _, src = setup
    monkeypatch.chdir(tmp_path)
    examples = help_examples("finetune-stylegan")
    assert len(examples) >= 4
    for words in examples:
        words = [str(src) if w.startswith("random:") else w for w in words]  # the tiny network stands in for random:64
        small = shrink(words, {"--size": str(RES), "--per-style": "20", "--kimg": "0.004", "--num-gen": "8", "--freezed": "2"})
        code, output = run_example([*small, *(["--device", "cpu", "--batch", "4"] if words[0] == "finetune-stylegan" else [])])
        assert code == 0, f"{' '.join(words)}\n{output}"
        assert words[0] != "finetune-stylegan" or "--kimg" in words  # the preset's 25,000 kimg is not an example
