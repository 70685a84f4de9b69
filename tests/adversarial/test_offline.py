"""STYLEKIT_OFFLINE=1 means no network call anywhere: every path that can fetch ends in exit 3 with the
command that fetches, and the test's blocked network records no attempt."""

from __future__ import annotations

import json
import socket

import pytest
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.data.http import fetch_many, fetch_url
from stylekit.errors import MissingResource
from stylekit.metrics.fid import RefStats, load_ref_stats
from stylekit.metrics.style import META_NAME, export_style_model
from stylekit.nets.backbones import build_backbone
from stylekit.nets.style_embedding import StyleNet, StyleNetConfig
from stylekit.nets.stylegan2.load import load_network
from stylekit.weights import weights_path

runner = CliRunner()


@pytest.fixture
def no_network(monkeypatch):
    """Any connection or name lookup is recorded and fails; the test then asserts none was tried."""
    attempts: list[str] = []

    def refuse(name):
        def blocked(*args, **kwargs):
            attempts.append(f"{name}{args[1:] if name.startswith('socket.') else args}")
            raise OSError(f"network blocked by the test ({name})")
        return blocked

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setenv("STYLEKIT_OFFLINE", "1")
    # stylekit switches the hub libraries to offline mode; undo that after each test.
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", huggingface_hub.constants.HF_HUB_OFFLINE)
    yield attempts
    assert attempts == [], f"network was attempted: {attempts}"


def test_the_blocker_does_block(no_network):
    with pytest.raises(OSError, match="blocked"):
        socket.create_connection(("example.org", 80))
    assert no_network == ["create_connection(('example.org', 80),)"]
    no_network.clear()


@pytest.mark.parametrize("fetch,command", [
    (lambda tmp: weights_path("vgg19"), "stylekit download vgg19"),
    (lambda tmp: weights_path("https://example.org/nets/net.pkl"), "curl -L --create-dirs -o"),
    (lambda tmp: weights_path("hf://someone/nets/net.pkl"), "hf download someone/nets net.pkl --revision main --local-dir"),
    (lambda tmp: load_network("https://example.org/nets/net.pkl"), "curl -L --create-dirs -o"),
    (lambda tmp: fetch_url("https://example.org/a.bin", tmp / "a.bin"), "curl -L --create-dirs -o"),
    (lambda tmp: fetch_many([("https://example.org/b.png", tmp / "b.png")]), "curl -L --create-dirs -o"),
    (lambda tmp: load_ref_stats(RefStats("ffhq", 256, "trainval70k", "clean")), "curl -L --create-dirs -o"),
    (lambda tmp: build_backbone("timm:hf-hub:timm/resnet18.a1_in1k"), "hf download timm/resnet18.a1_in1k --local-dir DIR"),
    (lambda tmp: build_backbone("clip:hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K"),
     "hf download laion/CLIP-ViT-B-32-laion2B-s34B-b79K --local-dir DIR"),
], ids=["weights-registry", "weights-url", "weights-hub-id", "network-url", "http", "http-batch", "fid-stats", "timm-hub", "open-clip-hub"])
def test_every_fetching_path_is_exit_3_offline(fetch, command, tmp_path, no_network):
    with pytest.raises(MissingResource) as err:
        fetch(tmp_path)
    assert err.value.exit_code == 3 and command in str(err.value)


@pytest.mark.parametrize("name", ["wikiart", "midjourney"])
def test_kaggle_downloads_are_exit_3_offline(name, tmp_path, no_network):
    res = runner.invoke(app, ["download", name, "--out", str(tmp_path / name)])
    assert res.exit_code == 3, res.output
    assert "STYLEKIT_OFFLINE=1 forbids network access" in res.stderr and "kaggle datasets download -d" in res.stderr
    assert not list((tmp_path / name).glob("*.jpg"))


@pytest.mark.parametrize("backbone,repo", [
    ("timm:hf-hub:timm/resnet18.a1_in1k", "timm/resnet18.a1_in1k"),
    ("clip:hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"),
])
def test_third_party_style_model_naming_a_hub_backbone_is_exit_3(backbone, repo, tmp_path, no_network):
    model = tmp_path / "model"
    export_style_model(StyleNet(StyleNetConfig("small-cnn", 2, 8)), model, {"size": 16, "classes": ["a", "b"]})
    meta = json.loads((model / META_NAME).read_text())
    (model / META_NAME).write_text(json.dumps({**meta, "backbone": backbone}))
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    for i in range(2):
        Image.new("RGB", (16, 16), (i * 200, 0, 0)).save(images / f"{i}.png")
    res = runner.invoke(app, ["score", str(images), str(images), "--metrics", "style", "--style-model", str(model),
                              "--no-cache", "--workers", "0", "--device", "cpu"])
    assert res.exit_code == 3, res.output
    assert f"hf download {repo} --local-dir DIR" in res.stderr and "Traceback" not in res.output


def test_offline_makes_the_hub_libraries_cache_only(no_network):
    backbone = build_backbone("timm:resnet18")  # a timm architecture needs no hub file
    assert backbone.dim == 512
    import os

    import huggingface_hub.constants

    assert os.environ["HF_HUB_OFFLINE"] == "1" and huggingface_hub.constants.HF_HUB_OFFLINE is True


def test_local_dir_timm_model_loads_offline(tmp_path, no_network):
    # What the exit-3 hint tells the user to do: download the repo once, then name the folder.
    import timm

    folder = tmp_path / "resnet"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architecture": "resnet18", "num_classes": 10}))
    backbone = build_backbone(f"timm:local-dir:{folder}")
    assert backbone.dim == 512 and isinstance(backbone.module, timm.models.ResNet)
