"""Loading StyleGAN2 networks: NVlabs-layout pickles (safely), rosinality .pt, stylekit safetensors."""

import argparse
import collections
import os
import pickle
import sys
import types

import pytest
import torch

from stylekit.errors import BadInput
from stylekit.io.safe_pickle import PersistentObject, safe_load
from stylekit.nets.stylegan2.load import load_network, save_network
from stylekit.nets.stylegan2.rosinality import from_rosinality, to_rosinality
from stylekit.nets.stylegan2.tiny import tiny_discriminator, tiny_generator

# ----------------------------------------------------------------------------- a fake NVlabs layout


class _EasyDict(dict):
    pass


def _reconstruct_persistent_obj(meta):  # never called here: only its name ends up in the pickle
    raise AssertionError("the loader must not call the real persistence hook")


class _Persistent:
    """Pickles exactly like an NVlabs persistent module: (_reconstruct_persistent_obj, (meta,))."""

    def __init__(self, meta):
        self.meta = meta

    def __reduce__(self):
        return (_reconstruct_persistent_obj, (self.meta,))


@pytest.fixture
def fake_nvlabs(monkeypatch):
    """Register stand-in torch_utils.persistence / dnnlib.util modules so pickle can name them."""
    tu = types.ModuleType("torch_utils")
    pers = types.ModuleType("torch_utils.persistence")
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    pers._reconstruct_persistent_obj = _reconstruct_persistent_obj
    dn = types.ModuleType("dnnlib")
    du = types.ModuleType("dnnlib.util")
    _EasyDict.__module__, _EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    du.EasyDict = _EasyDict
    for name, mod in (("torch_utils", tu), ("torch_utils.persistence", pers), ("dnnlib", dn), ("dnnlib.util", du)):
        monkeypatch.setitem(sys.modules, name, mod)
    return _persistent_of


def _persistent_of(module: torch.nn.Module, init_kwargs=None, class_name=None):
    state = {
        "training": False,
        "_parameters": collections.OrderedDict((k, v) for k, v in module._parameters.items()),
        "_buffers": collections.OrderedDict((k, v) for k, v in module._buffers.items()),
        "_non_persistent_buffers_set": set(),
        "_modules": collections.OrderedDict((k, _persistent_of(m)) for k, m in module._modules.items()),
        "_init_args": (),
        "_init_kwargs": _EasyDict(init_kwargs or {}),
        "weight_gain": getattr(module, "weight_gain", 1.0),
    }
    meta = dict(type="class", version=6, module_src="raise SystemExit('embedded source must never run')\n",
                class_name=class_name or type(module).__name__, state=state)
    return _Persistent(meta)


def _kwargs(net):
    out = {}
    for k, v in net.init_kwargs.items():
        out[k] = _EasyDict(v) if isinstance(v, dict) else v
    return out


def _write_snapshot(path, G, D, G_ema):
    snap = {
        "training_set_kwargs": _EasyDict(path="ffhq.zip", resolution=G.img_resolution),
        "G": _persistent_of(G, _kwargs(G)), "D": _persistent_of(D, _kwargs(D)), "G_ema": _persistent_of(G_ema, _kwargs(G_ema)),
        "augment_pipe": None,
    }
    with open(path, "wb") as fh:
        pickle.dump(snap, fh, protocol=4)


def _images(G, seed=0, n=2):
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
    c = torch.eye(G.c_dim)[:n] if G.c_dim else None
    with torch.no_grad():
        return G(z, c, truncation_psi=0.7, noise_mode="const")


# ----------------------------------------------------------------------------- tests


