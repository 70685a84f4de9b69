"""`stylekit transfer`: behaviour (numbers, sizes, files), options, batch mode and bad inputs.

Offline: a seeded random-init VGG19 saved to a temp file and passed with --vgg-weights. Most runs use
shallow layers at 32 px so the whole file stays fast on 2 cores; the convergence test uses the
Gatys layers at 64 px.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.configs.transfer import TransferConfig
from stylekit.errors import BadInput
from stylekit.transfer import run_transfer
from stylekit.transfer.colour import chroma_planes
from stylekit.transfer.losses import content_cosine, content_mse
from tests.cover.examples import help_examples, shrink

FAST = ["--style-layers", "relu1_1,relu2_1", "--content-layers", "relu2_1", "--no-amp", "--device", "cpu"]
runner = CliRunner()


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    from stylekit.nets.vgg import VGGFeatures

    root = tmp_path_factory.mktemp("nst")
    body = VGGFeatures("vgg19", ["pool5"], weights=None, seed=0).body.state_dict()
    weights = root / "vgg19-random.pth"
    torch.save({f"features.{k}": v for k, v in body.items()}, weights)
    yy, xx = np.mgrid[0:48, 0:64]
    content = np.stack([xx * 4, yy * 5, ((xx // 8 + yy // 8) % 2) * 200 + 20], -1).clip(0, 255).astype(np.uint8)
    Image.fromarray(content).save(root / "content.png")  # 64x48, smooth ramps + checks
    sy, sx = np.mgrid[0:64, 0:64]
    stripes = np.stack([((sx + sy) // 4 % 2) * 255, np.full_like(sx, 60), (sx // 4 % 2) * 255], -1).astype(np.uint8)
    Image.fromarray(stripes).save(root / "style.png")
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / "noise.png")
    return {"root": root, "weights": weights, "content": root / "content.png", "style": root / "style.png", "noise": root / "noise.png"}


def cli(args, **kw):
    result = runner.invoke(app, ["transfer", *map(str, args)], **kw)
    return result


def fast_run(assets, out, *extra, size=32, steps=3, styles=None):
    styles = styles or [assets["style"]]
    return cli([assets["content"], *styles, "--out", out, "--vgg-weights", assets["weights"], "--size", size, "--steps", steps, *FAST, *extra, "--json", "-q"])


def test_style_loss_falls_at_64px(assets, tmp_path):
    cfg = TransferConfig(
        content=assets["content"], styles=[assets["style"]], out=tmp_path / "o.png", size=64, steps=[20],
        content_weight=0.0, style_weight=1e6, tv_weight=0.0, init="content", vgg_weights=str(assets["weights"]), device="cpu",
    )
    stage = run_transfer(cfg).items[0]["stages"][0]
    assert stage["size"] == [64, 48] and stage["steps"] == 20
    assert stage["loss_end"]["style"] < 0.1 * stage["loss_start"]["style"]


def test_output_size_type_and_report(assets, tmp_path):
    out = tmp_path / "sub" / "out.png"
    res = fast_run(assets, out)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    with Image.open(out) as img:
        assert img.format == "PNG" and img.mode == "RGB" and img.size == (32, 24)
    item = doc["items"][0]
    assert doc["done"] == 1 and item["status"] == "done" and item["steps"] == 3
    assert set(item["stages"][0]["loss_end"]) == {"content", "style", "tv", "total"}
    assert "L-BFGS iteration" in doc["step_unit"] and doc["run"]["precision"] == "fp32"
    # an existing folder as --out gets <stem>.png
    res = fast_run(assets, tmp_path, "--optimizer", "adam")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "content.png").is_file()
    res = fast_run(assets, f"{tmp_path / 'newdir'}/", "--optimizer", "adam")  # a trailing slash names a new folder
    assert res.exit_code == 0, res.output
    assert (tmp_path / "newdir" / "content.png").is_file()


def test_seed_determinism(assets, tmp_path):
    outs = [tmp_path / f"{name}.png" for name in ("a", "b", "c")]
    for out, seed in zip(outs, (3, 3, 4), strict=True):
        assert fast_run(assets, out, "--seed", seed, "--init", "random").exit_code == 0
    a, b, c = (np.asarray(Image.open(o)) for o in outs)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_original_colors_keep_content_chroma_exactly(assets, tmp_path):
    out = tmp_path / "oc.png"
    res = fast_run(assets, out, "--original-colors", "--init", "random", size=64, steps=4)
    assert res.exit_code == 0, res.output
    got = np.asarray(Image.open(out))
    content = np.asarray(Image.open(assets["content"]))
    cb_o, cr_o = chroma_planes(got)
    cb_c, cr_c = chroma_planes(content)
    assert np.abs(cb_o - cb_c).max() < 1e-9 and np.abs(cr_o - cr_c).max() < 1e-9
    assert not np.array_equal(got, content)  # the luminance did change


def test_blend_weights_one_zero_equal_single_style(assets, tmp_path):
    single, blend = tmp_path / "single.png", tmp_path / "blend.png"
    assert fast_run(assets, single).exit_code == 0
    res = fast_run(assets, blend, "--style-blend-weights", "1,0", styles=[assets["style"], assets["noise"]])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["run"]["style_blend_weights"] == [1.0, 0.0]
    assert np.array_equal(np.asarray(Image.open(single)), np.asarray(Image.open(blend)))
    bad = fast_run(assets, blend, "--style-blend-weights", "1", styles=[assets["style"], assets["noise"]])
    assert bad.exit_code == 2 and "one weight per STYLE" in bad.stderr


def test_multires_stages_and_frames(assets, tmp_path):
    out = tmp_path / "mr.png"
    res = cli([assets["content"], assets["style"], "--out", out, "--vgg-weights", assets["weights"], "--multires", "32,64",
               "--steps", "3,2", "--save-every", "2", *FAST, "--json", "-q"])
    assert res.exit_code == 0, res.output
    stages = json.loads(res.stdout)["items"][0]["stages"]
    assert [s["size"] for s in stages] == [[32, 24], [64, 48]] and [s["steps"] for s in stages] == [3, 2]
    assert Image.open(out).size == (64, 48)
    frames = sorted(p.name for p in (tmp_path / "mr_frames").iterdir())
    assert frames == ["stage1_00002.png", "stage2_00002.png"]
    res = cli([assets["content"], assets["style"], "--out", out, "--vgg-weights", assets["weights"], "--multires", "32,64",
               "--steps", "1,2,3", *FAST])
    assert res.exit_code == 2 and "--steps has 3 values but there are 2 stages" in res.stderr
    res = fast_run(assets, out, "--multires", "32,64")  # --size too: one of them must go, never silently
    assert res.exit_code == 2 and "--multires" in res.stderr and "--size" in res.stderr


def test_folder_batch_skips_existing_and_reports_failures(assets, tmp_path):
    src, out = tmp_path / "photos", tmp_path / "styled"
    (src / "deep").mkdir(parents=True)
    (out / "deep").mkdir(parents=True)
    Image.open(assets["content"]).convert("L").save(src / "grey.png")                # grayscale
    Image.open(assets["content"]).convert("RGBA").save(src / "deep" / "alpha.png")   # alpha
    Image.open(assets["content"]).convert("CMYK").save(src / "cmyk.jpg")             # CMYK JPEG
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (out / "deep" / "alpha.png").write_bytes(b"existing")
    res = cli([src, assets["style"], "--out", out, "--vgg-weights", assets["weights"], "--size", 32, "--steps", 2, *FAST, "--json", "-q"])
    assert res.exit_code == 2 and "alpha.png" in res.output and "--fresh" in res.output  # no record of what made it
    assert (out / "deep" / "alpha.png").read_bytes() == b"existing" and not (out / "grey.png").exists()
    (out / "deep" / "alpha.png").unlink()
    res = cli([src, assets["style"], "--out", out, "--vgg-weights", assets["weights"], "--size", 32, "--steps", 2, *FAST, "--json", "-q"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    status = {Path(i["content"]).name: i["status"] for i in doc["items"]}
    assert status == {"grey.png": "done", "cmyk.jpg": "done", "alpha.png": "done", "broken.png": "failed"}
    assert Image.open(out / "grey.png").mode == "RGB" and (out / "cmyk.png").is_file()
    # re-run: every good output exists -> skipped, the broken file is reported again, still exit 0
    res = cli([src, assets["style"], "--out", out, "--vgg-weights", assets["weights"], "--size", 32, "--steps", 2, *FAST, "--json", "-q"])
    assert res.exit_code == 0 and json.loads(res.stdout)["skipped"] == 3
    # a folder where nothing can be stylised fails
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"garbage")
    res = cli([bad, assets["style"], "--out", tmp_path / "o2", "--vgg-weights", assets["weights"], "--size", 32, *FAST])
    assert res.exit_code == 2 and "all 1 content images failed" in res.stderr
    res = cli([src, assets["style"], "--out", src / "inside", "--vgg-weights", assets["weights"], *FAST])
    assert res.exit_code == 2 and "inside the CONTENT folder" in res.stderr


def test_folder_rerun_with_other_style_or_options_never_keeps_stale_outputs(assets, tmp_path):
    src, out = tmp_path / "photos", tmp_path / "styled"
    src.mkdir()
    for name in ("a.png", "b.png"):
        Image.open(assets["content"]).save(src / name)

    def run(style=assets["style"], steps=2, fresh=False):
        return run_transfer(TransferConfig(content=src, styles=[style], out=out, size=32, steps=[steps], vgg_weights=str(assets["weights"]),
                                           style_layers=["relu1_1"], content_layers=["relu1_1"],
                                           device="cpu", fresh=fresh))

    assert run().done == 2
    again = run()
    assert again.done == 0 and again.skipped == 2
    def recipes():
        return {k: v["recipe"] for k, v in json.loads((out / "stylekit-outputs.json").read_text())["outputs"].items()}

    first = recipes()
    before = (out / "a.png").stat().st_mtime_ns
    for changed in ({"style": assets["noise"]}, {"steps": 3}):
        with pytest.raises(BadInput, match="other inputs or options") as err:
            run(**changed)
        assert "--fresh" in err.value.hint and (out / "a.png").stat().st_mtime_ns == before  # refused before any work
    redone = run(style=assets["noise"], fresh=True)
    assert redone.done == 2 and recipes()["a.png"] != first["a.png"]
    Image.open(assets["style"]).resize((64, 48)).save(src / "b.png")  # an edited content image is redone alone
    edited = run(style=assets["noise"])
    assert edited.done == 1 and edited.skipped == 1 and edited.items[-1]["content"].endswith("b.png")
    record = json.loads((out / "stylekit-outputs.json").read_text())
    assert set(record["outputs"]) == {"a.png", "b.png"}


def test_grey_alpha_cmyk_style_and_content_files(assets, tmp_path):
    style = tmp_path / "style_cmyk.tif"
    Image.open(assets["style"]).convert("CMYK").save(style)
    content = tmp_path / "la.png"
    Image.open(assets["content"]).convert("LA").save(content)
    res = cli([content, style, "--out", tmp_path / "o.png", "--vgg-weights", assets["weights"], "--size", 32, "--steps", 2, *FAST])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("size", ["0", "100000"])
def test_absurd_size_refused(assets, tmp_path, size):
    res = fast_run(assets, tmp_path / "o.png", size=size)
    assert res.exit_code == 2 and f"--size must be >= 16, <= 4096, got {size}" in res.stderr
    assert not (tmp_path / "o.png").exists()


def test_unknown_layer_lists_valid_names(assets, tmp_path):
    res = cli([assets["content"], assets["style"], "--out", tmp_path / "o.png", "--vgg-weights", assets["weights"], "--style-layers", "relu1_1,relu9_9"])
    assert res.exit_code == 2
    assert "relu9_9" in res.stderr and "relu5_4" in res.stderr and "conv1_1" in res.stderr


def test_bad_inputs(assets, tmp_path):
    w = ["--vgg-weights", assets["weights"], *FAST]
    res = cli([tmp_path / "nope.png", assets["style"], "--out", tmp_path / "o.png", *w])
    assert res.exit_code == 2 and "nope.png does not exist" in res.stderr
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    res = cli([corrupt, assets["style"], "--out", tmp_path / "o.png", *w])
    assert res.exit_code == 2 and "corrupt.jpg" in res.stderr
    res = cli([assets["content"], corrupt, "--out", tmp_path / "o.png", *w])
    assert res.exit_code == 2 and "corrupt.jpg" in res.stderr
    res = cli([assets["content"], assets["style"], "--out", tmp_path / "o.txt", *w])
    assert res.exit_code == 2 and "no image extension" in res.stderr
    res = cli([assets["content"], assets["style"], "--out", tmp_path / "o.png", "--vgg-weights", tmp_path / "none.pth"])
    assert res.exit_code == 2 and "does not exist" in res.stderr
    res = cli([assets["content"], assets["style"], "--out", tmp_path / "o.png", *w, "--optimizer", "sgd"])
    assert res.exit_code == 2 and "lbfgs" in res.stderr
    res = cli([assets["content"], assets["style"], "--out", tmp_path / "o.png", *w, "--method", "nope"])
    assert res.exit_code == 2 and "gatys" in res.stderr
    res = cli([assets["content"], assets["style"], "--out", tmp_path / "o.png", *w, "--layer-weights", "1,2,3"])
    assert res.exit_code == 2 and "--layer-weights" in res.stderr
    assert not (tmp_path / "o.png").exists()


def test_cosine_content_loss_matches_mse_when_norms_agree():
    torch.manual_seed(0)
    target = torch.randn(1, 8, 5, 5)
    direction = torch.randn(1, 8, 5, 5)
    feat = direction / direction.norm(dim=1, keepdim=True) * target.norm(dim=1, keepdim=True)
    assert torch.allclose(content_cosine(feat, target), content_mse(feat, target), rtol=1e-4)
    assert content_cosine(target * 3.0, target).abs() < 1e-5  # magnitude alone costs nothing
    assert content_mse(target * 3.0, target) > 1.0


def test_cosine_and_avg_pool_and_init_path_run(assets, tmp_path):
    res = fast_run(assets, tmp_path / "o.png", "--content-loss", "cosine", "--pooling", "avg", "--init", assets["noise"], "--arch", "vgg19")
    assert res.exit_code == 0, res.output


def test_missing_registry_weights_offline_exit_3(assets, tmp_path):
    pytest.importorskip("stylekit.weights")
    res = cli([assets["content"], assets["style"], "--out", tmp_path / "o.png", *FAST])
    assert res.exit_code == 3 and "stylekit download vgg19" in res.stderr


def test_real_subprocess(assets, tmp_path):
    exe = Path(sys.executable).parent / "stylekit"
    out = tmp_path / "sp.png"
    env = {**os.environ, "STYLEKIT_OFFLINE": "1"}
    proc = subprocess.run(
        [str(exe), "transfer", str(assets["content"]), str(assets["style"]), "--out", str(out), "--vgg-weights", str(assets["weights"]),
         "--size", "32", "--steps", "2", *FAST, "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["items"][0]["output"] == str(out) and out.is_file()


# ------------------------------------------------------------------------------------- edge rules


def test_single_file_rerun_skips_up_to_date_and_refuses_other_options(assets, tmp_path):
    out = tmp_path / "o.png"
    assert fast_run(assets, out).exit_code == 0
    before = out.stat().st_mtime_ns
    again = fast_run(assets, out)
    assert again.exit_code == 0, again.output
    doc = json.loads(again.stdout)
    assert doc["done"] == 0 and doc["skipped"] == 1 and doc["items"][0]["reason"] == "up to date"
    assert out.stat().st_mtime_ns == before
    other = fast_run(assets, out, steps=4)  # another recipe: never silently redone or kept
    assert other.exit_code == 2 and "--fresh" in other.stderr and out.stat().st_mtime_ns == before
    fresh = fast_run(assets, out, "--fresh", steps=4)
    assert fresh.exit_code == 0 and json.loads(fresh.stdout)["done"] == 1
    mine = tmp_path / "mine.png"  # a file stylekit did not make is never overwritten without --fresh
    Image.new("RGB", (8, 8)).save(mine)
    res = fast_run(assets, mine)
    assert res.exit_code == 2 and "--fresh" in res.stderr and Image.open(mine).size == (8, 8)


def test_vgg_weights_random_is_a_labelled_standin(assets, tmp_path):
    res = cli([assets["content"], assets["style"], "--out", tmp_path / "o.png", "--vgg-weights", "random", "--size", 32,
               "--steps", 2, *FAST, "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert "stand-in" in doc["standin"] and "stand-in" in res.stderr and doc["run"]["weights"] == "random(seed=0)"
    assert Image.open(tmp_path / "o.png").size == (32, 24)


def test_old_option_names_are_gone(assets, tmp_path):
    for args in (["--weights", assets["weights"]], ["--precision", "fp32"]):
        res = cli([assets["content"], assets["style"], "--out", tmp_path / "o.png", *args])
        assert res.exit_code == 2 and "No such option" in res.output


def test_failed_checks_leave_no_folder_and_busy_comes_first(assets, tmp_path):
    new = tmp_path / "new"
    base = [assets["content"], assets["style"]]
    w = ["--vgg-weights", assets["weights"], *FAST]
    for args, code in (([*base, "--out", new / "o.png", *w, "--size", "8"], 2),
                       ([*base, "--out", new / "o.png", *FAST], 3),  # registry vgg19, offline
                       ([*base, "--out", new / "o.png", *FAST, "--vgg-weights", tmp_path / "none.pth"], 2),
                       ([*base, "--out", new / "o.png", *w, "--init", tmp_path / "none.png"], 2),
                       ([*base, "--out", new / "o.png", *w, "--content-layers", "relu9_9"], 2),
                       ([*base, "--out", new / "o.png", "--vgg-weights", "random", "--amp", "--device", "cpu"], 2),
                       ([*base, "--out", new / "o.png", *w, "--model", tmp_path], 2),  # --model without --method pix2pix
                       ([tmp_path / "photos", assets["style"], "--out", f"{new}/", *w], 2)):
        res = cli(args)
        assert res.exit_code == code, (args, res.output)
        assert not new.exists(), f"{args} left {new} behind"
    from stylekit.io.rundir import DirLock

    new.mkdir()
    lock = DirLock(new)
    lock.acquire()
    try:
        res = cli([*base, "--out", new / "o.png", *w, "--size", 32, "--steps", 2])
    finally:
        lock.release()
    assert res.exit_code == 75 and not (new / "o.png").exists()


def test_help_examples_run(tmp_path, monkeypatch):
    """Every example of `transfer --help`, in order, on the toy set the first one makes (sizes and steps shrunk)."""
    monkeypatch.chdir(tmp_path)
    for args in help_examples("transfer"):
        args = shrink(args, {"--size": "32", "--steps": "2", "--multires": "16,32", "--epochs": "1"})
        if args[0] == "transfer" and "--method" not in args:
            args += [] if "--steps" in args else ["--steps", "2"]
            args += [] if "--size" in args or "--multires" in args else ["--size", "32"]
            if "--multires" in args:
                args[args.index("--steps") + 1] = "2,1"
        if args[0] == "download":
            args += ["--size", "32"]  # the later value wins
        elif args[0] == "train-pix2pix":
            args += ["--ngf", "4", "--ndf", "4", "--n-layers-d", "1", "--style-dim", "8", "--samples", "1", "--val-max", "2"]
        res = runner.invoke(app, [*args, "--quiet", *(["--device", "cpu"] if args[0] != "download" else [])])
        assert res.exit_code == 0, f"{args}\n{res.output}"
    assert (tmp_path / "results" / "index.html").is_file() and (tmp_path / "big.png").is_file()
