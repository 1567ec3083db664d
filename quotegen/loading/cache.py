"""quotegen's cache, and writing into it whole: its root, content hashes, and staging.

The root is ``QUOTEGEN_CACHE``, else ``quotegen/`` under huggingface_hub's ``HF_HOME``. What a
conversion, merge or fetch makes is written into a staging place beside its final one, named
for the writing process (``.NAME.PID.partial``), and renamed into place when it is whole: a
killed process leaves no half-made model behind, and the staging it left is swept by the
next writer once that process is gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from quotegen.config import ENV_CACHE, env

_STAGING = re.compile(r"^\..+\.(\d+)\.partial$")


def cache_root() -> Path:
    """Where converted models live: ``QUOTEGEN_CACHE``, else ``$HF_HOME/quotegen``."""
    explicit = env(ENV_CACHE)
    if explicit:
        return Path(explicit).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HOME).expanduser() / "quotegen"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stat_key(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def remembered_sha256(path: Path) -> str:
    """The file's sha256, remembered by path, size and modification time, so a file (a GGUF,
    an adapter's weights) is hashed once rather than on every load."""
    index_path = cache_root() / "hashes.json"
    try:
        index = json.loads(index_path.read_text("utf-8"))
    except (OSError, ValueError):
        index = {}
    key = _stat_key(path)
    if isinstance(index, dict) and isinstance(index.get(key), str):
        return str(index[key])
    digest = file_sha256(path)
    index = index if isinstance(index, dict) else {}
    index[key] = digest
    # A read-only cache (a prepared Docker image) only costs the hashing next time.
    with contextlib.suppress(OSError), staged_file(index_path) as staging:
        staging.write_text(json.dumps(index, indent=1))
    return digest


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def sweep_stale(folder: Path) -> list[Path]:
    """Remove the staging files and folders in ``folder`` whose writing process is gone (a
    ``quotegen download`` killed mid-conversion); the ones removed."""
    swept = []
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            match = _STAGING.match(entry.name)
            if match is None or int(match.group(1)) == os.getpid() or _alive(int(match.group(1))):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            swept.append(entry)
    return swept


def _staging(final: Path) -> Path:
    return final.parent / f".{final.name}.{os.getpid()}.partial"


@contextlib.contextmanager
def staged_folder(final: Path) -> Iterator[Path]:
    """A fresh staging folder beside ``final``, renamed to ``final`` when the block succeeds
    (and removed when it fails). A folder another process completed first is kept."""
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(final.parent)
    staging = _staging(final)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        try:
            os.rename(staging, final)
        except OSError:
            if not (final / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def staged_file(final: Path) -> Iterator[Path]:
    """A staging path beside ``final`` to write; it replaces ``final`` when the block
    succeeds, and is removed when it fails."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = _staging(final)
    try:
        yield staging
        os.replace(staging, final)
    finally:
        staging.unlink(missing_ok=True)
