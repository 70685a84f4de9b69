"""generate / mix / blend-layers through the CLI (CliRunner) and one real `stylekit` subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.nets.stylegan2.load import load_network, save_network
from stylekit.nets.stylegan2.tiny import tiny_generator

runner = CliRunner()


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    root = tmp_path_factory.mktemp("nets")
    a = save_network(root / "base.safetensors", G_ema=tiny_generator(32, seed=1))
    b = save_network(root / "toon.safetensors", G_ema=tiny_generator(32, seed=2))
    small = save_network(root / "small.safetensors", G_ema=tiny_generator(16, seed=3))
    cond = save_network(root / "cond.safetensors", G_ema=tiny_generator(16, seed=4, c_dim=3))
    return {"base": a, "toon": b, "small": small, "cond": cond}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_generate_writes_pngs_grid_and_latents(nets, tmp_path):
    out = tmp_path / "gen"
    res = invoke("generate", "--network", nets["base"], "--seeds", "0-2,7", "--trunc", "0.7", "--out", out, "--json", "--device", "cpu")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert len(doc["images"]) == 4 and doc["resolution"] == 32
    for s in (0, 1, 2, 7):
        assert Image.open(out / f"seed{s:04d}.png").size == (32, 32)
        with np.load(out / f"seed{s:04d}.npz") as d:
            assert d["w"].shape == (1, 8, 32)
    with Image.open(out / "grid.png") as grid:  # 32 px samples enlarged (nearest) to 128 px cells
        assert min(grid.size) >= 128
    assert (out / "grid.png").exists()
    from stylekit.data.imageset import open_image_set  # what score reads: the samples, not the grid

    assert [it.rel for it in open_image_set(out).items] == ["seed0000.png", "seed0001.png", "seed0002.png", "seed0007.png"]
    with np.load(out / "latents.npz") as d:
        assert d["w"].shape == (4, 8, 32) and list(d["seeds"]) == [0, 1, 2, 7]
    # Re-running gives the same pixels (const noise, seeds -> fixed z).
    again = tmp_path / "gen2"
    assert invoke("generate", "--network", nets["base"], "--seeds", "7", "--trunc", "0.7", "--out", again, "--no-grid").exit_code == 0
    assert np.array_equal(np.asarray(Image.open(out / "seed0007.png")), np.asarray(Image.open(again / "seed0007.png")))
    assert not (again / "grid.png").exists()
    dup = invoke("generate", "--network", nets["base"], "--seeds", "7,7,1", "--out", tmp_path / "dup", "--json", "--no-grid")
    assert dup.exit_code == 0 and "repeats 1 seed" in dup.stderr
    assert [Path(p).name for p in json.loads(dup.stdout)["images"]] == ["seed0007.png", "seed0001.png"]


def test_generate_trunc_zero_same_image_and_conditional(nets, tmp_path):
    res = invoke("generate", "--network", nets["small"], "--seeds", "1,2", "--trunc", "0", "--out", tmp_path / "z")
    assert res.exit_code == 0, res.output
    a, b = (np.asarray(Image.open(tmp_path / "z" / f"seed000{i}.png")).astype(int) for i in (1, 2))
    assert np.abs(a - b).max() <= 1
    res = invoke("generate", "--network", nets["cond"], "--seeds", "1", "--out", tmp_path / "c")
    assert res.exit_code == 2 and "--class" in res.output
    assert invoke("generate", "--network", nets["cond"], "--seeds", "1", "--class", "2", "--out", tmp_path / "c").exit_code == 0
    assert invoke("generate", "--network", nets["cond"], "--seeds", "1", "--class", "5", "--out", tmp_path / "c").exit_code == 2


@pytest.mark.parametrize("args,needle", [
    (["--seeds", "5-1"], "--seeds"),
    (["--seeds", "1", "--noise-mode", "loud"], "noise-mode"),
    (["--seeds", "1", "--trunc-cutoff", "99"], "trunc-cutoff"),
])
def test_generate_bad_options_exit_2(nets, tmp_path, args, needle):
    res = invoke("generate", "--network", nets["small"], "--out", tmp_path / "x", *args)
    assert res.exit_code == 2 and needle in res.output


def test_bad_network_files_exit_2(tmp_path):
    junk = tmp_path / "net.pkl"
    junk.write_bytes(b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93.")
    res = invoke("generate", "--network", junk, "--seeds", "0", "--out", tmp_path / "o")
    assert res.exit_code == 2 and "refused" in res.output
    res = invoke("generate", "--network", tmp_path / "nope.pkl", "--seeds", "0", "--out", tmp_path / "o")
    assert res.exit_code == 2
    classifier_run = tmp_path / "runs" / "style"
    classifier_run.mkdir(parents=True)
    (classifier_run / "style_model.safetensors").write_bytes(b"{}")
    res = invoke("generate", "--network", classifier_run, "--seeds", "0", "--out", tmp_path / "o")
    assert res.exit_code == 2 and "is a train-classifier run" in res.output and "--style-model" in res.output



def test_amp_generate_and_mix_close_to_fp32(nets, tmp_path):
    """--amp (bf16 autocast on bf16-native CPUs, fp32 with a warning elsewhere) writes the same files,
    with pixels within a few 1/255 steps of the fp32 images."""
    from stylekit.device import amp_dtype

    native = amp_dtype("cpu") is not None
    for cmd, extra, name in (("generate", ["--seeds", "0-3", "--no-grid"], "seed0002.png"),
                             ("mix", ["--rows", "1,2", "--cols", "3"], "2-3.png")):
        fp32, bf16 = tmp_path / f"{cmd}32", tmp_path / f"{cmd}16"
        assert invoke(cmd, "--network", nets["base"], *extra, "--out", fp32, "--device", "cpu").exit_code == 0
        res = invoke(cmd, "--network", nets["base"], *extra, "--out", bf16, "--device", "cpu", "--amp")
        assert res.exit_code == 0, res.output
        assert native or "no native low-precision type" in res.stderr
        assert sorted(p.name for p in fp32.iterdir()) == sorted(p.name for p in bf16.iterdir())
        a = np.asarray(Image.open(fp32 / name)).astype(int)
        b = np.asarray(Image.open(bf16 / name)).astype(int)
        assert np.abs(a - b).max() <= 12 and np.abs(a - b).mean() < 2.0
        if not native:
            assert np.array_equal(a, b)

def test_mix_grid_and_pairs(nets, tmp_path):
    out = tmp_path / "mix"
    res = invoke("mix", "--network", nets["base"], "--rows", "85,100", "--cols", "55,821", "--styles", "0-3", "--out", out, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["styles"] == [0, 1, 2, 3]
    assert Image.open(out / "grid.png").size == (32 * 3, 32 * 3)
    for name in ("85-55", "85-821", "100-55", "100-821", "85-85", "821-821"):
        assert (out / f"{name}.png").exists(), name
    res = invoke("mix", "--network", nets["base"], "--rows", "1", "--cols", "2", "--styles", "0-20", "--out", out)
    assert res.exit_code == 2 and "--styles" in res.output
    assert invoke("mix", "--network", nets["base"], "--rows", "1", "--out", out).exit_code == 2


def test_mix_all_styles_grid_cell_equals_column_seed(nets, tmp_path):
    out = tmp_path / "m"
    assert invoke("mix", "--network", nets["small"], "--rows", "3", "--cols", "4", "--styles", "0-5", "--out", out).exit_code == 0
    cell = np.asarray(Image.open(out / "3-4.png")).astype(int)
    col = np.asarray(Image.open(out / "4-4.png")).astype(int)
    assert np.abs(cell - col).max() <= 1


def test_interpolation_writes_frames_and_gif(nets, tmp_path):
    out = tmp_path / "interp"
    res = invoke("mix", "--network", nets["small"], "--interpolate", "1,2", "--space", "w", "--frames", "4", "--out", out)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (out / "frames").iterdir()) == [f"frame000{i}.png" for i in range(4)]
    gif = Image.open(out / "interpolation.gif")
    assert gif.n_frames == 4
    # Between latent files written by generate.
    gen = tmp_path / "gen"
    assert invoke("generate", "--network", nets["small"], "--seeds", "1,2", "--out", gen).exit_code == 0
    res = invoke("mix", "--network", nets["small"], "--latents", gen / "seed0001.npz", "--latents", gen / "seed0002.npz",
                 "--space", "w", "--frames", "3", "--out", tmp_path / "lat")
    assert res.exit_code == 0, res.output
    first = np.asarray(Image.open(tmp_path / "lat" / "frames" / "frame0000.png")).astype(int)
    assert np.abs(first - np.asarray(Image.open(gen / "seed0001.png")).astype(int)).max() <= 1
    assert invoke("mix", "--network", nets["small"], "--interpolate", "1,2,3", "--out", out).exit_code == 2
    assert invoke("mix", "--network", nets["small"], "--latents", gen / "seed0001.npz", "--out", out).exit_code == 2


def test_blend_layers_writes_loadable_network_and_preview(nets, tmp_path):
    out = tmp_path / "toonify.safetensors"
    res = invoke("blend-layers", "--base", nets["base"], "--finetuned", nets["toon"], "--swap-res", "16",
                 "--blend-width", "1", "--out", out, "--preview-seeds", "0-2", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["structure"] == "finetuned" and 0 < doc["weights"]["b16.conv0"] < 1
    net = load_network(out)
    assert net.generator.img_resolution == 32 and net.extra["blend"]["swap_res"] == 16
    with Image.open(tmp_path / "toonify.preview.png") as preview:  # base | fine-tuned | blended, 32 px shown at 128
        assert preview.size[0] > 3 * 128 and preview.size[1] > 3 * 128
    res = invoke("blend-layers", "--base", nets["base"], "--finetuned", nets["small"], "--out", tmp_path / "x.safetensors")
    assert res.exit_code == 2 and "synthesis.b32" in res.output
    res = invoke("blend-layers", "--base", nets["base"], "--finetuned", nets["toon"], "--out", tmp_path / "x.pkl")
    assert res.exit_code == 2
    res = invoke("blend-layers", "--base", nets["base"], "--finetuned", nets["toon"], "--out", f"{tmp_path / 'newdir'}/",
                 "--preview-seeds", "")  # a trailing slash names a folder
    assert res.exit_code == 0, res.output
    assert (tmp_path / "newdir" / "blended.safetensors").is_file()


def test_installed_stylekit_generate_subprocess(nets, tmp_path):
    exe = Path(sys.executable).parent / "stylekit"
    env = {**os.environ, "STYLEKIT_OFFLINE": "1"}
    out = tmp_path / "sub"
    proc = subprocess.run([str(exe), "generate", "--network", str(nets["small"]), "--seeds", "0-1", "--out", str(out), "--json", "--quiet"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["images"] == [str(out / "seed0000.png"), str(out / "seed0001.png")]
    proc = subprocess.run([str(exe), "blend-layers", "--base", str(nets["base"]), "--finetuned", str(nets["small"]), "--out", str(tmp_path / "b.safetensors")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "error:" in proc.stderr and "Traceback" not in proc.stderr


def _latent_seeds(path):
    with np.load(path) as d:
        return list(d["seeds"])


def test_generate_rerun_skips_the_same_run_and_refuses_another(nets, tmp_path):
    """The one rerun rule: same options -> up to date (nothing rewritten); other options -> exit 2 naming
    --fresh, the folder untouched; --fresh -> only the new run's files (never seeds of two runs side by side)."""
    out = tmp_path / "gen"
    first = ["generate", "--network", nets["small"], "--seeds", "0-3", "--trunc", "0.5", "--out", out, "--json"]
    assert invoke(*first).exit_code == 0
    mtime = (out / "seed0000.png").stat().st_mtime_ns
    again = invoke(*first)
    assert again.exit_code == 0 and json.loads(again.stdout)["up_to_date"] is True and "up to date" in again.stderr
    assert (out / "seed0000.png").stat().st_mtime_ns == mtime
    other = invoke("generate", "--network", nets["small"], "--seeds", "4-12", "--trunc", "0.7", "--out", out)
    assert other.exit_code == 2 and "--fresh" in other.output and "--seeds" in other.output
    assert not (out / "seed0004.png").exists() and _latent_seeds(out / "latents.npz") == [0, 1, 2, 3]
    fresh = invoke("generate", "--network", nets["small"], "--seeds", "4-12", "--trunc", "0.7", "--out", out, "--fresh")
    assert fresh.exit_code == 0, fresh.output
    pngs = sorted(p.name for p in out.glob("seed*.png"))
    assert pngs == [f"seed{s:04d}.png" for s in range(4, 13)] and _latent_seeds(out / "latents.npz") == list(range(4, 13))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("kept")
    res = invoke("generate", "--network", nets["small"], "--seeds", "0", "--out", tmp_path / "mine")
    assert res.exit_code == 2 and "no record" in res.output and "--fresh" in res.output


