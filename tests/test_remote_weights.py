"""Networks and weights by https:// URL and hf:// hub id: fetched once, sha256 recorded, checked, read safely.

A local HTTP server on 127.0.0.1 stands in for both a plain file host and the Hugging Face hub (its
`resolve` route, which huggingface_hub reaches through HF_ENDPOINT). Nothing leaves this machine.
"""

import hashlib
import os
import pickle
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from test_stylegan_load import fake_nvlabs  # noqa: F401 - the fixture that lets pickle name NVlabs' modules
from typer.testing import CliRunner

from stylekit import weights
from stylekit.cli.app import app
from stylekit.data.http import DownloadError, fetch_url
from stylekit.errors import BadInput, MissingResource
from stylekit.nets.stylegan2.load import load_network, resolve_network_path, save_network
from stylekit.nets.stylegan2.tiny import tiny_generator

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Server:
    """Serves `files` (path -> bytes) by GET and HEAD; `/OWNER/REPO/resolve/REV/FILE` answers like the hub."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.gets: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _head(self) -> bytes | None:
                path = self.path.split("?")[0]
                data = outer.files.get(path)
                if data is None:
                    body = b"not found"
                    self.send_response(404)
                    if "/resolve/" in path:  # as the hub says it
                        self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    return body
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                if "/resolve/" in path:  # what huggingface_hub reads from the hub
                    self.send_header("X-Repo-Commit", COMMIT)
                    self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.end_headers()
                return data

            def do_HEAD(self) -> None:  # noqa: N802
                self._head()

            def do_GET(self) -> None:  # noqa: N802
                outer.gets.append(self.path.split("?")[0])
                data = self._head()
                self.wfile.write(data or b"")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def hits(self, path: str) -> int:
        return self.gets.count(path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """Requests go straight to 127.0.0.1 (or fail on a .invalid name) even where a proxy is configured."""
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(monkeypatch):
    s = Server()
    monkeypatch.delenv("STYLEKIT_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import huggingface_hub.constants  # read HF_HUB_OFFLINE at import; an earlier offline test (quiet_hub) set it

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", s.base)  # huggingface_hub's own switch for another hub host
    monkeypatch.setenv("HF_TOKEN", "")
    yield s
    s.close()


@pytest.fixture(scope="module")
def tiny_net(tmp_path_factory) -> tuple[Path, bytes]:
    path = save_network(tmp_path_factory.mktemp("net") / "tiny.safetensors", G_ema=tiny_generator(16, seed=3))
    return path, path.read_bytes()


def _same_generator(a, b) -> None:
    sa, sb = a.generator.state_dict(), b.generator.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.config == b.config


HUB_ID = "hf://someone/tiny-gan/nets/tiny.safetensors"
HUB_ROUTE = "/someone/tiny-gan/resolve/main/nets/tiny.safetensors"


# --- by URL -----------------------------------------------------------------------------------


def test_url_downloads_once_and_loads_like_the_local_file(server, tiny_net):
    local, data = tiny_net
    server.files["/nets/tiny.safetensors"] = data
    url = server.base + "/nets/tiny.safetensors"
    first = load_network(url)
    again = load_network(url)
    assert server.hits("/nets/tiny.safetensors") == 1  # the second use reads the cache
    _same_generator(first, load_network(local))
    _same_generator(again, first)
    entry = weights.read_sources()[url]
    assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["size"] == len(data)
    cached = Path(entry["path"])
    assert cached.read_bytes() == data and cached.is_relative_to(weights.weights_dir() / "url")


def test_changed_cached_file_is_refused_with_url_path_and_refetch(server, tiny_net):
    _, data = tiny_net
    server.files["/n.safetensors"] = data
    url = server.base + "/n.safetensors"
    path = resolve_network_path(url)
    path.write_bytes(data[:-4] + b"XXXX")  # tampered or corrupted in the cache
    with pytest.raises(MissingResource) as err:
        load_network(url)
    text = str(err.value)
    assert err.value.exit_code == 3 and "changed" in text and "refused" in text
    assert url in text and str(path) in text and f"delete {path}" in text
    assert server.hits("/n.safetensors") == 1
    path.unlink()  # the advertised refetch: the new download must match what was recorded
    assert load_network(url).generator is not None and server.hits("/n.safetensors") == 2


def test_changed_upstream_file_is_refused_and_nothing_kept(server, tiny_net):
    _, data = tiny_net
    server.files["/u.safetensors"] = data
    url = server.base + "/u.safetensors"
    path = weights.weights_path(url)
    path.unlink()
    server.files["/u.safetensors"] = save_network(path.parent / "other.safetensors", G_ema=tiny_generator(16, seed=4)).read_bytes()
    (path.parent / "other.safetensors").unlink()
    with pytest.raises(MissingResource) as err:
        weights.weights_path(url)
    assert err.value.exit_code == 3 and "differs from the sha256 recorded" in err.value.message and url in err.value.message
    assert not path.exists()
    weights.forget_source(url)  # trusting the new file is explicit
    assert weights.weights_path(url).read_bytes() == server.files["/u.safetensors"]


def test_offline_uncached_url_is_exit_3_naming_url_and_cache_path(monkeypatch, server):
    monkeypatch.setenv("STYLEKIT_OFFLINE", "1")
    url = server.base + "/absent.pkl"
    res = runner.invoke(app, ["generate", "--network", url, "--seeds", "0", "--out", "out", "--device", "cpu"])
    assert res.exit_code == 3, res.output
    flat = " ".join(res.output.split())
    expected = str(weights.parse_remote(url).path)
    assert url in flat and expected.replace(os.sep, "") in flat.replace(os.sep, "").replace(" ", "")
    assert server.gets == []


def test_offline_cached_url_still_loads(monkeypatch, server, tiny_net):
    _, data = tiny_net
    server.files["/c.safetensors"] = data
    url = server.base + "/c.safetensors"
    weights.weights_path(url)
    monkeypatch.setenv("STYLEKIT_OFFLINE", "1")
    assert load_network(url).generator.img_resolution == 16 and server.hits("/c.safetensors") == 1


def test_hostile_pickle_by_url_is_refused_like_a_local_one(server, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    server.files["/evil.pkl"] = pickle.dumps({"G_ema": Evil()})
    with pytest.raises(BadInput, match="refused"):
        load_network(server.base + "/evil.pkl")
    assert not marker.exists()
    res = runner.invoke(app, ["generate", "--network", server.base + "/evil.pkl", "--seeds", "0", "--out",
                              str(tmp_path / "o"), "--device", "cpu"])
    assert res.exit_code == 2 and "refused" in res.output and not marker.exists()


def test_plain_http_is_only_for_this_machine():
    with pytest.raises(BadInput, match="plain http"):
        weights.weights_path("http://example.org/net.pkl")
    with pytest.raises(BadInput, match="hub"):
        weights.weights_path("hf://only-owner/file.pkl")
    with pytest.raises(BadInput, match="bad file path"):
        weights.weights_path("hf://o/r/../x.pkl")


def test_url_through_a_path_typed_option_is_still_a_url():
    assert weights.as_source(Path("https://host.org/a/b.pkl")) == "https://host.org/a/b.pkl"
    assert weights.as_source("runs/x") == "runs/x"


# --- by hub id --------------------------------------------------------------------------------


def test_hub_id_downloads_once_and_loads_like_the_local_file(server, tiny_net):
    local, data = tiny_net
    server.files[HUB_ROUTE] = data
    first = load_network(HUB_ID)
    again = load_network(HUB_ID)
    assert server.hits(HUB_ROUTE) == 1
    _same_generator(first, load_network(local))
    _same_generator(again, first)
    src = weights.parse_remote(HUB_ID)
    assert src.path == weights.weights_dir() / "hub" / "someone" / "tiny-gan" / "main" / "nets" / "tiny.safetensors"
    assert weights.read_sources()[src.key]["sha256"] == hashlib.sha256(data).hexdigest()


def test_hub_cached_file_changed_is_refused(server, tiny_net):
    _, data = tiny_net
    server.files[HUB_ROUTE] = data
    path = weights.weights_path(HUB_ID)
    with open(path, "r+b") as fh:
        fh.seek(200)
        fh.write(b"\0\1\2\3")
    with pytest.raises(MissingResource) as err:
        load_network(HUB_ID)
    assert err.value.exit_code == 3 and HUB_ID in err.value.message and str(path) in err.value.message
    assert server.hits(HUB_ROUTE) == 1


@pytest.mark.parametrize("switch", ["STYLEKIT_OFFLINE", "HF_HUB_OFFLINE"])
def test_hub_offline_is_exit_3_naming_the_id_and_cache_path(monkeypatch, server, switch):
    monkeypatch.setenv(switch, "1")
    with pytest.raises(MissingResource) as err:
        load_network(HUB_ID)
    src = weights.parse_remote(HUB_ID)
    assert err.value.exit_code == 3 and switch in err.value.message
    assert HUB_ID in err.value.message and str(src.path) in err.value.message
    assert err.value.fetch_command.startswith("hf download someone/tiny-gan nets/tiny.safetensors")
    assert server.gets == []


def test_hub_missing_file_is_exit_3(server):
    with pytest.raises(MissingResource) as err:
        weights.weights_path("hf://someone/tiny-gan/none.pkl")
    assert err.value.exit_code == 3 and "hf://someone/tiny-gan/none.pkl" in err.value.message
    assert "has no file 'none.pkl' at revision 'main'" in err.value.message


def test_hub_unreachable_endpoint_fails_at_once(server, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{sock.getsockname()[1]}")
    start = time.monotonic()
    with pytest.raises(MissingResource) as err:
        weights.weights_path(HUB_ID)
    assert time.monotonic() - start < 3.0 and err.value.exit_code == 3  # huggingface_hub alone: ~20 s of retries
    assert "refused" in err.value.message and HUB_ID in err.value.message and not weights.read_sources()


def test_cli_blend_layers_takes_a_url_and_a_hub_id(server, tiny_net, tmp_path):
    _, data = tiny_net
    server.files["/base.safetensors"] = data
    server.files[HUB_ROUTE] = save_network(tmp_path / "ft.safetensors", G_ema=tiny_generator(16, seed=5)).read_bytes()
    out = tmp_path / "blend.safetensors"
    res = runner.invoke(app, ["blend-layers", "--base", server.base + "/base.safetensors", "--finetuned", HUB_ID,
                              "--swap-res", "8", "--preview-seeds", "", "--out", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert load_network(out).generator.img_resolution == 16


def test_weights_option_takes_a_url(server, random_vgg19_file, tmp_path):
    """--vgg-weights (and every option that goes through weights_path) accepts a URL."""
    from stylekit.nets.vgg import _resolve_weights_file

    server.files["/vgg19.pth"] = random_vgg19_file.read_bytes()
    path = _resolve_weights_file(server.base + "/vgg19.pth", "vgg19")
    assert path.read_bytes() == random_vgg19_file.read_bytes() and server.hits("/vgg19.pth") == 1


# --- failures that no retry can fix are final at once ------------------------------------------


def test_unresolvable_host_fails_at_once(tmp_path, monkeypatch):
    monkeypatch.delenv("STYLEKIT_OFFLINE", raising=False)
    start = time.monotonic()
    with pytest.raises(DownloadError) as err:
        fetch_url("https://stylekit-test.invalid/net.pkl", tmp_path / "x", retries=3, backoff=1.0, timeout=10)
    assert time.monotonic() - start < 3.0  # with retries it would sleep 1 + 2 + 4 s
    assert err.value.reason == "dns" and "does not resolve" in err.value.message


def test_refused_connection_is_final_and_a_url_option_exits_3(tmp_path, monkeypatch):
    monkeypatch.delenv("STYLEKIT_OFFLINE", raising=False)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/net.pkl"
    start = time.monotonic()
    with pytest.raises(MissingResource) as err:
        weights.weights_path(url)
    assert time.monotonic() - start < 3.0
    assert err.value.exit_code == 3 and "refused" in err.value.message and url in err.value.message


def test_weights_module_still_imports_without_torch():
    import subprocess

    code = "import sys, stylekit.weights; assert 'torch' not in sys.modules and 'huggingface_hub' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_registry_url_shares_the_registry_entry_and_cache(server, tiny_net, monkeypatch):
    """NVlabs' own lines (--network=https://nvlabs-fi-cdn.../metfaces.pkl) reuse `--network metfaces`."""
    _, data = tiny_net
    server.files["/pretrained/tiny.pkl"] = data
    url = server.base + "/pretrained/tiny.pkl"
    spec = weights.WeightSpec("tiny-net", (url,), None, "tiny.pkl", "test", "a test network", len(data))
    monkeypatch.setitem(weights.REGISTRY, "tiny-net", spec)
    assert weights.weights_path(url) == weights.weights_dir() / "tiny.pkl"
    assert weights.weights_path("tiny-net") == weights.weights_dir() / "tiny.pkl"
    assert server.hits("/pretrained/tiny.pkl") == 1 and "tiny-net" in weights.read_checksums()
    assert weights.registry_name_of(weights.REGISTRY["metfaces"].urls[0]) == "metfaces"


