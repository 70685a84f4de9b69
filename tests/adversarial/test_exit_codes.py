"""Bad input is exit 2 with one line naming the option or file (issue 16, items 10 and 11).

Every case here used to end in exit 1 (a traceback-class failure), a nonsense result with exit 0, or a
MemoryError. The checks live in the config dataclasses (stylekit/checks.py), so Python callers get the
same errors; these tests go through the CLI.
"""

import json

import pytest
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.nets.stylegan2.load import save_network
from stylekit.nets.stylegan2.tiny import tiny_generator

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_bad_input(result, *needles):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("assets")
    net = save_network(root / "net16.safetensors", G_ema=tiny_generator(16, seed=1))
    images = root / "images"
    for label in ("a", "b"):
        (images / label).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (32, 32), (40 * i, 100 if label == "a" else 10, 7)).save(images / label / f"{i}.png")
    text = root / "latent.npz"
    text.write_text("not a zip\n")
    return {"root": root, "net": net, "images": images, "notzip": text}


@pytest.mark.parametrize("trunc", ["nan", "inf", "-inf"])
def test_trunc_must_be_finite(assets, tmp_path, trunc):
    for cmd in (["generate", "--seeds", "0"], ["mix", "--rows", "1", "--cols", "2"]):
        assert_bad_input(invoke(*cmd, "--network", assets["net"], "--trunc", trunc, "--out", tmp_path / "o"), "--trunc")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("fps", ["0", "nan", "-5"])
def test_mix_fps_is_checked_before_rendering(assets, tmp_path, fps):
    out = tmp_path / "interp"
    assert_bad_input(invoke("mix", "--network", assets["net"], "--interpolate", "1,2", "--fps", fps, "--out", out), "--fps")
    assert not (out / "frames").exists()


def test_mix_latents_that_are_not_npz(assets, tmp_path):
    result = invoke("mix", "--network", assets["net"], "--latents", assets["notzip"], "--latents", assets["notzip"],
                    "--space", "w", "--out", tmp_path / "o")
    assert_bad_input(result, str(assets["notzip"]))


@pytest.mark.parametrize("args", [["--batch", "0"], ["--trunc-cutoff", "-1"]])
def test_generate_ranges(assets, tmp_path, args):
    assert_bad_input(invoke("generate", "--network", assets["net"], "--seeds", "0", *args, "--out", tmp_path / "o"), args[0])


def test_requests_that_cannot_fit_are_refused_up_front(assets, tmp_path):
    result = invoke("generate", "--network", assets["net"], "--seeds", "0-999999999", "--out", tmp_path / "o")
    assert_bad_input(result, "--seeds", "1,000,000,000")
    result = invoke("prepare", assets["images"], tmp_path / "p", "--size", "100000")
    assert_bad_input(result, "--size", "<= 8192", "100000")  # the declared bound, before any memory estimate
    assert not (tmp_path / "p").exists()


def test_blend_layers_swap_res_above_the_network_and_unwritable_out(assets, tmp_path):
    net = assets["net"]
    result = invoke("blend-layers", "--base", net, "--finetuned", net, "--swap-res", "4096", "--out", tmp_path / "b.safetensors")
    assert_bad_input(result, "--swap-res 4096", "16")
    assert_bad_input(invoke("blend-layers", "--base", net, "--finetuned", net, "--swap-res", "12", "--out", tmp_path / "b.safetensors"),
                     "power of two")
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    result = invoke("blend-layers", "--base", net, "--finetuned", net, "--swap-res", "8", "--out", blocker / "b.safetensors")
    assert_bad_input(result, str(blocker))


@pytest.mark.parametrize(("args", "needle"), [
    (["--kid-subsets", "0"], "--kid-subsets"), (["--kid-subset-size", "1"], "--kid-subset-size"),
    (["--workers", "-1"], "--workers"), (["--batch", "0"], "--batch"),
])
def test_score_ranges(assets, args, needle):
    images = assets["images"]
    assert_bad_input(invoke("score", images / "a", images / "b", "--metrics", "kid", *args), needle)


@pytest.mark.parametrize(("args", "needle"), [
    (["--size", "0"], "--size"), (["--per-class", "0"], "--per-class"), (["--lr", "nan"], "--lr"),
    (["--batch", "0"], "--batch"), (["--workers", "-1"], "--workers"), (["--epochs", "0"], "--epochs"),
])
def test_train_classifier_ranges(assets, tmp_path, args, needle):
    out = tmp_path / "run"
    assert_bad_input(invoke("train-classifier", assets["images"], "--out", out, *args), needle)
    assert not out.exists()


@pytest.mark.parametrize(("args", "needle"), [
    (["--n-layers-d", "10", "--size", "32"], "--n-layers-d"), (["--lr", "nan"], "--lr"), (["--batch", "0"], "--batch"),
    (["--workers", "-1"], "--workers"), (["--decay-epochs", "5", "--epochs", "2"], "--decay-epochs"),
])
def test_train_pix2pix_ranges(assets, tmp_path, args, needle):
    assert_bad_input(invoke("train-pix2pix", assets["images"], "--out", tmp_path / "run", *args), needle)


