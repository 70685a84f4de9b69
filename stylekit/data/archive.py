"""Safe zip/tar extraction: no member may land outside the destination folder.

Downloaded archives are untrusted. `zipfile.extractall` and `tarfile.extractall` (without a filter)
follow member names such as `../../.bashrc` or `/etc/passwd`, and tar links can point anywhere
("zip-slip"). Here every member is checked before anything is written: absolute paths, drive
letters, `..` components, symlinks, hard links and device/fifo entries are refused with BadInput
naming the archive and the member, and nothing is extracted. Files are then streamed out one by one.
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from stylekit.errors import BadInput
from stylekit.io.console import get_console


def _refuse(archive: Path, member: str, why: str) -> BadInput:
    return BadInput(
        f"{archive}: unsafe archive member '{member}' ({why}); nothing was extracted",
        hint="the archive may be malicious or corrupt: delete it and get it again from the original source",
    )


def safe_member_path(archive: Path, name: str) -> PurePosixPath:
    """The relative path a member may be written to, or BadInput if the name escapes the folder."""
    text = name.replace("\\", "/")
    if not text or "\x00" in text:
        raise _refuse(archive, name, "empty or NUL in name")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise _refuse(archive, name, "absolute path")
    parts = [p for p in PurePosixPath(text).parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise _refuse(archive, name, "'..' in path")
    if not parts:
        raise _refuse(archive, name, "empty path")
    return PurePosixPath(*parts)


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    members = []
    for info in zf.infolist():
        rel = safe_member_path(archive, info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise _refuse(archive, info.filename, "symbolic link")
        if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise _refuse(archive, info.filename, "special file")
        members.append((info, rel))
    return members


def _tar_members(archive: Path, tf: tarfile.TarFile) -> list[tuple[tarfile.TarInfo, PurePosixPath]]:
    members = []
    for info in tf.getmembers():
        rel = safe_member_path(archive, info.name)
        if info.issym():
            raise _refuse(archive, info.name, "symbolic link")
        if info.islnk():
            raise _refuse(archive, info.name, "hard link")
        if not (info.isfile() or info.isdir()):
            raise _refuse(archive, info.name, "special file")
        members.append((info, rel))
    return members


def extract_archive(archive: str | Path, dest: str | Path, progress: str | None = "extracting") -> list[Path]:
    """Extract a .zip or .tar[.gz|.bz2|.xz] into `dest` after checking every member. Returns the files."""
    archive = Path(archive)
    dest = Path(dest)
    if not archive.is_file():
        raise BadInput(f"archive {archive} does not exist")
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    written: list[Path] = []

    def target(rel: PurePosixPath) -> Path:
        out = dest.joinpath(*rel.parts)
        # Belt and braces: a folder symlink already in dest must not redirect a member outside it.
        if not out.resolve().is_relative_to(root):
            raise _refuse(archive, str(rel), "resolves outside the destination")
        return out

    console = get_console()
    if zipfile.is_zipfile(archive):
        try:
            with zipfile.ZipFile(archive) as zf:
                members = _zip_members(archive, zf)
                with console.progress(len(members), progress or "extracting") if progress else _null() as task:
                    for info, rel in members:
                        out = target(rel)
                        if info.is_dir():
                            out.mkdir(parents=True, exist_ok=True)
                        else:
                            out.parent.mkdir(parents=True, exist_ok=True)
                            with zf.open(info) as src, open(out, "wb") as dst:
                                shutil.copyfileobj(src, dst, 1 << 20)
                            written.append(out)
                        if task is not None:
                            task.advance()
        except (zipfile.BadZipFile, EOFError) as exc:
            raise BadInput(f"{archive}: corrupt zip archive ({exc})", hint="delete it and download it again") from None
        return written
    try:
        with tarfile.open(archive) as tf:
            members = _tar_members(archive, tf)
            with console.progress(len(members), progress or "extracting") if progress else _null() as task:
                for info, rel in members:
                    out = target(rel)
                    if info.isdir():
                        out.mkdir(parents=True, exist_ok=True)
                    else:
                        out.parent.mkdir(parents=True, exist_ok=True)
                        src = tf.extractfile(info)
                        if src is None:
                            raise _refuse(archive, info.name, "unreadable member")
                        with src, open(out, "wb") as dst:
                            shutil.copyfileobj(src, dst, 1 << 20)
                        written.append(out)
                    if task is not None:
                        task.advance()
    except tarfile.TarError as exc:
        raise BadInput(f"{archive}: not a readable zip or tar archive ({exc})", hint="delete it and download it again") from None
    return written


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
