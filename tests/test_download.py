"""`stylekit download`: safe extraction, Kaggle sources with a fake API, Midjourney images, toy-styles, CLI."""

import csv
import io
import json
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from test_weights import LocalServer  # the local 127.0.0.1 file server with Range support
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.data.archive import extract_archive
from stylekit.data.sources import kaggle
from stylekit.data.sources.ledger import read_marker
from stylekit.data.sources.midjourney import download_midjourney, parse_midjourney_messages, split_prompt
from stylekit.data.sources.wikiart import download_wikiart
from stylekit.errors import BadInput, MissingResource


@pytest.fixture
def server():
    s = LocalServer()
    yield s
    s.close()


def _png(colour=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), colour).save(buf, format="PNG")
    return buf.getvalue()


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


class FakeKaggle:
    """Stands in for KaggleApi: writes <slug>.zip with the given members; can fail on the first call."""

    def __init__(self, members: dict[str, bytes], fail_first: bool = False) -> None:
        self.members = members
        self.fail_first = fail_first
        self.calls = 0

    def dataset_download_files(self, dataset, path=None, force=False, quiet=True, unzip=False):
        self.calls += 1
        target = Path(path) / f"{dataset.split('/')[-1]}.zip"
        if self.fail_first and self.calls == 1:
            target.write_bytes(b"PK\x03\x04 half a zip")
            raise ConnectionError("connection reset by peer")
        target.unlink(missing_ok=True)  # a real client resumes; the fake rewrites
        _zip(target, self.members)


def _wikiart_members(styles=("Impressionism", "Cubism"), per=3) -> dict[str, bytes]:
    members = {"wikiart/classes.csv": b"file,artist,genre,style\n"}
    for s in styles:
        for i in range(per):
            members[f"wikiart/{s}/artist_{i}.jpg"] = _png((i * 40, 0, 0))
    return members


# --- archive safety -------------------------------------------------------------------------------


@pytest.mark.parametrize("evil", ["../escape.txt", "a/../../escape.txt", "/abs/escape.txt", "C:/win.txt", "..\\win.txt"])
def test_zip_slip_names_are_refused_and_nothing_is_extracted(tmp_path, evil):
    archive = _zip(tmp_path / "evil.zip", {"ok.txt": b"fine", evil: b"pwned"})
    dest = tmp_path / "out" / "inner"
    with pytest.raises(BadInput) as err:
        extract_archive(archive, dest)
    assert "evil.zip" in err.value.message and evil in err.value.message
    assert not (dest / "ok.txt").exists()
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "out" / "escape.txt").exists()


def test_zip_symlink_member_is_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(BadInput, match="symbolic link"):
        extract_archive(archive, tmp_path / "out")


@pytest.mark.parametrize("kind", ["sym", "hard"])
def test_tar_links_are_refused(tmp_path, kind):
    archive = tmp_path / "links.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        data = b"hello"
        info = tarfile.TarInfo("file.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("link")
        link.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
        link.linkname = "/etc/passwd"
        tf.addfile(link)
    with pytest.raises(BadInput, match="link"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "file.txt").exists()


def test_safe_archives_extract_fully(tmp_path):
    z = _zip(tmp_path / "ok.zip", {"a/b.txt": b"1", "c.txt": b"2", "d/": b""})
    files = extract_archive(z, tmp_path / "z")
    assert sorted(p.relative_to(tmp_path / "z").as_posix() for p in files) == ["a/b.txt", "c.txt"]
    t = tmp_path / "ok.tar"
    with tarfile.open(t, "w") as tf:
        info = tarfile.TarInfo("x/y.txt")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    extract_archive(t, tmp_path / "t")
    assert (tmp_path / "t" / "x" / "y.txt").read_bytes() == b"abc"


# --- wikiart ------------------------------------------------------------------------------------


def test_wikiart_extracts_summarises_and_rerun_is_noop(tmp_path):
    api = FakeKaggle(_wikiart_members())
    out = tmp_path / "wikiart"
    res = download_wikiart(out, api=api)
    assert not res.skipped
    assert res.summary["styles"] == 2 and res.summary["images"] == 6
    assert res.summary["per_style"] == {"Cubism": 3, "Impressionism": 3}
    assert (out / "Cubism" / "artist_0.jpg").is_file() and (out / "classes.csv").is_file()
    assert not (out / ".download").exists() and not (out / ".extracting").exists()
    assert json.loads((out / "download-summary.json").read_text())["images"] == 6
    again = download_wikiart(out, api=api)
    assert again.skipped and again.summary["images"] == 6 and api.calls == 1


def test_wikiart_partial_download_restarts_cleanly(tmp_path):
    api = FakeKaggle(_wikiart_members(per=2), fail_first=True)
    out = tmp_path / "wikiart"
    with pytest.raises(MissingResource, match="rerun"):
        download_wikiart(out, api=api)
    assert read_marker(out) is None
    res = download_wikiart(out, api=api)
    assert res.summary["images"] == 4 and api.calls == 2


def test_wikiart_zip_slip_is_refused(tmp_path):
    api = FakeKaggle({"wikiart/Cubism/a.jpg": _png(), "../../evil.sh": b"rm -rf ~"})
    out = tmp_path / "deep" / "wikiart"
    with pytest.raises(BadInput, match="unsafe archive member"):
        download_wikiart(out, api=api)
    assert not (tmp_path / "evil.sh").exists() and read_marker(out) is None


def test_missing_kaggle_credentials_exit_3(monkeypatch, tmp_path):
    monkeypatch.delenv("STYLEKIT_OFFLINE")  # online: the credentials are what is missing
    for var in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / ".kaggle"))
    result = CliRunner().invoke(app, ["download", "wikiart", "--out", str(tmp_path / "w" / "art")])
    assert result.exit_code == 3
    assert "KAGGLE_API_TOKEN" in result.output and "kaggle.json" in result.output
    assert not (tmp_path / "w").exists()  # credentials are found before OUT is created