def test_mix_and_blend_rerun_rule(nets, tmp_path):
    mix = ["mix", "--network", nets["base"], "--rows", "1,2", "--cols", "3", "--out", tmp_path / "m", "--json"]
    assert invoke(*mix).exit_code == 0
    res = invoke(*mix)
    assert res.exit_code == 0 and json.loads(res.stdout)["up_to_date"] is True and len(json.loads(res.stdout)["images"]) == 5
    res = invoke(*mix[:-1], "--styles", "0")
    assert res.exit_code == 2 and "--styles" in res.output and "--fresh" in res.output
    out = tmp_path / "b.safetensors"
    blend = ["blend-layers", "--base", nets["base"], "--finetuned", nets["toon"], "--preview-seeds", "", "--out", out, "--json"]
    assert invoke(*blend, "--swap-res", "16").exit_code == 0
    res = invoke(*blend, "--swap-res", "16")
    assert res.exit_code == 0 and json.loads(res.stdout)["up_to_date"] is True
    before = out.stat().st_mtime_ns
    res = invoke(*blend, "--swap-res", "8")
    assert res.exit_code == 2 and "--fresh" in res.output and out.stat().st_mtime_ns == before
    assert invoke(*blend, "--swap-res", "8", "--fresh").exit_code == 0
    assert load_network(out).extra["blend"]["swap_res"] == 8


