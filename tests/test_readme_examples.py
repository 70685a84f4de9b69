"""The README's command examples run as written (offline ones, at tiny sizes), in README order.

Every `stylekit ...` line of the README's indented code blocks is either run here (with the listed
options shrunk and registry networks replaced by tiny local ones) or skipped with a reason (needs the
network, pretrained weights, a GPU, or data the README does not create). A new README example fails
this test until it is classified, so the README cannot drift from the CLI again.
"""

import json
import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from stylekit.cli.app import app

README = Path(__file__).resolve().parents[1] / "README.md"

# example prefix -> options overridden (value None: a flag to add), to run it in seconds
RUN: dict[str, dict[str, str | None]] = {
    "stylekit download --list": {},
    "stylekit download toy-styles": {"--size": "32", "--per-style": "4", "--styles": "3"},
    "stylekit prepare data/toy/content": {"--size": "32"},
    # --batch 9: the 9 training pairs of the tiny toy set in one step (per-step overhead dominates at this size)
    "stylekit train-pix2pix data/toy": {"--size": "32", "--epochs": "1", "--refs": "1", "--ngf": "4", "--ndf": "4",
                                        "--n-layers-d": "1", "--style-dim": "8", "--val-max": "2", "--samples": "1",
                                        "--batch": "9"},
    "stylekit generate --network ffhq-256": {"--seeds": "0-3,120"},
    "stylekit mix --network": {"--frames": "3"},
    "stylekit blend-layers --base ffhq-256": {"--swap-res": "8", "--preview-seeds": "0-1"},
    "stylekit directions --network ffhq-256": {"--layers": "0-3", "--num": "2", "--seeds": "0"},
    "stylekit generate --network stylegan3": {"--seeds": "0-1"},
    "stylekit blend-layers --base stylegan3": {"--swap-layer": "2,4", "--preview-seeds": "0"},
}
SKIP = {
    "stylekit download wikiart": "network (Kaggle)",
    "stylekit download midjourney": "network (Kaggle and image hosts)",
    "stylekit download vgg19": "network (weights download)",
    "stylekit download stylegan3": "network (NVIDIA NGC)",
    "stylekit prepare data/wikiart": "needs the wikiart download",
    "stylekit prepare data/faces": "needs a folder of faces the README does not create",
    "stylekit train-classifier": "needs prepared data or pretrained backbones (tests/test_classifier.py runs it)",
    "stylekit score": "needs Inception/CLIP weights (tests/test_score.py runs it with tiny models)",
    "stylekit transfer": "needs VGG weights or a trained model (tests/test_transfer.py, test_cyclegan.py run them)",
    "stylekit finetune-stylegan": "needs data/toons.zip and ffhq-256 weights (tests/test_finetune.py)",
    "stylekit invert": "needs VGG16/LPIPS weights (tests/test_invert.py)",
    "stylekit styleclip": "needs CLIP weights (tests/test_styleclip.py)",
    "stylekit prepare photos/": "needs photos of faces and the RetinaFace weights (tests/test_align.py runs it)",
    "stylekit stats": "needs Inception weights (tests/test_stats.py runs it with a tiny model)",
    "stylekit classify": "needs a trained style model (tests/test_search.py)",
    "stylekit similar": "needs a trained style model (tests/test_search.py)",
    "stylekit convert": "needs a trained run (tests/test_convert.py)",
    "stylekit generate --network https://": "network (NVlabs' CDN; tests/test_remote_weights.py serves a URL locally)",
    "stylekit blend-layers --base ffhq --finetuned metfaces": "network (the ffhq and metfaces release networks)",
    "stylekit train-cyclegan": "needs photo/painting folders (tests/test_cyclegan_toy.py trains on toy-styles)",
    "stylekit directions --network runs/toon": "needs a fine-tuned run and a style model (tests/test_directions.py)",
}


def readme_examples() -> list[str]:
    lines = []
    for line in README.read_text(encoding="utf-8").splitlines():
        if re.match(r"^    stylekit ", line):
            lines.append(line.strip().split("  #")[0].strip())
    return lines


def _prefix(example: str, table: dict) -> str | None:
    return next((p for p in table if example.startswith(p)), None)


def _shrink(tokens: list[str], overrides: dict[str, str | None], networks: dict[str, str]) -> list[str]:
    out = [networks.get(t, t) for t in tokens]
    for option, value in overrides.items():
        if option in out and value is not None:
            out[out.index(option) + 1] = value
        elif option not in out:
            out += [option] if value is None else [option, value]
    return out


def test_every_readme_example_is_run_or_skipped_for_a_reason():
    examples = readme_examples()
    assert len(examples) >= 20
    for example in examples:
        assert (_prefix(example, RUN) is None) != (_prefix(example, SKIP) is None), f"classify this README example: {example}"


@pytest.mark.slow  # two pix2pix trainings among them
def test_readme_offline_examples_run(tmp_path, monkeypatch):
    from stylekit.nets.stylegan2.load import save_network
    from stylekit.nets.stylegan2.tiny import tiny_generator
    from stylekit.nets.stylegan3.tiny import tiny_generator as tiny_stylegan3

    monkeypatch.chdir(tmp_path)
    networks = {"ffhq-256": str(save_network(tmp_path / "tiny-a.safetensors", G_ema=tiny_generator(32, seed=1))),
                "runs/toon/network-final.safetensors": str(save_network(tmp_path / "tiny-b.safetensors", G_ema=tiny_generator(32, seed=2)))}
    for i, name in enumerate(("stylegan3-t-ffhqu-256", "stylegan3-r-ffhqu-1024", "stylegan3-r-metfacesu-1024")):
        networks[name] = str(save_network(tmp_path / f"tiny-sg3-{i}.safetensors", G_ema=tiny_stylegan3(16, seed=i, config=name[10])))
    runner = CliRunner()
    ran = []
    for example in readme_examples():
        prefix = _prefix(example, RUN)
        if prefix is None:
            continue
        args = _shrink(shlex.split(example)[1:], RUN[prefix], networks) + ["--json"]
        if args[0] not in ("download", "prepare"):
            args += ["--device", "cpu"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"{example}\n{result.output}"
        doc = json.loads(result.stdout)
        ran.append((prefix, doc))
    docs = dict(ran)
    assert len(docs) == len(RUN)
    assert docs["stylekit train-pix2pix data/toy"]["epochs"] == 1  # --epochs is the total
    assert len(docs["stylekit generate --network ffhq-256"]["images"]) == 5
    assert (tmp_path / "toonify.safetensors").is_file() and (tmp_path / "data" / "pairs").is_dir()


@pytest.mark.parametrize("example", [e for e in readme_examples() if e.startswith("stylekit ")])
def test_readme_examples_parse(example):
    """Even the skipped examples use options the commands have (no renamed or removed option)."""
    args = shlex.split(example)[1:]
    commands = typer.main.get_command(app).commands
    assert args[0] in commands, example
    cmd = commands[args[0]]
    flags = {o for p in cmd.params for o in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]}
    for token in args[1:]:
        if token.startswith("--"):
            assert token.split("=")[0] in flags, f"{example}: {token} is not an option of {args[0]}"