@pytest.mark.parametrize("hub", [False, True])
def test_pix2pix_model_by_url_or_hub_fetches_the_generator_and_its_json(server, hub):
    """--model URL/hub id of generator.safetensors (CLI: a Path option) also fetches generator.json beside it."""
    from stylekit.transfer.pix2pix import resolve_model

    prefix = "/someone/p2p/resolve/main/run" if hub else "/runs/p2p"
    server.files[f"{prefix}/generator.safetensors"] = b"weights bytes"
    server.files[f"{prefix}/generator.json"] = b'{"format": "stylekit-pix2pix"}'
    source = "hf://someone/p2p/run/generator.safetensors" if hub else server.base + "/runs/p2p/generator.safetensors"
    weights_file, config_file = resolve_model(Path(source))
    assert weights_file.read_bytes() == b"weights bytes" and config_file.read_bytes() == b'{"format": "stylekit-pix2pix"}'
    assert resolve_model(source[: -len("safetensors")] + "json") == (weights_file, config_file)
    assert server.hits(f"{prefix}/generator.safetensors") == 1 and server.hits(f"{prefix}/generator.json") == 1
    with pytest.raises(BadInput, match="generator.safetensors"):
        resolve_model(server.base + "/runs/p2p/")


@pytest.mark.slow  # one real `stylekit` process (torch import): seconds on an idle machine
def test_real_cli_generate_by_url_then_offline_from_the_cache(server, tiny_net, tmp_path, monkeypatch):
    import subprocess

    _, data = tiny_net
    server.files["/dl/tiny.safetensors"] = data
    url = server.base + "/dl/tiny.safetensors"
    stylekit = str(Path(sys.executable).parent / "stylekit")
    res = subprocess.run([stylekit, "generate", "--network", url, "--seeds", "0", "--out", str(tmp_path / "a"), "--device", "cpu"],
                         env={**os.environ, "OMP_NUM_THREADS": "1", "STYLEKIT_OFFLINE": "0"}, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    monkeypatch.setenv("STYLEKIT_OFFLINE", "1")  # the same cache (STYLEKIT_HOME), no network
    again = runner.invoke(app, ["generate", "--network", url, "--seeds", "0", "--out", str(tmp_path / "b"), "--device", "cpu"])
    assert again.exit_code == 0, again.output
    assert server.hits("/dl/tiny.safetensors") == 1
    assert (tmp_path / "a" / "seed0000.png").read_bytes() == (tmp_path / "b" / "seed0000.png").read_bytes()


def test_registry_groups_keep_family_order_and_put_new_families_last(monkeypatch):
    monkeypatch.setattr(weights, "REGISTRY", dict(weights.REGISTRY))
    weights.register(weights.WeightSpec("x-net", ("https://example.org/x.pkl",), None, "x.pkl", "MIT", "x", family="StyleGAN3"))
    groups = weights.registry_groups()
    assert list(groups)[:2] == [weights.FAMILY_ADA, weights.FAMILY_TRANSFER] and list(groups)[-1] == "StyleGAN3"
    assert sum(len(v) for v in groups.values()) == len(weights.REGISTRY)


@pytest.mark.usefixtures("fake_nvlabs")
def test_nvlabs_snapshot_pickle_by_url_and_hub_loads_like_the_local_file(server, tmp_path):
    """The NVlabs case (metfaces.pkl by its URL): a G/D/G_ema snapshot pickle, read by the restricted unpickler."""
    from test_stylegan_load import _write_snapshot

    from stylekit.nets.stylegan2.tiny import tiny_discriminator

    local = tmp_path / "metfaces.pkl"
    _write_snapshot(local, tiny_generator(16, seed=1), tiny_discriminator(16), tiny_generator(16, seed=2))
    server.files["/pretrained/metfaces.pkl"] = local.read_bytes()
    server.files["/someone/nets/resolve/v1/metfaces.pkl"] = local.read_bytes()
    reference = load_network(local)
    for source in (server.base + "/pretrained/metfaces.pkl", "hf://someone/nets@v1/metfaces.pkl"):
        net = load_network(source)
        assert net.format == "nvlabs-pkl" and net.D is not None
        _same_generator(net, reference)
    assert server.hits("/pretrained/metfaces.pkl") == 1 and server.hits("/someone/nets/resolve/v1/metfaces.pkl") == 1


def test_reachability_check_leaves_proxied_requests_to_the_proxy(monkeypatch):
    from stylekit.data.http import check_reachable

    with pytest.raises(DownloadError, match="does not resolve"):
        check_reachable("https://stylekit-test.invalid/x")
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    check_reachable("https://stylekit-test.invalid/x")  # the proxy may resolve what this machine cannot
