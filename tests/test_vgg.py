"""The named-layer VGG extractor: names, shapes, truncation, weight loading, errors, Gram, precision."""

import pytest
import torch
from torch import nn

from stylekit.errors import BadInput
from stylekit.nets.vgg import (
    VGG_LAYERS,
    VGGFeatures,
    check_layers,
    gram_matrix,
    min_input_side,
    resolve_precision,
)

GATYS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


def test_layer_names_follow_torchvision_indices():
    v19, v16 = VGG_LAYERS["vgg19"], VGG_LAYERS["vgg16"]
    assert len(v19) == 37 and len(v16) == 31  # torchvision features lengths
    assert v19[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert v19[-1] == "pool5" and v19[-2] == "relu5_4" and v16[-2] == "relu5_3"
    # positions are torchvision's features.N indices
    assert v19.index("relu4_2") == 22 and v19.index("conv5_1") == 28 and v16.index("conv4_2") == 19
    assert min_input_side("vgg19", GATYS) == 16 and min_input_side("vgg19", ["pool5"]) == 32


def test_shapes_and_truncation():
    net = VGGFeatures("vgg19", GATYS + ["conv4_2"], weights=None)
    out = net(torch.rand(1, 3, 32, 48))
    assert list(out) == GATYS + ["conv4_2"]
    assert [tuple(out[k].shape[1:]) for k in GATYS] == [(64, 32, 48), (128, 16, 24), (256, 8, 12), (512, 4, 6), (512, 2, 3)]
    assert all(v.dtype == torch.float32 for v in out.values())
    short = VGGFeatures("vgg16", ["relu2_1"], weights=None)
    assert len(short.body) == VGG_LAYERS["vgg16"].index("relu2_1") + 1 == 7
    assert sum(isinstance(m, nn.Conv2d) for m in short.body) == 3


def test_conv_output_is_pre_activation_and_network_is_frozen():
    net = VGGFeatures("vgg19", ["conv1_1", "relu1_1"], weights=None).train()
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    out = net(x)
    assert (out["conv1_1"] < 0).any() and torch.equal(out["relu1_1"], out["conv1_1"].clamp_min(0))
    out["relu1_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_loads_torchvision_state_dicts(tmp_path):
    from safetensors.torch import save_file
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    tv = make_layers(cfgs["D"])  # torchvision's vgg16 `features`
    sd = tv.state_dict()
    full, bare, st = tmp_path / "full.pth", tmp_path / "bare.pth", tmp_path / "w.safetensors"
    torch.save({f"features.{k}": v for k, v in sd.items()} | {"classifier.0.bias": torch.zeros(4096)}, full)
    torch.save(sd, bare)
    save_file({f"features.{k}": v.contiguous() for k, v in sd.items()}, str(st))
    x = torch.rand(1, 3, 32, 32)
    expected = tv[:23](x)  # up to relu4_3 (features.22)
    for path in (full, bare, st):
        net = VGGFeatures("vgg16", ["relu4_3"], weights=path, normalize=False)
        assert torch.allclose(net(x)["relu4_3"], expected, atol=1e-5), path
    # ImageNet normalisation happens inside
    net = VGGFeatures("vgg16", ["conv1_1"], weights=full)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(net(x)["conv1_1"], tv[:1]((x - mean) / std), atol=1e-5)


def test_unknown_layer_lists_valid_names():
    with pytest.raises(BadInput) as info:
        VGGFeatures("vgg19", ["relu6_1"], weights=None)
    assert "relu6_1" in info.value.message and "relu5_4" in info.value.hint and "pool5" in info.value.hint
    with pytest.raises(BadInput):
        check_layers("vgg16", ["relu5_4"])  # vgg16 stops at relu5_3
    with pytest.raises(BadInput):
        VGGFeatures("vgg11", ["relu1_1"], weights=None)


def test_files_that_are_not_vgg_state_dicts(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(BadInput, match="not a readable VGG state dict"):
        VGGFeatures("vgg19", ["relu1_1"], weights=junk)
    other = tmp_path / "other.pth"
    torch.save({"layer.weight": torch.zeros(3)}, other)
    with pytest.raises(BadInput, match="no features"):
        VGGFeatures("vgg19", ["relu1_1"], weights=other)
    v16 = tmp_path / "v16.pth"
    torch.save(VGGFeatures("vgg16", ["pool5"], weights=None).body.state_dict(), v16)
    with pytest.raises(BadInput, match="vgg16 weights"):
        VGGFeatures("vgg19", ["relu1_1"], weights=v16)
    short = tmp_path / "short.pth"
    torch.save(VGGFeatures("vgg19", ["relu1_1"], weights=None).body.state_dict(), short)
    with pytest.raises(BadInput, match=r"features\.2\.weight"):
        VGGFeatures("vgg19", ["relu2_1"], weights=short)
    with pytest.raises(BadInput, match="does not exist"):
        VGGFeatures("vgg19", ["relu1_1"], weights=tmp_path / "missing.pth")


def test_registry_name_offline_is_missing_resource():
    pytest.importorskip("stylekit.weights")
    from stylekit.errors import MissingResource

    with pytest.raises(MissingResource) as info:
        VGGFeatures("vgg19", ["relu1_1"], weights="vgg19")
    assert info.value.exit_code == 3 and "stylekit download vgg19" in (info.value.hint or "")


def test_random_init_is_seeded():
    a = VGGFeatures("vgg19", ["relu1_2"], weights=None, seed=1).body[0].weight
    b = VGGFeatures("vgg19", ["relu1_2"], weights=None, seed=1).body[0].weight
    c = VGGFeatures("vgg19", ["relu1_2"], weights=None, seed=2).body[0].weight
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_gram_matrix_is_divided_by_chw():
    g = gram_matrix(torch.ones(1, 2, 3, 4))
    assert g.shape == (1, 2, 2) and torch.allclose(g, torch.full((1, 2, 2), 12 / 24))
    f = torch.randn(2, 5, 6, 7)
    flat = f.reshape(2, 5, 42)
    assert torch.allclose(gram_matrix(f), flat @ flat.transpose(1, 2) / (5 * 6 * 7), atol=1e-6)


def test_avg_pooling_and_precision_options():
    net = VGGFeatures("vgg19", ["pool1"], weights=None, pooling="avg")
    assert isinstance(net.body[-1], nn.AvgPool2d)
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("auto", "cpu") in ("fp32", "bf16")
    with pytest.raises(BadInput):
        resolve_precision("fp8", "cpu")
    x = torch.rand(1, 3, 32, 32)
    fp32 = VGGFeatures("vgg19", ["relu3_1"], weights=None, precision="fp32")(x)["relu3_1"]
    bf16 = VGGFeatures("vgg19", ["relu3_1"], weights=None, precision="bf16")(x)["relu3_1"]
    assert bf16.dtype == torch.float32
    assert (bf16 - fp32).norm() / fp32.norm() < 0.05
    cl = VGGFeatures("vgg19", ["relu3_1"], weights=None, channels_last=False)(x)["relu3_1"]
    assert torch.allclose(cl, fp32, atol=1e-4)
