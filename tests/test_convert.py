"""`stylekit convert`: exact round trips through rosinality .pt and NVlabs state dicts, and wrong inputs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.edit.convert import render_seeds
from stylekit.errors import BadInput
from stylekit.nets.stylegan2.load import load_network, save_network
from stylekit.nets.stylegan2.networks import Generator
from stylekit.nets.stylegan2.rosinality import (
    discriminator_pairs,
    from_rosinality_discriminator,
    to_rosinality_discriminator,
)
from stylekit.nets.stylegan2.tiny import tiny_discriminator, tiny_generator

pytestmark = pytest.mark.usefixtures("one_thread")
VENV_BIN = Path(sys.executable).parent


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    root = tmp_path_factory.mktemp("convert")
    full = save_network(root / "full.safetensors", G=tiny_generator(16, seed=1), G_ema=tiny_generator(16, seed=2),
                        D=tiny_discriminator(16, seed=3))
    return {"root": root, "full": full}


def _d_scores(D, seed=0):
    img = torch.randn(4, 3, D.img_resolution, D.img_resolution, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return D(img, None)


def test_rosinality_round_trip_is_exact(nets, tmp_path):
    src = load_network(nets["full"])
    res = invoke("convert", nets["full"], "--to", "rosinality", "--out", tmp_path / "net.pt", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["max_abs_diff"] == 0.0 and doc["networks"] == ["G", "G_ema", "D"] and doc["source_format"] == "stylekit"
    ckpt = torch.load(tmp_path / "net.pt", weights_only=True)  # tensors only: safe to load anywhere
    assert set(ckpt) == {"g_ema", "g", "d", "latent_avg"}
    assert ckpt["g_ema"]["input.input"].shape == (1, 64, 4, 4) and ckpt["g_ema"]["convs.0.conv.weight"].ndim == 5
    assert ckpt["g_ema"]["noises.noise_4"].shape == (1, 1, 16, 16) and "to_rgbs.1.upsample.kernel" in ckpt["g_ema"]
    assert ckpt["d"]["convs.0.0.weight"].shape == (32, 3, 1, 1) and "convs.2.skip.0.kernel" in ckpt["d"]
    assert torch.equal(ckpt["latent_avg"], src.G_ema.mapping.w_avg)
    # ... and back to stylekit: identical pixels, identical discriminator scores.
    res = invoke("convert", tmp_path / "net.pt", "--to", "safetensors", "--out", tmp_path / "back.safetensors", "--json")
    assert res.exit_code == 0, res.output
    back = load_network(tmp_path / "back.safetensors")
    assert back.format == "stylekit" and json.loads(res.stdout)["source_format"] == "rosinality"
    assert torch.equal(render_seeds(back.G_ema), render_seeds(src.G_ema))
    # rosinality keeps one latent_avg (G_ema's) for both generators: the training G gets it too.
    g, g_back = src.G.state_dict(), back.G.state_dict()
    assert all(torch.equal(g[k], g_back[k]) for k in g if k != "mapping.w_avg")
    assert torch.equal(_d_scores(back.D), _d_scores(src.D))
    sd, sd_back = src.G_ema.state_dict(), back.G_ema.state_dict()
    assert all(torch.equal(sd[k], sd_back[k]) for k in sd)


def test_discriminator_table_covers_every_tensor():
    D = tiny_discriminator(32, seed=5)
    sd = {k: v for k, v in D.state_dict().items() if not k.endswith("resample_filter")}
    assert {nv for nv, _, _ in discriminator_pairs(32)} == set(sd)
    back, config = from_rosinality_discriminator(to_rosinality_discriminator(sd, 32))
    assert all(torch.equal(back[k], sd[k]) for k in sd)
    assert config["channel_base"] == 512 and config["channel_max"] == 64 and config["img_resolution"] == 32


def test_nvlabs_state_round_trip_is_exact(nets, tmp_path):
    src = load_network(nets["full"])
    out = tmp_path / "G.pt"
    res = invoke("convert", nets["full"], "--to", "nvlabs-state", "--out", out, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["max_abs_diff"] == 0.0
    state = torch.load(out, weights_only=True)
    kwargs = json.loads((tmp_path / "G.json").read_text())
    assert set(state) == set(src.G_ema.state_dict()) and "synthesis.b16.conv1.affine.weight" in state
    assert kwargs == src.G_ema.init_kwargs
    # What NVlabs code does with it (stylekit's Generator mirrors NVlabs' constructor and names):
    G = Generator(**kwargs)
    G.load_state_dict(state)
    assert torch.equal(render_seeds(G.eval()), render_seeds(src.G_ema))
    back = load_network(out)
    assert back.format == "nvlabs-state" and torch.equal(render_seeds(back.generator), render_seeds(src.G_ema))


def test_run_dir_input_and_subprocess(nets, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "network-final.safetensors").write_bytes(nets["full"].read_bytes())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(VENV_BIN / "stylekit"), "convert", str(run), "--to", "rosinality", "--out", str(tmp_path / "r.pt"),
                           "--json"], capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["max_abs_diff"] == 0.0 and doc["files"] == [str(tmp_path / "r.pt")] and doc["resolution"] == 16


def test_conditional_network_refused_for_rosinality_but_kept_by_others(tmp_path):
    cond = save_network(tmp_path / "cond.safetensors", G_ema=tiny_generator(16, seed=4, c_dim=3))
    res = invoke("convert", cond, "--to", "rosinality", "--out", tmp_path / "c.pt")
    assert res.exit_code == 2 and "class-conditional" in res.output and not (tmp_path / "c.pt").exists()
    res = invoke("convert", cond, "--to", "nvlabs-state", "--out", tmp_path / "c.pt", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["max_abs_diff"] == 0.0


def test_wrong_inputs_exit_2_and_say_what_the_file_is(nets, tmp_path):
    # a train-classifier run directory
    cls = tmp_path / "cls"
    (cls / "checkpoints" / "ckpt-000000010").mkdir(parents=True)
    (cls / "checkpoints" / "ckpt-000000010" / "meta.json").write_text(json.dumps({"format": "stylekit-checkpoint", "modules": ["model"]}))
    (cls / "config.json").write_text("{}")
    res = invoke("convert", cls, "--to", "rosinality", "--out", tmp_path / "x.pt")
    assert res.exit_code == 2 and "train-classifier run directory" in res.output
    # a corrupt file
    bad = tmp_path / "broken.pt"
    bad.write_bytes(nets["full"].read_bytes()[:4000])
    res = invoke("convert", bad, "--to", "safetensors", "--out", tmp_path / "x.safetensors")
    assert res.exit_code == 2 and "error:" in res.output and "Traceback" not in res.output
    # an image
    png = tmp_path / "photo.pkl"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    res = invoke("convert", png, "--to", "safetensors", "--out", tmp_path / "x.safetensors")
    assert res.exit_code == 2 and "PNG image" in res.output
    # a discriminator only
    d_only = save_network(tmp_path / "d.safetensors", D=tiny_discriminator(16))
    res = invoke("convert", d_only, "--to", "rosinality", "--out", tmp_path / "x.pt")
    assert res.exit_code == 2 and "discriminator only" in res.output
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "x.safetensors").exists()


def test_bad_options(nets, tmp_path):
    res = invoke("convert", nets["full"], "--to", "onnx", "--out", tmp_path / "x.pt")
    assert res.exit_code == 2 and "nvlabs-state" in res.output
    res = invoke("convert", nets["full"], "--to", "rosinality", "--out", tmp_path / "x.safetensors")
    assert res.exit_code == 2 and ".pt" in res.output
    res = invoke("convert", nets["full"], "--to", "safetensors", "--out", nets["full"])
    assert res.exit_code == 2 and "input network itself" in res.output
    res = invoke("convert", "no-such-net", "--to", "safetensors", "--out", tmp_path / "x.safetensors")
    assert res.exit_code == 2 and "registry name" in res.output


def test_nvlabs_state_without_kwargs_is_refused(nets, tmp_path):
    invoke("convert", nets["full"], "--to", "nvlabs-state", "--out", tmp_path / "G.pt", "--no-verify")
    (tmp_path / "G.json").unlink()
    with pytest.raises(BadInput, match="G.json"):
        load_network(tmp_path / "G.pt")


@pytest.mark.parametrize("existing", ["mine.json", "mine.pt"])
def test_nvlabs_state_refuses_to_replace_any_file_it_would_write(nets, tmp_path, existing):
    """Issue 24 item 3: the sidecar .json is checked like --out itself, before anything is written."""
    (tmp_path / existing).write_text("the user's file")
    res = invoke("convert", nets["full"], "--to", "nvlabs-state", "--out", tmp_path / "mine.pt", "--no-verify")
    assert res.exit_code == 2, res.output
    assert f"{tmp_path / existing} already exists; nothing was written" in res.output
    assert "or pass --fresh to replace them" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]
    assert (tmp_path / existing).read_text() == "the user's file"


def test_fresh_replaces_the_files_a_conversion_writes(nets, tmp_path):
    (tmp_path / "mine.json").write_text("an older export")
    res = invoke("convert", nets["full"], "--to", "nvlabs-state", "--out", tmp_path / "mine.pt", "--no-verify", "--fresh")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.json", "mine.pt"]
    assert (tmp_path / "mine.json").read_text() != "an older export"