def test_snapshot_shaped_pickle_round_trips_to_identical_outputs(tmp_path, fake_nvlabs):
    G, G_ema = tiny_generator(16, seed=1, c_dim=3), tiny_generator(16, seed=2, c_dim=3)
    D = tiny_discriminator(16, c_dim=3)
    path = tmp_path / "network-snapshot-000100.pkl"
    _write_snapshot(path, G, D, G_ema)
    net = load_network(path)
    assert net.format == "nvlabs-pkl" and net.generator is net.G_ema
    assert torch.equal(_images(net.G_ema), _images(G_ema)) and torch.equal(_images(net.G), _images(G))
    img = torch.randn(2, 3, 16, 16)
    c = torch.eye(3)[:2]
    with torch.no_grad():
        assert torch.equal(net.D(img, c), D(img, c))
    assert net.config["G"]["synthesis_kwargs"]["channel_max"] == 64
    assert net.extra["training_set_kwargs"]["path"] == "ffhq.zip"


def test_stylegan3_repo_flattened_kwargs_are_accepted(tmp_path, fake_nvlabs):
    G = tiny_generator(8)
    kw = dict(_kwargs(G))
    synth = kw.pop("synthesis_kwargs")
    kw.update(synth)  # StyleGAN3 repo: Generator(..., mapping_kwargs, **synthesis_kwargs)
    kw["fused_modconv_default"] = "inference_only"
    path = tmp_path / "sg3.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"G_ema": _persistent_of(G, kw)}, fh)
    assert torch.equal(_images(load_network(path).generator), _images(G))


def _with_synthesis_modules(G, modules):
    obj = _persistent_of(G, _kwargs(G))
    obj.meta["state"]["_modules"]["synthesis"].meta["state"]["_modules"] = collections.OrderedDict(modules)
    return obj


def test_a_generator_of_neither_architecture_is_refused(tmp_path, fake_nvlabs):
    path = tmp_path / "other.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"G_ema": _with_synthesis_modules(tiny_generator(8), {"blocks": _persistent_of(torch.nn.Linear(2, 2))})}, fh)
    with pytest.raises(BadInput, match="neither a StyleGAN2 nor a StyleGAN3 generator"):
        load_network(path)


def test_stylegan3_modules_with_a_stylegan2_config_are_refused_in_one_line(tmp_path, fake_nvlabs):
    """A StyleGAN3-shaped synthesis whose init kwargs are StyleGAN2's: the config does not fit the weights."""
    path = tmp_path / "mixed.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"G_ema": _with_synthesis_modules(tiny_generator(8), {"input": _persistent_of(torch.nn.Linear(2, 2))})}, fh)
    with pytest.raises(BadInput, match="mixed.pkl: its G_ema config"):
        load_network(path)


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


class _EvilOpen:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


@pytest.mark.parametrize("evil", [_Evil, _EvilOpen])
def test_malicious_reduce_is_refused_and_runs_nothing(tmp_path, evil, fake_nvlabs):
    marker = tmp_path / "pwned"
    G = tiny_generator(8)
    snap = {"G_ema": _persistent_of(G, _kwargs(G)), "payload": evil(marker)}
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as fh:
        pickle.dump(snap, fh)
    with pytest.raises(BadInput, match="refused"):
        load_network(path)
    assert not marker.exists()


def test_embedded_module_source_is_not_executed(tmp_path, fake_nvlabs):
    marker = tmp_path / "ran"
    G = tiny_generator(8)
    obj = _persistent_of(G, _kwargs(G))
    obj.meta["module_src"] = f"open({str(marker)!r}, 'w').close()\n"
    path = tmp_path / "src.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"G_ema": obj}, fh)
    out = safe_load(path)
    assert isinstance(out["G_ema"], PersistentObject) and out["G_ema"].class_name == "Generator"
    load_network(path)
    assert not marker.exists()


def test_tensorflow_pickle_is_bad_input(tmp_path, monkeypatch):
    mod = types.ModuleType("dnnlib.tflib.network")

    class Network:
        def __reduce__(self):
            return (Network, ())

    Network.__module__, Network.__qualname__ = "dnnlib.tflib.network", "Network"
    mod.Network = Network
    for name in ("dnnlib", "dnnlib.tflib"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "dnnlib.tflib.network", mod)
    path = tmp_path / "karras2019stylegan-ffhq-1024x1024.pkl"
    with open(path, "wb") as fh:
        pickle.dump((Network(), Network(), Network()), fh)
    with pytest.raises(BadInput, match="TensorFlow"):
        load_network(path)


