"""Batch jobs' files: the prompts read (``read_jobs``), the results file and its manifest
(``ResultsFile``), written whole and resumable (see ``quotegen.jobs``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from quotegen.errors import BatchConflictError, InputError
from quotegen.loading.cache import staged_file

FORMATS_IN = (".txt", ".jsonl", ".parquet")
FORMATS_OUT = (".jsonl", ".parquet")
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Job:
    """One input line: its prompt, its own settings, and how its result is written."""

    index: int
    prompt: str
    settings: dict[str, Any] = field(default_factory=dict)
    custom_id: str | None = None
    openai: bool = False  # an OpenAI batch request: answered with an OpenAI batch-output line
    echo: bool = False


# -- input ------------------------------------------------------------------------------------


def read_jobs(path: Path) -> list[Job]:
    """Every line of a prompts file as a ``Job``; a bad line is an error naming it."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS_IN:
        raise InputError(f"{path}: unknown input format '{suffix}'; use .txt, .jsonl or .parquet.")
    if not path.is_file():
        raise InputError(f"{path}: no such file.")
    if suffix == ".parquet":
        jobs = _read_parquet(path)
    else:
        try:
            text = path.read_text("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{path} is not valid UTF-8 (byte {exc.start + 1}).") from exc
        lines = text.splitlines()
        if suffix == ".txt":
            jobs = [Job(i, line) for i, line in enumerate(lines)]
        else:
            jobs = []
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    jobs.append(_json_job(len(jobs), line, f"{path} line {number}"))
    ids = [j.custom_id for j in jobs if j.custom_id is not None]
    if len(ids) != len(set(ids)):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise InputError(f"{path}: custom_id '{duplicate}' appears more than once.")
    if any(j.openai for j in jobs) and not all(j.openai for j in jobs):
        raise InputError(f"{path}: mixes OpenAI batch requests with plain prompt lines.")
    return jobs


def _json_job(index: int, line: str, where: str) -> Job:
    from pydantic import ValidationError

    from quotegen.openai.protocol import CompletionRequest
    from quotegen.settings import GenerationSettings

    try:
        data = json.loads(line)
    except ValueError as exc:
        raise InputError(f"{where} is not JSON ({exc}).") from exc
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a JSON object.")
    try:
        if "body" in data:  # an OpenAI batch request line
            if data.get("url") != "/v1/completions":
                raise InputError(
                    f"{where}: only /v1/completions requests are supported, not "
                    f"{data.get('url')!r}."
                )
            if not isinstance(data.get("custom_id"), str):
                raise InputError(f"{where}: an OpenAI batch request needs a custom_id string.")
            body = CompletionRequest.model_validate(data["body"])
            if not isinstance(body.prompt, str):
                raise InputError(f"{where}: one prompt per request line (not a list).")
            if body.stream:
                raise InputError(f"{where}: stream is not available in a batch.")
            return Job(
                index,
                body.prompt,
                body.requested(),
                custom_id=data["custom_id"],
                openai=True,
                echo=body.echo,
            )
        prompt = data.get("prompt")
        if not isinstance(prompt, str):
            raise InputError(f'{where}: needs a "prompt" string.')
        settings = data.get("settings") or {}
        if not isinstance(settings, dict):
            raise InputError(f'{where}: "settings" must be an object.')
        GenerationSettings.model_validate(settings)
        custom_id = data.get("custom_id")
        if custom_id is not None and not isinstance(custom_id, str):
            raise InputError(f"{where}: custom_id must be a string.")
        unknown = set(data) - {"prompt", "settings", "custom_id"}
        if unknown:
            raise InputError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}.")
        return Job(index, prompt, dict(settings), custom_id=custom_id)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise InputError(f"{where}: {loc}: {first['msg']}") from exc


def _read_parquet(path: Path) -> list[Job]:
    pq = _pyarrow_parquet()
    table = pq.read_table(path)
    if "prompt" not in table.column_names:
        raise InputError(f"{path}: no 'prompt' column (it has {', '.join(table.column_names)}).")
    prompts = table.column("prompt").to_pylist()
    ids = (
        table.column("custom_id").to_pylist()
        if "custom_id" in table.column_names
        else [None] * len(prompts)
    )
    jobs = []
    for i, (prompt, custom_id) in enumerate(zip(prompts, ids, strict=True)):
        if not isinstance(prompt, str):
            raise InputError(f"{path} row {i}: the prompt is not a string.")
        jobs.append(Job(i, prompt, custom_id=None if custom_id is None else str(custom_id)))
    return jobs


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise InputError(
            "Parquet needs pyarrow: pip install 'quotegen[parquet]' (or 'quotegen[ray]')."
        ) from exc
    return pq


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# -- the run's identity -----------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """What made an output: resuming with anything else would mix two jobs in one file."""

    input_sha256: str
    lines: int
    model: str
    settings: dict[str, Any]
    batch_size: int
    created: int
    version: int = MANIFEST_VERSION

    def differences(self, other: Manifest) -> list[str]:
        """What differs from ``other``, in words (the creation time aside)."""
        found = []
        if self.input_sha256 != other.input_sha256:
            found.append("the input file's content")
        if self.model != other.model:
            found.append(f"the model ({other.model} before, {self.model} now)")
        if self.batch_size != other.batch_size:
            found.append(f"--batch-size ({other.batch_size} before, {self.batch_size} now)")
        for key in sorted(set(self.settings) | set(other.settings)):
            before, now = other.settings.get(key), self.settings.get(key)
            if before != now:
                found.append(f"{key} ({before!r} before, {now!r} now)")
        return found