def test_offline_kaggle_download_is_exit_3_and_leaves_no_out(tmp_path):
    result = CliRunner().invoke(app, ["download", "midjourney", "--out", str(tmp_path / "m")])
    assert result.exit_code == 3 and "STYLEKIT_OFFLINE" in result.output and not (tmp_path / "m").exists()


@pytest.mark.parametrize("args", [["--size", "1000000"], ["--size", "8"], ["--styles", "11"], ["--per-style", "0"],
                                  ["--timeout", "0"], ["--retries", "-1"], ["--prompt-include", "(unclosed"]])
def test_toy_styles_bounds_are_exit_2_before_anything_is_written(tmp_path, args):
    result = CliRunner().invoke(app, ["download", "toy-styles", "--out", str(tmp_path / "toy"), *args])
    assert result.exit_code == 2 and args[0] in result.stderr and not (tmp_path / "toy").exists()


def test_toy_style_count_matches_the_declaration():
    from stylekit.configs.download import DATASET_NAMES, TOY_STYLE_COUNT
    from stylekit.data.sources import DATASETS
    from stylekit.data.toy import TOY_STYLES

    assert TOY_STYLE_COUNT == len(TOY_STYLES) and tuple(DATASETS) == DATASET_NAMES


def test_kaggle_refusal_is_exit_3(monkeypatch, tmp_path):
    class Refusing:
        def dataset_download_files(self, *a, **k):
            raise RuntimeError("(401) Unauthorized")

    monkeypatch.setattr(kaggle, "kaggle_api", lambda: Refusing())
    monkeypatch.delenv("STYLEKIT_OFFLINE")  # the fake client stands in for the network
    result = CliRunner().invoke(app, ["download", "midjourney", "--out", str(tmp_path / "m")])
    assert result.exit_code == 3 and "KAGGLE_API_TOKEN" in result.output


# --- midjourney -----------------------------------------------------------------------------------


def test_split_prompt_separates_parameters():
    assert split_prompt("**a castle in the sky --ar 16:9 --v 3** - <@123> (fast)") == ("a castle in the sky", "--ar 16:9 --v 3")
    assert split_prompt("**just words** - Upscaled by <@9>") == ("just words", "")
    assert split_prompt("no bold --q 2") == ("no bold", "--q 2")
    assert split_prompt("**<https://s.mj.run/x> a cat-dog --stylize 500**") == ("<https://s.mj.run/x> a cat-dog", "--stylize 500")


def _mj_dump(base: str, names: list[str]) -> bytes:
    msgs = []
    for i, name in enumerate(names):
        msgs.append([{
            "id": str(i),
            "content": f"**prompt number {i} --ar 3:2** - <@42> (fast)",
            "attachments": [{"id": str(i), "filename": f"{name}", "url": f"{base}/att/{name}",
                             "proxy_url": f"{base}/proxy/{name}", "width": 1024, "height": 682}],
        }])
    msgs.append([{"id": "x", "content": "**no image yet** (Waiting to start)", "attachments": []}])
    return json.dumps({"messages": msgs, "total_results": len(msgs)}).encode()


def test_parse_midjourney_messages_nested_dump():
    rows = parse_midjourney_messages(json.loads(_mj_dump("http://h", ["a.png", "b.png"])))
    assert [r["filename"] for r in rows] == ["a.png", "b.png"]
    assert rows[0] == {"prompt": "prompt number 0", "params": "--ar 3:2", "url": "http://h/att/a.png",
                       "width": 1024, "height": 682, "filename": "a.png"}


