"""`stylekit directions`: SeFa and style-classifier directions (library numbers), and the command's files, rerun
rule, bad inputs and --help examples (on random:RES stand-ins and a 1-epoch toy-styles style model)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.configs.classifier import ClassifierConfig
from stylekit.data.grid import PAD, upscale_factor
from stylekit.data.toy import generate_toy_styles
from stylekit.edit.directions import (
    classifier_direction,
    edit,
    probability_along,
    sample_seeds,
    sefa,
)
from stylekit.edit.generate import map_seeds
from stylekit.edit.latents import load_latents, save_latents
from stylekit.nets.stylegan2.tiny import tiny_generator
from stylekit.train.classifier import train_classifier
from tests.cover.examples import help_examples

pytestmark = pytest.mark.usefixtures("one_thread")

STYLEKIT = str(Path(sys.executable).parent / "stylekit")
runner = CliRunner()


def _cli(*args: str):
    return runner.invoke(app, ["directions", *args, "--device", "cpu", "--quiet"])


@pytest.fixture(scope="module")
def style_run(tmp_path_factory) -> Path:
    """A style model trained 1 epoch on 32 px toy styles (its classes are what the CLI tests need, not its skill)."""
    data = tmp_path_factory.mktemp("dir-toy") / "toy"
    generate_toy_styles(data, size=32, per_style=6, styles=3, seed=0)
    out = tmp_path_factory.mktemp("dir-runs") / "style"
    train_classifier(ClassifierConfig(data=data, out=out, epochs=1, batch=12, size=32, seed=0, workers=0))
    return out


def test_sefa_recovers_a_planted_direction():
    """The layers' affines get a dominant rank-1 part u_l v^T (plus noise): the top SeFa direction must be +-v, and
    the eigenvalues come sorted descending. Fails if the factorisation reads the wrong layers' affines (the other
    layers keep random weights) or the wrong side of A (v lives in W, u in style space)."""
    G = tiny_generator(32)
    layers = [1, 2, 3]
    gen = torch.Generator(device="cpu").manual_seed(1)
    v = torch.randn(G.w_dim, generator=gen, device="cpu")
    v /= v.norm()
    by_layer = G.synthesis.style_affines()
    with torch.no_grad():
        for i in layers:
            for fc in by_layer[i]:
                u = torch.randn(fc.weight.shape[0], generator=gen, device="cpu")
                fc.weight.copy_(10 * u[:, None] * v[None] + 0.1 * torch.randn(fc.weight.shape, generator=gen, device="cpu"))
    vectors, values = sefa(G, layers, 4)
    assert vectors.shape == (4, G.w_dim) and torch.allclose(vectors.norm(dim=1), torch.ones(4), atol=1e-5)
    assert abs(float(vectors[0] @ v)) > 0.99
    assert torch.all(values[:-1] >= values[1:]) and values[0] > 10 * values[1]
    other, _ = sefa(G, [0, 4], 1)  # layers left random do not hold v
    assert abs(float(other[0] @ v)) < 0.9


def test_classifier_direction_raises_the_planted_style_probability():
    """A planted style: p(style) = sigmoid(20 (mean red - mean blue)) of the image. The boundary fitted on 200
    sampled latents must point where held-out latents' mean probability rises (-2 < 0 < +2, and falls along the
    negative). Fails if the normal points away from the style (sign), if the fit ignores the scores (a random unit
    direction rises far less), or if edits leak into layers outside --layers."""
    G = tiny_generator(16)

    def score(images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(20 * (images[:, 0].mean((1, 2)) - images[:, 2].mean((1, 2))))

    seeds = sample_seeds(0, 250)
    train, held = map_seeds(G, seeds[:200]), map_seeds(G, seeds[200:])
    d, accuracy = classifier_direction(G, train, held, score, 0.25, batch=50)
    layers = list(range(G.num_ws))
    up = [p["mean"] for p in probability_along(G, held, d, layers, [-2, 0, 2], score, 50)]
    down = [p["mean"] for p in probability_along(G, held, -d, layers, [-2, 0, 2], score, 50)]
    assert up[0] < up[1] < up[2] and down[0] > down[1] > down[2], (up, down)
    assert up[2] - up[0] > 0.5 and accuracy > 0.7, (up, accuracy)
    r = torch.randn(G.w_dim, generator=torch.Generator(device="cpu").manual_seed(5), device="cpu")
    rand = [p["mean"] for p in probability_along(G, held, r / r.norm(), layers, [-2, 2], score, 50)]
    assert abs(rand[1] - rand[0]) < (up[2] - up[0]) / 2
    edited = edit(held, d, [0, 1], 2.0)
    assert torch.equal(edited[:, 2:], held[:, 2:]) and not torch.equal(edited[:, :2], held[:, :2])


def _sheet_grid(path: Path, res: int) -> tuple[int, int]:
    """(rows, label band width) of a labelled sheet of res-px cells: rows from its height (the header band is
    shorter than a cell)."""
    cell = res * upscale_factor(res)
    with Image.open(path) as img:
        w, h = img.size
    return (h - PAD) // (cell + PAD), w - PAD


def test_sefa_run_writes_directions_sheet_latents_and_honours_the_rerun_rule(tmp_path):
    out = tmp_path / "dirs"
    res = _cli("--network", "random:32", "--num", "3", "--layers", "0-3", "--seeds", "1,2", "--strengths", "-2,0,2",
               "--out", str(out), "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    values = [d["eigenvalue"] for d in doc["directions"]]
    assert doc["method"] == "sefa" and doc["layers"] == [0, 1, 2, 3] and values == sorted(values, reverse=True)
    with np.load(out / "directions.npz", allow_pickle=False) as f:
        assert f["directions"].shape == (3, 32) and f["directions"].dtype == np.float32
        assert f["layers"].tolist() == [0, 1, 2, 3] and str(f["method"]) == "sefa" and str(f["network"]) == "random:32"
        assert np.allclose(f["eigenvalues"], values, rtol=1e-5)
        assert np.allclose(np.linalg.norm(f["directions"], axis=1), 1, atol=1e-5)
        vectors = f["directions"]
    rows, _ = _sheet_grid(out / "sheet.png", 32)
    assert rows == 3 * 2  # directions x seeds; columns: the strengths (edited.npz rows below)
    G = tiny_generator(32)
    w = load_latents(out / "edited.npz", G.num_ws, G.w_dim)
    with np.load(out / "edited.npz", allow_pickle=False) as f:
        strength, direction = f["strength"], f["direction"]
    assert w.shape[0] == 3 * 2 * 3 and strength.tolist()[:3] == [-2, 0, 2] and direction.tolist()[-1] == 2
    # Row order: direction, seed, strength. The strength-0 rows are the seeds' own w; edits touch layers 0-3 only.
    assert torch.equal(w[1], w[7]) and torch.equal(w[4], w[10]) and not torch.equal(w[1], w[4])
    assert torch.equal(w[4, 4:], w[3, 4:]) and not torch.equal(w[4, :4], w[3, :4])
    assert torch.allclose(w[2, :4] - w[1, :4], 2 * torch.from_numpy(vectors[0]).expand(4, -1), atol=1e-5)
    # The same command is up to date; other options are refused with the --fresh hint; --fresh redoes it.
    again = _cli("--network", "random:32", "--num", "3", "--layers", "0-3", "--seeds", "1,2", "--strengths", "-2,0,2",
                 "--out", str(out), "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["up_to_date"] and json.loads(again.stdout)["directions"] == doc["directions"]
    other = _cli("--network", "random:32", "--num", "2", "--out", str(out))
    assert other.exit_code == 2 and "--fresh" in other.output
    fresh = _cli("--network", "random:32", "--num", "2", "--out", str(out), "--fresh", "--json")
    assert fresh.exit_code == 0 and len(json.loads(fresh.stdout)["directions"]) == 2


def test_saved_directions_reapply_identically_and_latent_files_are_edited(tmp_path):
    first = _cli("--network", "random:32", "--num", "2", "--layers", "2-5", "--seeds", "3", "--strengths", "-1,1",
                 "--out", str(tmp_path / "a"))
    assert first.exit_code == 0, first.output
    again = _cli("--network", "random:32", "--directions", str(tmp_path / "a" / "directions.npz"), "--seeds", "3",
                 "--strengths", "-1,1", "--out", str(tmp_path / "b"))
    assert again.exit_code == 0, again.output
    for name in ("directions.npz", "edited.npz", "sheet.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    G = tiny_generator(32)
    source = torch.randn(2, G.num_ws, G.w_dim, generator=torch.Generator(device="cpu").manual_seed(0), device="cpu")
    save_latents(tmp_path / "inv.npz", source)
    res = _cli("--network", "random:32", "--directions", str(tmp_path / "a" / "directions.npz"), "--latents",
               str(tmp_path / "inv.npz"), "--strengths", "0,1", "--out", str(tmp_path / "c"))
    assert res.exit_code == 0, res.output
    w = load_latents(tmp_path / "c" / "edited.npz", G.num_ws, G.w_dim)
    assert w.shape[0] == 2 * 2 * 2 and torch.equal(w[0], source[0]) and torch.equal(w[2], source[1])
    assert _sheet_grid(tmp_path / "c" / "sheet.png", 32)[0] == 4
    edited = str(tmp_path / "c" / "edited.npz")  # the latent format: mix reads it
    mixed = runner.invoke(app, ["mix", "--network", "random:32", "--latents", edited, "--latents", edited, "--space", "w",
                                "--frames", "2", "--out", str(tmp_path / "m"), "--device", "cpu", "--quiet"])
    assert mixed.exit_code == 0 and (tmp_path / "m" / "interpolation.gif").is_file(), mixed.output


def test_classifier_cli_reports_the_probability_along_the_strengths(style_run, tmp_path):
    out = tmp_path / "pop"
    res = _cli("--network", "random:16", "--method", "classifier", "--style-model", str(style_run), "--style", "pop",
               "--samples", "32", "--strengths", "-2,0,2", "--out", str(out), "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [p["strength"] for p in doc["probability"]] == [-2, 0, 2] and doc["held_out"] == 8
    assert all(0 <= p["mean"] <= 1 for p in doc["probability"]) and 0 <= doc["directions"][0]["accuracy"] <= 1
    with np.load(out / "directions.npz", allow_pickle=False) as f:
        assert f["directions"].shape[0] == 1 and str(f["style"]) == "pop" and str(f["method"]) == "classifier"


def test_bad_inputs_exit_with_a_clear_line_and_create_nothing(style_run, tmp_path):
    out = tmp_path / "never"
    bad_style = _cli("--network", "random:16", "--method", "classifier", "--style-model", str(style_run), "--style",
                     "cubism", "--out", str(out))
    assert bad_style.exit_code == 2 and "cubism" in bad_style.output and "pop" in bad_style.output
    missing = _cli("--network", "random:16", "--method", "classifier", "--style-model", str(tmp_path / "no-run"),
                   "--style", "pop", "--out", str(out))
    assert missing.exit_code == 3 and "train-classifier" in missing.output
    no_model = _cli("--network", "random:16", "--method", "classifier", "--out", str(out))
    assert no_model.exit_code == 2 and "--style-model" in no_model.output
    too_many = _cli("--network", "random:16", "--num", "500", "--out", str(out))
    assert too_many.exit_code == 2 and "--num 500" in too_many.output
    layers = _cli("--network", "random:16", "--layers", "40", "--out", str(out))
    assert layers.exit_code == 2 and "layers" in layers.output
    (tmp_path / "junk.npz").write_bytes(b"not an npz")
    junk = _cli("--network", "random:16", "--directions", str(tmp_path / "junk.npz"), "--out", str(out))
    assert junk.exit_code == 2 and "junk.npz" in junk.output
    both = _cli("--network", "random:16", "--seeds", "1", "--latents", str(tmp_path / "junk.npz"), "--out", str(out))
    assert both.exit_code == 2
    num_unused = _cli("--network", "random:16", "--method", "classifier", "--style-model", str(style_run), "--style", "pop",
                      "--num", "3", "--out", str(out))  # an explicit flag is never silently ignored
    assert num_unused.exit_code == 2 and "--num" in num_unused.output
    assert not out.exists()


@pytest.mark.slow
def test_under_torchrun_rank_0_writes_what_one_process_writes(tmp_path):
    from device_guard import run_guarded

    def job(out: Path) -> list[str]:
        return ["directions", "--network", "random:16", "--num", "2", "--seeds", "0,1", "--strengths", "-1,1", "--device", "cpu",
                "--out", str(out), "--json"]

    one = json.loads(run_guarded(tmp_path, [job(tmp_path / "one")], nproc=1)[0]["stdout"])
    two = json.loads(run_guarded(tmp_path, [job(tmp_path / "two")], nproc=2)[0]["stdout"])
    assert len(two["directions"]) == len(one["directions"]) == 2
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    with np.load(tmp_path / "one" / "directions.npz") as a, np.load(tmp_path / "two" / "directions.npz") as b:
        np.testing.assert_array_equal(a["directions"], b["directions"])  # rank 0 alone computed it, as one process does


def test_installed_command_runs(tmp_path):
    proc = subprocess.run([STYLEKIT, "directions", "--network", "random:16", "--num", "1", "--seeds", "0",
                           "--strengths", "0,1", "--out", str(tmp_path / "d"), "--device", "cpu", "--json", "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    files = json.loads(proc.stdout)["files"]
    assert sorted(files) == ["directions", "edited", "result", "sheet"] and all(Path(f).is_file() for f in files.values())


def test_help_examples_run(tmp_path, monkeypatch):
    """Every example of `directions --help`, in order, on what the earlier ones make."""
    monkeypatch.chdir(tmp_path)
    examples = help_examples("directions")
    assert len(examples) >= 4
    for args in examples:
        extra = ["--quiet"] if args[0] == "download" else ["--quiet", "--device", "cpu"]
        res = runner.invoke(app, [*args, *extra])
        assert res.exit_code == 0, f"{args}\n{res.output}"
    assert (tmp_path / "dirs-again" / "sheet.png").is_file() and (tmp_path / "dirs-pop" / "directions.npz").is_file()