@pytest.mark.parametrize("args", [
    ["generate", "--seeds", "3-0"],
    ["generate", "--seeds", "1", "--trunc-cutoff", "99"],  # checked against the network, before --out exists
    ["generate", "--seeds", "1", "--batch", "0"],
    ["mix", "--rows", "1"],
    ["mix", "--rows", "1", "--cols", "2", "--styles", "0-40"],
    ["mix", "--interpolate", "1,2", "--frames", "1"],
    ["mix", "--interpolate", "1,2", "--rows", "3"],
])
def test_a_refused_run_leaves_no_out_folder(nets, tmp_path, args):
    out = tmp_path / "never"
    res = invoke(args[0], "--network", nets["small"], *args[1:], "--out", out)
    assert res.exit_code == 2, res.output
    assert not out.exists()


def test_blend_refused_leaves_no_out_folder(nets, tmp_path):
    for extra in (["--swap-res", "12"], ["--swap-res", "64"], ["--metrics", "fid"], ["--swap-res", "8,8"]):
        res = invoke("blend-layers", "--base", nets["base"], "--finetuned", nets["toon"], *extra, "--out", f"{tmp_path / 'never'}/")
        assert res.exit_code == 2, (extra, res.output)
        assert not (tmp_path / "never").exists()


def test_random_network_stand_in_everywhere(tmp_path):
    """--network/--base/--finetuned random:RES: a seeded random-init generator, labelled in the output."""
    res = invoke("generate", "--network", "random:16", "--seeds", "0-1", "--out", tmp_path / "g", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["resolution"] == 16 and "stand-in" in doc["standins"][0] and "stand-in" in res.stderr
    again = invoke("generate", "--network", "random:16", "--seeds", "0-1", "--out", tmp_path / "g2", "--no-grid")
    assert again.exit_code == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "g" / "seed0001.png")), np.asarray(Image.open(tmp_path / "g2" / "seed0001.png")))
    res = invoke("mix", "--network", "random:16", "--interpolate", "1,2", "--frames", "2", "--out", tmp_path / "i", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["standins"]
    res = invoke("blend-layers", "--base", "random:16", "--finetuned", "random:16", "--swap-res", "8", "--out",
                 tmp_path / "b.safetensors", "--json")
    assert res.exit_code == 0 and len(json.loads(res.stdout)["standins"]) == 2
    for bad in ("random:15", "random:x", "random:4096"):
        res = invoke("generate", "--network", bad, "--seeds", "0", "--out", tmp_path / "bad")
        assert res.exit_code == 2 and "random:RES" in res.output and not (tmp_path / "bad").exists()