def test_midjourney_prompts_and_images_with_dead_links(server, monkeypatch, tmp_path):
    monkeypatch.delenv("STYLEKIT_OFFLINE", raising=False)
    names = [f"img{i}.png" for i in range(8)]
    for n in names[:4]:
        server.files[f"/att/{n}"] = _png()
    server.status["/att/img4.png"] = [403]
    server.files["/att/img5.png"] = b"<html>expired</html>"
    server.ctype["/att/img5.png"] = "text/html"
    # img6, img7: 404
    api = FakeKaggle({"midjourney/general-1/2022_06_20.json": _mj_dump(server.base, names[:5]),
                      "midjourney/general-2/2022_06_21.json": _mj_dump(server.base, names[5:]),
                      "midjourney/broken.json": b"{not json"})
    out = tmp_path / "mj"
    res = download_midjourney(out, api=api, images=8, concurrency=4, retries=1, backoff=0.0, timeout=5)
    lines = (out / "prompts.csv").read_text().splitlines()
    assert lines[0] == "prompt,params,url,width,height,filename" and len(lines) == 9
    assert res.summary["rows"] == 8 and res.summary["bad_json_files"] == 1
    report = res.summary["images"]
    assert report["fetched"] == 4 and report["dead"] == 4
    assert report["dead_by_status"] == {"403": 1, "404": 2, "not-image": 1}
    assert len(list((out / "images").glob("*.png"))) == 4
    dead_rows = (out / "dead_links.csv").read_text().splitlines()
    assert len(dead_rows) == 5 and all(server.base in r for r in dead_rows[1:])

    # Rerun: prompts complete (marker), fetched images skipped, 4xx links not retried.
    before = len(server.log)
    again = download_midjourney(out, api=api, images=8, concurrency=4, retries=1, backoff=0.0, timeout=5)
    assert api.calls == 1
    assert again.summary["images"]["already_present"] == 4 and again.summary["images"]["fetched"] == 0
    assert again.summary["images"]["dead_by_status"] == {"403": 1, "404": 2, "not-image": 1}
    assert len(server.log) - before == 1  # only the not-an-image link is tried again
    assert again.skipped