@pytest.mark.parametrize(("args", "needle"), [
    (["--kimg", "nan"], "--kimg"), (["--lr", "nan"], "--lr"), (["--batch", "0"], "--batch"),
    (["--workers", "-1"], "--workers"), (["--gamma", "inf"], "--gamma"),
])
def test_finetune_ranges(assets, tmp_path, args, needle):
    assert_bad_input(invoke("finetune-stylegan", assets["images"] / "a", "--network", "none", "--out", tmp_path / "run", *args), needle)


def test_styleclip_and_invert_ranges(assets, tmp_path):
    net = assets["net"]
    assert_bad_input(invoke("styleclip", "--network", net, "--latent-seed", "1", "--prompt", "x", "--trunc", "nan",
                            "--out", tmp_path / "s"), "--trunc")
    assert_bad_input(invoke("styleclip", "--network", net, "--latent", assets["notzip"], "--prompt", "x", "--out", tmp_path / "s"),
                     str(assets["notzip"]))
    target = assets["images"] / "a" / "0.png"
    assert_bad_input(invoke("invert", target, "--network", net, "--lr", "nan", "--out", tmp_path / "i"), "--lr")
    assert_bad_input(invoke("invert", target, "--network", net, "--steps", "-1", "--out", tmp_path / "i"), "--steps")


@pytest.mark.parametrize("config", [[1, 2, 3], {"G_ema": [1, 2]}, {"G_ema": {"z_dim": -4, "w_dim": 8, "img_resolution": 16, "img_channels": 3}}])
def test_network_configs_that_are_lists_or_negative(tmp_path, config):
    import torch

    path = tmp_path / "bad.safetensors"
    save_file({"G_ema.x": torch.zeros(1)}, str(path), metadata={"format": "stylekit-stylegan2", "format_version": "1",
                                                              "config": json.dumps(config), "extra": "{}"})
    assert_bad_input(invoke("generate", "--network", path, "--seeds", "0", "--out", tmp_path / "o"), str(path))


def test_damaged_style_model_json_and_checkpoint(assets, tmp_path):
    model = tmp_path / "style-model"
    model.mkdir()
    (model / "style_model.json").write_text("{ not json")
    (model / "style_model.safetensors").write_bytes(b"garbage")
    images = assets["images"]
    result = invoke("score", images / "a", images / "b", "--metrics", "style", "--style-model", model)
    assert_bad_input(result, "style_model")
    (model / "style_model.json").write_text(json.dumps({"format": "stylekit-style-model", "format_version": 1, "backbone": []}))
    assert_bad_input(invoke("score", images / "a", images / "b", "--metrics", "style", "--style-model", model), "style_model")
    run = tmp_path / "run"
    (run / "checkpoints" / "latest").mkdir(parents=True)
    (run / "config.json").write_text("[1, 2")
    result = invoke("train-classifier", images, "--eval-only", "--style-model", run, "--out", tmp_path / "ev")
    assert_bad_input(result)


def test_config_that_is_a_directory_on_a_real_command(assets, tmp_path):
    result = invoke("generate", "--network", assets["net"], "--seeds", "0", "--out", tmp_path / "o", "--config", tmp_path)
    assert_bad_input(result, "is a directory")


def test_write_failure_names_the_file(tmp_path):
    from stylekit.errors import BadInput
    from stylekit.io.atomic import write_text_atomic

    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(BadInput, match="blocker"):
        write_text_atomic(blocker / "report.json", "{}")


def test_python_callers_get_the_same_errors(tmp_path):
    """The checks live in the configs: no CLI needed to be refused."""
    from stylekit.configs.pix2pix import Pix2PixConfig
    from stylekit.configs.score import ScoreConfig
    from stylekit.configs.stylegan import BlendConfig, GenerateConfig, MixConfig
    from stylekit.errors import BadInput

    cases = [
        (lambda: GenerateConfig(network="n", seeds=[0], out=tmp_path, trunc=float("nan")), "--trunc"),
        (lambda: MixConfig(network="n", out=tmp_path, interpolate=(1, 2), fps=0), "--fps"),
        (lambda: BlendConfig(base="a", finetuned="b", out=str(tmp_path / "x.safetensors"), swap_res=12), "--swap-res"),
        (lambda: ScoreConfig(a="a", b="b", kid_subsets=0), "--kid-subsets"),
        (lambda: Pix2PixConfig(data=tmp_path, out=tmp_path, size=32, n_layers_d=10), "--n-layers-d"),
        (lambda: Pix2PixConfig(data=tmp_path, out=tmp_path, epochs=4, decay_epochs=5), "--decay-epochs"),
    ]
    for call, needle in cases:
        with pytest.raises(BadInput, match=needle):
            call()