def test_safetensors_round_trip_and_wrong_files(tmp_path):
    G, D = tiny_generator(16), tiny_discriminator(16)
    path = save_network(tmp_path / "net.safetensors", G=G, D=D, extra={"kimg": 12})
    net = load_network(path)
    assert net.format == "stylekit" and net.G_ema is None and net.generator is net.G
    assert torch.equal(_images(net.G), _images(G)) and net.extra == {"kimg": 12}
    # A run directory finds its network.
    run = tmp_path / "run" / "checkpoints"
    run.mkdir(parents=True)
    save_network(run / "latest.safetensors", G=G)
    assert torch.equal(_images(load_network(tmp_path / "run").generator), _images(G))
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(BadInput, match="not a stylekit StyleGAN network"):
        load_network(tmp_path / "other.safetensors")
    (tmp_path / "junk.bin").write_bytes(b"hello world, not a network")
    with pytest.raises(BadInput, match="unsupported"):
        load_network(tmp_path / "junk.bin")
    (tmp_path / "trunc.pkl").write_bytes(b"\x80\x04\x95")
    with pytest.raises(BadInput):
        load_network(tmp_path / "trunc.pkl")
    with pytest.raises(BadInput, match="neither an existing file nor a known registry name"):
        load_network(tmp_path / "missing.pkl")
    with pytest.raises(BadInput, match="registry"):
        load_network("no-such-network-name")


def test_safetensors_with_wrong_shapes_names_the_layers(tmp_path):
    G = tiny_generator(16)
    path = save_network(tmp_path / "net.safetensors", G=G)
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    tensors["G.synthesis.b8.conv0.weight"] = torch.zeros(1, 1, 3, 3)
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(BadInput, match=r"synthesis\.b8\.conv0\.weight"):
        load_network(tmp_path / "bad.safetensors")


def test_rosinality_mapping_round_trip(tmp_path):
    G = tiny_generator(32)
    sd = G.state_dict()
    ro, latent_avg = to_rosinality(sd, 32)
    assert ro["input.input"].shape[0] == 1 and ro["convs.0.conv.weight"].ndim == 5
    assert "noises.noise_0" in ro and "to_rgbs.2.bias" in ro and ro["style.1.weight"].shape == sd["mapping.fc0.weight"].shape
    back, config = from_rosinality(ro, latent_avg)
    assert set(back) == {k for k in sd if not k.endswith("resample_filter")}
    assert all(torch.equal(back[k], sd[k]) for k in back)
    assert config["synthesis_kwargs"]["channel_base"] == 512 and config["synthesis_kwargs"]["channel_max"] == 64
    # As a StyleCLIP-style checkpoint file (argparse.Namespace in 'args'): loads with weights_only.
    path = tmp_path / "stylegan2-tiny.pt"
    torch.save({"g_ema": ro, "latent_avg": latent_avg, "args": argparse.Namespace(size=32, channel_multiplier=2)}, path)
    net = load_network(path)
    assert net.format == "rosinality"
    assert torch.equal(_images(net.generator), _images(G))


def test_rosinality_without_latent_avg_estimates_it(tmp_path):
    G = tiny_generator(16)
    ro, _ = to_rosinality(G.state_dict(), 16)
    torch.save({"g_ema": ro}, tmp_path / "g.pt")
    net = load_network(tmp_path / "g.pt")
    w_avg = net.generator.mapping.w_avg
    assert torch.isfinite(w_avg).all() and w_avg.abs().sum() > 0


def test_torch_checkpoint_with_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"g_ema": _Evil(marker)}, tmp_path / "evil.pt")
    with pytest.raises(BadInput, match="cannot read this torch file safely"):
        load_network(tmp_path / "evil.pt")
    assert not marker.exists()
