"""The Kaggle client: credentials (exit 3 with how to provide them) and a data set's zip."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any, Protocol

from stylekit.errors import MissingResource
from stylekit.io.console import get_console
from stylekit.offline import require_online

CREDENTIALS_HINT = (
    "create a token at https://www.kaggle.com/settings (API -> Create New Token), then either "
    "export KAGGLE_API_TOKEN=<token>, or put kaggle.json in ~/.kaggle/ (chmod 600), "
    "or export KAGGLE_USERNAME and KAGGLE_KEY"
)


class KaggleLike(Protocol):
    def dataset_download_files(self, dataset: str, path: str | None = None, force: bool = False,
                               quiet: bool = True, unzip: bool = False) -> Any: ...


def kaggle_api() -> KaggleLike:
    """An authenticated KaggleApi, or MissingResource (exit 3) that says how to provide credentials.

    The kaggle package authenticates at import and prints help on stdout when it fails; both are
    captured so `--json` output stays clean.
    """
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError as exc:
        raise MissingResource(
            f"the kaggle package cannot be imported ({type(exc).__name__}: {exc})",
            hint="reinstall it in this environment: pip install --upgrade kaggle six",
        ) from None
    except (SystemExit, Exception) as exc:  # noqa: BLE001 - kaggle/__init__ authenticates at import
        raise MissingResource(f"the kaggle package failed to start ({type(exc).__name__}: {exc})", hint=CREDENTIALS_HINT) from None
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            api = KaggleApi()
            api.authenticate()
    except (SystemExit, Exception) as exc:  # noqa: BLE001 - authenticate() calls exit(1)
        detail = f" ({type(exc).__name__}: {exc})" if not isinstance(exc, SystemExit) and str(exc) else ""
        raise MissingResource(
            f"no usable Kaggle credentials{detail}: set KAGGLE_API_TOKEN, or ~/.kaggle/kaggle.json, "
            "or KAGGLE_USERNAME+KAGGLE_KEY",
            hint=CREDENTIALS_HINT,
        ) from None
    return api


def connect(dataset: str, out: Path) -> KaggleLike:
    """An authenticated client for `dataset`, before OUT is created: offline or without credentials the
    download ends (exit 3) leaving nothing behind."""
    require_online(f"Kaggle data set {dataset}", f"kaggle datasets download -d {dataset} -p {out}")
    return kaggle_api()


def kaggle_zip(api: KaggleLike, dataset: str, staging: Path) -> Path:
    """Download a Kaggle data set's zip into `staging` (the Kaggle client resumes a partial one)."""
    staging.mkdir(parents=True, exist_ok=True)
    get_console().log(f"downloading Kaggle data set {dataset} into {staging} (this can take long)")
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink):
            api.dataset_download_files(dataset, path=str(staging), quiet=True, unzip=False)
    except (SystemExit, Exception) as exc:  # noqa: BLE001 - the client raises many kinds
        text = str(exc)
        if isinstance(exc, SystemExit) or "401" in text or "403" in text or "nauthorized" in text:
            raise MissingResource(f"Kaggle refused the download of {dataset}: {text or 'not authenticated'}",
                                  hint=CREDENTIALS_HINT + f"; and accept the data set's terms on kaggle.com/datasets/{dataset}") from None
        raise MissingResource(f"Kaggle download of {dataset} failed: {type(exc).__name__}: {text}",
                              hint="check the network and rerun the same command: it resumes") from None
    slug = dataset.split("/")[-1]
    expected = staging / f"{slug}.zip"
    zips = [expected] if expected.is_file() else sorted(staging.glob("*.zip"))
    if not zips:
        raise MissingResource(f"Kaggle reported success but no zip for {dataset} is in {staging}",
                              hint="rerun the command; if it persists, download the zip by hand and extract it into --out")
    return zips[0]