def manifest_path(output: Path) -> Path:
    return output.with_name(output.name + ".batch.json")


def journal_path(output: Path) -> Path:
    """Where a Parquet output's rows go until the job is complete."""
    return output.with_name(output.name + ".partial.jsonl")


# -- output -----------------------------------------------------------------------------------


class ResultsFile:
    """The output, appended and flushed line by line; resumable.

    ``open`` returns how many input lines are already complete: a prefix, since results are
    written in input order. A torn last line, or a line whose rows are not all there, is cut.
    """

    def __init__(self, output: Path, manifest: Manifest) -> None:
        suffix = output.suffix.lower()
        if suffix not in FORMATS_OUT:
            raise InputError(f"{output}: unknown output format '{suffix}'; use .jsonl or .parquet.")
        self.output = output
        self.parquet = suffix == ".parquet"
        self.rows_path = journal_path(output) if self.parquet else output
        self.manifest = manifest
        self._handle: Any = None

    def open(self, rows_per_line: Sequence[int]) -> int:
        """Check the manifest, repair the tail, and return the number of complete lines."""
        saved = manifest_path(self.output)
        if self.parquet and self.output.exists() and not self.rows_path.exists():
            if saved.exists() and self._saved_manifest(saved).differences(self.manifest) == []:
                return len(rows_per_line)  # complete already
            raise BatchConflictError(
                f"{self.output} exists and was not made by this job: choose another output."
            )
        if self.rows_path.exists() and self.rows_path.stat().st_size > 0:
            if not saved.exists():
                raise BatchConflictError(
                    f"{self.rows_path} exists but was not written by quotegen batch (no "
                    f"{saved.name}): choose another output, or delete it."
                )
            before = self._saved_manifest(saved)
            changed = self.manifest.differences(before)
            if changed:
                raise BatchConflictError(
                    f"{self.output} was made with other settings: {'; '.join(changed)}. Use "
                    "another output file, or run with the same ones to resume."
                )
            self.manifest = before  # keep the original creation time
            done = self._repair(rows_per_line)
        else:
            done = 0
            self.rows_path.parent.mkdir(parents=True, exist_ok=True)
            self.rows_path.write_bytes(b"")
        saved.write_text(json.dumps(asdict(self.manifest), indent=2) + "\n", "utf-8")
        self._handle = self.rows_path.open("ab")
        return done

    @staticmethod
    def _saved_manifest(path: Path) -> Manifest:
        try:
            return Manifest(**json.loads(path.read_text("utf-8")))
        except (ValueError, TypeError) as exc:
            raise BatchConflictError(f"{path} is damaged ({exc}); delete the output.") from exc

    def _repair(self, rows_per_line: Sequence[int]) -> int:
        """Keep the complete lines' rows (a prefix); cut whatever follows them."""
        data = self.rows_path.read_bytes()
        keep = 0  # bytes to keep
        position = 0
        done = 0
        have = 0
        for raw in data.splitlines(keepends=True):
            position += len(raw)
            if not raw.endswith(b"\n"):
                break  # torn by the kill
            try:
                row = json.loads(raw)
            except ValueError:
                break
            if _line_index(row) != done or done >= len(rows_per_line):
                break
            have += 1
            # A line that failed has one row: its error.
            if have == rows_per_line[done] or row.get("error") not in (None, {}):
                done, have, keep = done + 1, 0, position
        if keep < len(data):
            with self.rows_path.open("r+b") as handle:
                handle.truncate(keep)
        return done

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        """One input line's rows, in one write, flushed (a kill leaves whole lines or a tail
        that ``open`` cuts)."""
        payload = b"".join(
            json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
            for row in rows
        )
        self._handle.write(payload)
        self._handle.flush()

    def close(self, complete: bool) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if complete and self.parquet:
            pq = _pyarrow_parquet()
            import pyarrow as pa

            rows = [json.loads(line) for line in self.rows_path.read_bytes().splitlines()]
            with staged_file(self.output) as partial:  # the Parquet file is whole or absent
                pq.write_table(pa.Table.from_pylist(rows), partial)
            self.rows_path.unlink()


def _line_index(row: Mapping[str, Any]) -> int | None:
    index = row.get("index")
    if isinstance(index, int):
        return index
    request = str(row.get("id", ""))
    return int(request.removeprefix("batch_req_")) if request.startswith("batch_req_") else None