def test_midjourney_prompt_filter_selects_before_fetching_and_prepare_keeps_prompts(server, monkeypatch, tmp_path):
    monkeypatch.delenv("STYLEKIT_OFFLINE", raising=False)
    prompts = ["portrait of a woman in oil", "a man walking, ink", "robot woman", "Mango still life",
               "WOMAN with a hat", "landscape at dusk", "womanhood abstract"]
    msgs = [[{"id": str(i), "content": f"**{p} --v 4** - <@1> (fast)",
              "attachments": [{"filename": f"p{i}.png", "url": f"{server.base}/att/p{i}.png"}]}] for i, p in enumerate(prompts)]
    for i in range(len(prompts)):
        server.files[f"/att/p{i}.png"] = _png()
    api = FakeKaggle({"midjourney/a.json": json.dumps({"messages": msgs}).encode()})
    out = tmp_path / "mj"
    monkeypatch.setattr(kaggle, "kaggle_api", lambda: api)
    res = CliRunner().invoke(app, ["download", "midjourney", "--out", str(out), "--images", "10", "--json",
                                   "--prompt-include", "woman|man", "--prompt-exclude", "robot"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)["summary"]["images"]
    # whole words, any case: not "Mango", not "womanhood"; "robot woman" removed by the exclude
    assert report["filter"] == {"include": "woman|man", "exclude": "robot", "rows": 7, "matched_include": 4,
                                "removed_by_exclude": 1, "selected": 3}
    assert report["fetched"] == 3 and len(server.log) == 3  # nothing outside the selection was requested
    wanted = ["WOMAN with a hat", "a man walking, ink", "portrait of a woman in oil"]
    with (out / "images.csv").open(encoding="utf-8", newline="") as fh:
        index = list(csv.DictReader(fh))
    assert sorted(r["prompt"] for r in index) == wanted and all(r["path"].startswith("images/") for r in index)

    res = CliRunner().invoke(app, ["prepare", str(out / "images.csv"), str(tmp_path / "prepared"), "--size", "16", "--split", "1", "--json"])
    assert res.exit_code == 0, res.output
    with (tmp_path / "prepared" / "manifest.csv").open(encoding="utf-8", newline="") as fh:
        assert sorted(r["prompt"] for r in csv.DictReader(fh)) == wanted

    res = CliRunner().invoke(app, ["download", "midjourney", "--out", str(out), "--images", "1", "--prompt-include", "(unclosed"])
    assert res.exit_code == 2 and "--prompt-include" in res.output


# --- CLI ----------------------------------------------------------------------------------------


def test_cli_unknown_name_exit_2_lists_all_names():
    result = CliRunner().invoke(app, ["download", "imagenet", "--out", "x"])
    assert result.exit_code == 2
    for name in ("wikiart", "midjourney", "toy-styles", "vgg19", "ffhq-256", "clip-vit-b-32"):
        assert name in result.output


def test_cli_list_json():
    result = CliRunner().invoke(app, ["download", "--list", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {d["name"] for d in doc["datasets"]} == {"wikiart", "midjourney", "toy-styles"}
    names = {w["name"] for w in doc["weights"]}
    assert {"vgg16", "inception-fid", "lsundog-256"} <= names
    assert all(w["licence"] and w["urls"] for w in doc["weights"])


NVLABS_ADA = {"ffhq": (1024, "ffhq.pkl"), "metfaces": (1024, "metfaces.pkl"), "afhqcat": (512, "afhqcat.pkl"),
              "afhqdog": (512, "afhqdog.pkl"), "afhqwild": (512, "afhqwild.pkl"), "brecahad": (512, "brecahad.pkl"),
              "cifar10": (32, "cifar10.pkl")}


def test_cli_list_groups_by_family_and_names_the_nvlabs_files():
    result = CliRunner().invoke(app, ["download", "--list", "--json"])
    doc = json.loads(result.stdout)
    by_name = {w["name"]: w for w in doc["weights"]}
    for name, (res, filename) in NVLABS_ADA.items():
        w = by_name[name]
        assert w["resolution"] == res and w["filename"] == filename and w["size_bytes"] > 200e6
        assert w["urls"] == [f"https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/{filename}"]
        assert w["family"] == "StyleGAN2-ADA networks (NVlabs release)" and "NVIDIA Source Code License" in w["licence"]
    families = [w["family"] for w in doc["weights"]]
    assert families == sorted(families, key=families.index)  # each family in one run: grouped
    text = CliRunner().invoke(app, ["download", "--list"], env={"COLUMNS": "400"}).output
    assert "weights: StyleGAN2-ADA networks (NVlabs release)" in text and "weights: ImageNet backbones" in text
    ada_table = text.split("weights: StyleGAN2-ADA networks")[1].split("weights: ")[0]
    for name, (_, filename) in NVLABS_ADA.items():
        assert f"{name} " in ada_table and filename in ada_table
    assert "ffhq-res1024-mirror-stylegan2-noaug.pkl" in text.split("weights: StyleGAN2 transfer-learning")[1]


def test_cli_dataset_needs_out_and_offline_weights_exit_3():
    result = CliRunner().invoke(app, ["download", "toy-styles"])
    assert result.exit_code == 2 and "--out" in result.output
    result = CliRunner().invoke(app, ["download", "celebahq-256"])
    assert result.exit_code == 3 and "stylekit download celebahq-256" in result.output


def test_cli_wikiart_with_fake_api_json_and_idempotent(monkeypatch, tmp_path):
    api = FakeKaggle(_wikiart_members(per=1))
    monkeypatch.setattr(kaggle, "kaggle_api", lambda: api)
    monkeypatch.delenv("STYLEKIT_OFFLINE")  # the fake client stands in for the network
    out = tmp_path / "w"
    result = CliRunner().invoke(app, ["download", "wikiart", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["kind"] == "dataset" and doc["summary"]["styles"] == 2 and doc["skipped"] is False
    result = CliRunner().invoke(app, ["download", "wikiart", "--out", str(out), "--json"])
    assert json.loads(result.stdout)["skipped"] is True and api.calls == 1


def test_cli_toy_styles_marker_makes_rerun_a_noop(tmp_path):
    out = tmp_path / "toy"
    args = ["download", "toy-styles", "--out", str(out), "--size", "16", "--per-style", "2", "--styles", "2", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["skipped"] is False and read_marker(out)["params"]["per_style"] == 2
    pngs = sorted(out.rglob("*.png"))
    assert len(pngs) == 6  # 2 styles + content, 2 layouts each
    mtimes = [p.stat().st_mtime_ns for p in pngs]
    result = CliRunner().invoke(app, args)
    assert json.loads(result.stdout)["skipped"] is True
    assert [p.stat().st_mtime_ns for p in pngs] == mtimes
    changed = CliRunner().invoke(app, [*args[:-1], "--seed", "1"])
    assert changed.exit_code == 2 and "--fresh" in changed.output
