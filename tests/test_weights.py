"""Weights registry and the shared HTTP downloader, against a local HTTP server on 127.0.0.1."""

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from stylekit import weights
from stylekit.data.http import ChecksumMismatch, HttpStatusError, fetch_url, part_path
from stylekit.errors import EXIT_MISSING, BadInput, MissingResource
from stylekit.home import stylekit_home

STYLEKIT = str(Path(sys.executable).parent / "stylekit")


class LocalServer:
    """A tiny file server with Range support, fault injection and a request log."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.status: dict[str, list[int]] = {}  # path -> statuses to answer first (consumed in order)
        self.cut: dict[str, int] = {}  # path -> send only this many bytes once, then drop the connection
        self.ctype: dict[str, str] = {}
        self.log: list[tuple[str, str | None]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?")[0]
                rng = self.headers.get("Range")
                with server._lock:
                    server.log.append((path, rng))
                    queued = server.status.get(path)
                    forced = queued.pop(0) if queued else None
                    cut = server.cut.pop(path, None)
                if forced is not None:
                    return self._plain(forced)
                data = server.files.get(path)
                if data is None:
                    return self._plain(404)
                start, status = 0, 200
                if rng:
                    m = re.match(r"bytes=(\d+)-$", rng)
                    start = int(m.group(1)) if m else 0
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                body = data[start:]
                self.send_response(status)
                self.send_header("Content-Type", server.ctype.get(path, "application/octet-stream"))
                self.send_header("Content-Length", str(len(body)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                if cut is not None:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body if cut is None else body[:cut])
                self.wfile.flush()
                if cut is not None:
                    self.close_connection = True

            def _plain(self, code: int) -> None:
                body = f"status {code}".encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return self.base + path

    def requests_for(self, path: str) -> list[str | None]:
        return [r for p, r in self.log if p == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = LocalServer()
    yield s
    s.close()


@pytest.fixture
def online(monkeypatch):
    monkeypatch.delenv("STYLEKIT_OFFLINE", raising=False)
    monkeypatch.delenv("STYLEKIT_MIRROR", raising=False)


def _payload(n: int = 300_000, seed: int = 0) -> bytes:
    return hashlib.sha256(str(seed).encode()).digest() * (n // 32) + b"x" * (n % 32)


def _fake_spec(monkeypatch, server: LocalServer, data: bytes, name: str = "fake-net", sha256=None, prefix=None, urls=None):
    server.files["/w/fake.bin"] = data
    spec = weights.WeightSpec(name, tuple(urls or [server.url("/w/fake.bin")]), sha256, "fake.bin", "test licence",
                              "a test artifact", len(data), prefix)
    monkeypatch.setitem(weights.REGISTRY, name, spec)
    return spec


# --- registry -------------------------------------------------------------------------------------


def test_registry_has_every_required_name_with_wellformed_entries():
    required = {"vgg16", "vgg19", "inception-fid", "lpips-vgg16", "clip-vit-b-32", "ffhq-256", "ffhq-512",
                "ffhq-1024", "celebahq-256", "lsundog-256", "ffhq", "metfaces", "afhqcat", "afhqdog", "afhqwild",
                "brecahad", "cifar10", "stylegan3-t-ffhq-1024", "stylegan3-r-ffhq-1024", "stylegan3-t-ffhqu-256",
                "stylegan3-r-ffhqu-256", "stylegan3-t-metfaces-1024", "stylegan3-r-afhqv2-512"}
    assert required <= set(weights.REGISTRY)
    for name, spec in weights.REGISTRY.items():
        assert spec.name == name
        assert spec.urls and all(u.startswith("https://") for u in spec.urls)
        assert spec.urls[0].rsplit("/", 1)[-1] == spec.filename
        assert spec.licence and spec.description
        assert spec.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
        assert spec.family in weights.FAMILIES
        if spec.format == "nvlabs-pkl":  # NVIDIA publishes no checksums: recorded on first download, never invented
            assert spec.resolution and spec.size_bytes and spec.sha256 is None and spec.sha256_prefix is None
            assert spec.checksum_policy == "recorded on first download"
    assert weights.REGISTRY["vgg16"].sha256_prefix == "397923af"
    assert weights.REGISTRY["vgg19"].sha256_prefix == "dcbb9e9d"
    clip = weights.REGISTRY["clip-vit-b-32"]  # safetensors (never a TorchScript archive), sha256 pinned
    assert clip.sha256 and clip.filename.endswith(".safetensors")
    assert all(u.startswith("https://huggingface.co/timm/vit_base_patch32_clip_224.openai/resolve/") for u in clip.urls)
    inception = weights.REGISTRY["inception-fid"]  # pytorch-fid's state dict: full sha256 + torch.hub-style prefix
    assert inception.filename == "pt_inception-2015-12-05-6726825d.pth"
    assert inception.sha256 and inception.sha256.startswith(inception.sha256_prefix) and inception.sha256_prefix == "6726825d"
    assert all(spec.format != "torchscript" for name, spec in weights.REGISTRY.items() if name in ("clip-vit-b-32", "inception-fid"))


def test_register_adds_entries_without_overwriting(monkeypatch):
    monkeypatch.setattr(weights, "REGISTRY", dict(weights.REGISTRY))
    extra = weights.WeightSpec("extra-net", ("https://example.org/extra.pth",), None, "extra.pth", "MIT", "an extra entry")
    assert weights.register(extra) is extra and weights.get_spec("extra-net") is extra
    clash = weights.WeightSpec("vgg19", ("https://example.org/v.pth",), None, "v.pth", "MIT", "not vgg19")
    assert weights.register(clash) is not clash and weights.REGISTRY["vgg19"].filename == "vgg19-dcbb9e9d.pth"


def test_weights_module_does_not_import_torch():
    code = "import sys, stylekit.weights, stylekit.data.http; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_home_follows_stylekit_home(monkeypatch, tmp_path):
    monkeypatch.setenv("STYLEKIT_HOME", str(tmp_path / "h"))
    assert stylekit_home() == tmp_path / "h"
    assert weights.weights_dir() == tmp_path / "h" / "weights"
    monkeypatch.delenv("STYLEKIT_HOME")
    assert stylekit_home() == Path.home() / ".cache" / "stylekit"


# --- weights_path ---------------------------------------------------------------------------------


def test_existing_local_file_is_returned_as_is(tmp_path):
    f = tmp_path / "my-net.pkl"
    f.write_bytes(b"abc")
    assert weights.weights_path(str(f)) == f
    assert weights.weights_path(f) == f


def test_unknown_name_lists_registry_names(tmp_path):
    with pytest.raises(BadInput) as err:
        weights.weights_path("ffhq-9999")
    assert "vgg19" in str(err.value) and "ffhq-256" in str(err.value)
    with pytest.raises(BadInput, match="does not exist"):
        weights.weights_path(str(tmp_path / "missing.pkl"))


def test_offline_missing_weights_exit_3_with_fetch_command():
    with pytest.raises(MissingResource) as err:
        weights.weights_path("vgg19")
    assert err.value.exit_code == EXIT_MISSING
    assert "stylekit download vgg19" in err.value.message
    assert err.value.fetch_command == "stylekit download vgg19"


def test_offline_cached_file_without_published_checksum_is_recorded_then_verified(monkeypatch, server):
    spec = _fake_spec(monkeypatch, server, b"local copy of the weights")
    cached = weights.weights_dir() / spec.filename
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"local copy of the weights")
    assert weights.weights_path(spec.name) == cached  # offline: copied-in file is trusted on first use
    entry = weights.read_checksums()[spec.name]
    assert entry["sha256"] == hashlib.sha256(b"local copy of the weights").hexdigest()
    assert weights.weights_path(spec.name) == cached
    cached.write_bytes(b"tampered copy of the weights")
    with pytest.raises(MissingResource) as err:
        weights.weights_path(spec.name)
    assert "checksum" in err.value.message and "stylekit download fake-net --fresh" in str(err.value)
    assert server.log == []  # offline: the network was never touched


# --- downloads ------------------------------------------------------------------------------------


def test_download_records_checksum_and_rerun_is_a_noop(monkeypatch, server, online):
    data = _payload()
    spec = _fake_spec(monkeypatch, server, data)
    res = weights.ensure_weights(spec.name)
    assert not res.skipped and res.path.read_bytes() == data
    assert res.sha256 == hashlib.sha256(data).hexdigest()
    doc = json.loads((weights.weights_dir() / "checksums.json").read_text())
    assert doc["entries"][spec.name]["sha256"] == res.sha256
    again = weights.ensure_weights(spec.name)
    assert again.skipped and again.trust == "recorded on first download"
    assert len(server.log) == 1
    assert weights.weights_path(spec.name) == res.path


def test_resume_from_existing_part_file_uses_range(monkeypatch, server, online):
    data = _payload(500_000, seed=1)
    spec = _fake_spec(monkeypatch, server, data, sha256=hashlib.sha256(data).hexdigest())
    dest = weights.weights_dir() / spec.filename
    dest.parent.mkdir(parents=True)
    part_path(dest).write_bytes(data[:123_456])
    res = weights.ensure_weights(spec.name)
    assert res.path.read_bytes() == data and res.trust == "pinned sha256"
    assert server.requests_for("/w/fake.bin") == ["bytes=123456-"]
    assert not part_path(dest).exists()


def test_interrupted_transfer_resumes_and_completes(server, tmp_path, online):
    data = _payload(400_000, seed=2)
    server.files["/big.bin"] = data
    server.cut["/big.bin"] = 150_000
    got = fetch_url(server.url("/big.bin"), tmp_path / "big.bin", sha256=hashlib.sha256(data).hexdigest(),
                    retries=2, backoff=0.0, timeout=5)
    assert (tmp_path / "big.bin").read_bytes() == data
    reqs = server.requests_for("/big.bin")
    assert reqs[0] is None and reqs[1] is not None and reqs[1].startswith("bytes=")
    assert got.resumed_from > 0 and got.attempts == 2


def test_complete_part_file_with_416_is_finalised(server, tmp_path, online):
    data = b"0123456789" * 1000
    server.files["/done.bin"] = data
    dest = tmp_path / "done.bin"
    part_path(dest).write_bytes(data)
    got = fetch_url(server.url("/done.bin"), dest, sha256=hashlib.sha256(data).hexdigest(), backoff=0.0)
    assert dest.read_bytes() == data and got.size == len(data)


def test_checksum_mismatch_leaves_nothing_in_the_cache(monkeypatch, server, online):
    spec = _fake_spec(monkeypatch, server, _payload(), sha256="0" * 64)
    with pytest.raises(MissingResource) as err:
        weights.ensure_weights(spec.name, retries=0)
    assert "checksum mismatch" in err.value.message
    folder = weights.weights_dir()
    assert not (folder / spec.filename).exists()
    assert not part_path(folder / spec.filename).exists()
    assert spec.name not in weights.read_checksums()


def test_sha256_prefix_is_checked(monkeypatch, server, online, tmp_path):
    data = _payload(1000, seed=3)
    digest = hashlib.sha256(data).hexdigest()
    server.files["/p.bin"] = data
    fetch_url(server.url("/p.bin"), tmp_path / "ok.bin", sha256_prefix=digest[:8], backoff=0)
    with pytest.raises(ChecksumMismatch):
        fetch_url(server.url("/p.bin"), tmp_path / "bad.bin", sha256_prefix="ffffffff", backoff=0)
    assert not (tmp_path / "bad.bin").exists() and not part_path(tmp_path / "bad.bin").exists()


def test_mirrors_are_tried_in_order_and_transient_errors_retried(monkeypatch, server, online):
    data = _payload(5000, seed=4)
    server.files["/m2/fake.bin"] = data
    server.status["/m2/fake.bin"] = [503]  # one transient failure, then success
    spec = _fake_spec(monkeypatch, server, data, urls=[server.url("/m1/fake.bin"), server.url("/m2/fake.bin")])
    res = weights.ensure_weights(spec.name, retries=2, backoff=0.0)
    assert res.url == server.url("/m2/fake.bin") and res.path.read_bytes() == data
    assert len(server.requests_for("/m1/fake.bin")) == 1  # 404 is permanent: not retried
    assert len(server.requests_for("/m2/fake.bin")) == 2


def test_permanent_http_error_reports_status(server, tmp_path, online):
    with pytest.raises(HttpStatusError) as err:
        fetch_url(server.url("/nope"), tmp_path / "x", retries=3, backoff=0)
    assert err.value.status == 404
    assert len(server.log) == 1


def test_all_mirrors_failing_is_exit_3_with_fetch_command(monkeypatch, server, online):
    spec = _fake_spec(monkeypatch, server, b"x", urls=[server.url("/gone1"), server.url("/gone2")])
    with pytest.raises(MissingResource) as err:
        weights.ensure_weights(spec.name, retries=0)
    assert "HTTP 404" in err.value.message and err.value.fetch_command == "stylekit download fake-net"
    assert "STYLEKIT_MIRROR" in err.value.hint and "local weights file" in err.value.hint
    assert "run: stylekit download" not in err.value.hint  # repeating the failing command would not help


def test_unreachable_network_hint_names_the_mirror_variable_and_local_files(monkeypatch, server, online):
    import socket

    with socket.socket() as sock:  # a port nobody listens on: connection refused
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/fake.bin"
    spec = _fake_spec(monkeypatch, server, b"x", urls=[dead])
    with pytest.raises(MissingResource) as err:
        weights.ensure_weights(spec.name, retries=0)
    assert err.value.exit_code == 3 and "network is unreachable" in err.value.hint
    assert "STYLEKIT_MIRROR" in err.value.hint and str(weights.weights_dir()) in err.value.hint


def test_recorded_checksum_guards_later_downloads_and_force_retrusts(monkeypatch, server, online):
    spec = _fake_spec(monkeypatch, server, b"version one")
    first = weights.ensure_weights(spec.name)
    first.path.write_bytes(b"corrupted!!")  # cached copy damaged: re-download, verified against the record
    again = weights.ensure_weights(spec.name)
    assert again.path.read_bytes() == b"version one" and not again.skipped
    server.files["/w/fake.bin"] = b"version two"  # upstream changed
    again.path.unlink()
    with pytest.raises(MissingResource, match="recorded on first download"):
        weights.ensure_weights(spec.name, retries=0)
    assert not again.path.exists()
    trusted = weights.ensure_weights(spec.name, force=True)
    assert trusted.path.read_bytes() == b"version two"
    assert weights.read_checksums()[spec.name]["sha256"] == hashlib.sha256(b"version two").hexdigest()


def test_download_into_out_dir(monkeypatch, server, online, tmp_path):
    spec = _fake_spec(monkeypatch, server, b"payload")
    path = weights.download_weights(spec.name, dest_dir=tmp_path / "mine")
    assert path == tmp_path / "mine" / "fake.bin" and path.read_bytes() == b"payload"
    assert not (weights.weights_dir() / "fake.bin").exists()


def test_real_cli_download_via_site_mirror(server, tmp_path):
    """`stylekit download lpips-vgg16` fetches from $STYLEKIT_MIRROR (the first mirror) and records the checksum."""
    server.files["/mirror/vgg.pth"] = b"not really lpips but bytes all the same"
    env = {**os.environ, "STYLEKIT_HOME": str(tmp_path / "home"), "STYLEKIT_MIRROR": server.url("/mirror")}
    env.pop("STYLEKIT_OFFLINE", None)
    proc = subprocess.run([STYLEKIT, "download", "lpips-vgg16", "--json", "--retries", "0"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["kind"] == "weights" and doc["name"] == "lpips-vgg16" and doc["skipped"] is False
    assert Path(doc["path"]) == tmp_path / "home" / "weights" / "vgg.pth"
    assert doc["sha256"] == hashlib.sha256(server.files["/mirror/vgg.pth"]).hexdigest()
    env["STYLEKIT_OFFLINE"] = "1"
    proc = subprocess.run([STYLEKIT, "download", "lpips-vgg16", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and json.loads(proc.stdout)["skipped"] is True
    proc = subprocess.run([STYLEKIT, "download", "ffhq-256"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3 and "stylekit download ffhq-256" in proc.stderr
