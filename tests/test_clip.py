"""The project's CLIP loader: local-only weights, preprocessing, embeddings, errors."""

import json

import pytest
import torch
from clip_tiny import TINY_CLIP_CFG, make_tiny_clip_dir

from stylekit.errors import BadInput, MissingResource
from stylekit.nets.clip import encode_images, encode_text, load_clip, prepare_images


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_tiny_clip_dir(tmp_path_factory.mktemp("clip") / "tiny")


def test_local_dir_model_embeds_images_and_text(tiny_dir):
    bundle = load_clip(str(tiny_dir))
    assert (bundle.image_size, bundle.embed_dim) == (32, 32)
    images = torch.rand(3, 3, 50, 40)
    with torch.no_grad():
        z = encode_images(bundle, images)
        raw = encode_images(bundle, images, normalize=False)
        t = encode_text(bundle, ["a striped painting", "a watercolour"])
    assert z.shape == (3, 32) and t.shape == (2, 32)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(torch.nn.functional.normalize(raw, dim=1), z)
    # Resize to image_size (shorter side) + centre crop + CLIP mean/std.
    x = prepare_images(bundle, images)
    assert x.shape == (3, 3, 32, 32)
    same = load_clip(f"local-dir:{tiny_dir}")
    with torch.no_grad():
        torch.testing.assert_close(encode_images(same, images), z)
    # Gradients flow (StyleCLIP optimises through encode_images).
    img = torch.rand(1, 3, 32, 32, requires_grad=True)
    encode_images(bundle, img).sum().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0


def test_builtin_name_with_local_weights_file(tiny_dir, tmp_path):
    import open_clip

    cfg_file = tmp_path / "stylekit-tiny-test.json"
    cfg_file.write_text(json.dumps(TINY_CLIP_CFG))
    open_clip.add_model_config(cfg_file)
    weights = tiny_dir / "open_clip_model.safetensors"
    bundle = load_clip("stylekit-tiny-test", weights=str(weights))
    reference = load_clip(str(tiny_dir))
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(encode_images(bundle, images), encode_images(reference, images))
    assert bundle.weights_id.startswith("open_clip_model.safetensors@")


def test_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEKIT_OFFLINE", "1")
    with pytest.raises(MissingResource) as exc:
        load_clip("ViT-B-32")
    assert exc.value.exit_code == 3 and "stylekit download clip-vit-b-32" in str(exc.value)
    with pytest.raises(BadInput):
        load_clip("hf-hub:someone/model")
    with pytest.raises(BadInput):
        load_clip("No-Such-Arch")
    with pytest.raises(BadInput):
        load_clip(str(tmp_path))  # a folder without open_clip_config.json
    bogus = tmp_path / "bogus.safetensors"
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(bogus))
    with pytest.raises(BadInput):
        load_clip("RN50", weights=str(bogus))


def test_registry_weights_get_quick_gelu_and_a_checksum_identity(tiny_dir, tmp_path, monkeypatch):
    """The registry's OpenAI weights load with QuickGELU (as open_clip's 'openai' tag does); a plain file does not."""
    import dataclasses
    import hashlib
    import shutil

    import open_clip
    from open_clip.transformer import QuickGELU

    from stylekit import weights
    from stylekit.nets import clip as clip_mod

    cfg_file = tmp_path / "stylekit-tiny-test.json"
    cfg_file.write_text(json.dumps(TINY_CLIP_CFG))
    open_clip.add_model_config(cfg_file)
    src = tiny_dir / "open_clip_model.safetensors"
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    spec = dataclasses.replace(weights.REGISTRY["clip-vit-b-32"], sha256=digest, size_bytes=src.stat().st_size)
    assert spec.filename.endswith(".safetensors")
    monkeypatch.setitem(weights.REGISTRY, "clip-vit-b-32", spec)
    weights.weights_dir().mkdir(parents=True, exist_ok=True)
    shutil.copy(src, weights.weights_dir() / spec.filename)
    monkeypatch.setitem(clip_mod.REGISTRY_WEIGHTS, "stylekit-tiny-test", "clip-vit-b-32")

    bundle = load_clip("stylekit-tiny-test")
    assert bundle.weights_id == f"clip-vit-b-32@{digest[:8]}"
    assert any(isinstance(m, QuickGELU) for m in bundle.model.modules())
    plain = load_clip("stylekit-tiny-test", weights=str(src))
    assert not any(isinstance(m, QuickGELU) for m in plain.model.modules())
    with torch.no_grad():
        z = encode_images(bundle, torch.rand(2, 3, 32, 32))
    assert z.shape == (2, 32)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # a real torch.jit.save archive
def test_torchscript_archives_are_refused_without_running_them(tmp_path, tiny_dir):
    archive = tmp_path / "ViT-B-32.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(archive))
    with pytest.raises(BadInput) as exc:
        load_clip("ViT-B-32", weights=str(archive))
    assert "TorchScript" in str(exc.value) and "stylekit download clip-vit-b-32" in str(exc.value)
    with pytest.raises(BadInput):
        load_clip(str(tiny_dir), weights=str(archive))
