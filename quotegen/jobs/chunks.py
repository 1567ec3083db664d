"""One chunk of a batch job generated as one batch (here, or in a Ray replica), and its
output rows: ``generate --json`` rows, or OpenAI batch-output lines."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from quotegen.errors import QuotegenError
from quotegen.jobs.files import Job
from quotegen.openai.format import exception_body
from quotegen.openai.protocol import OpenAIRequest

if TYPE_CHECKING:
    from quotegen.settings import GenerationSettings


def chunks(jobs: Sequence[Job], size: int) -> list[list[Job]]:
    """The fixed chunks of a job: lines [k * size, (k + 1) * size)."""
    return [list(jobs[i : i + size]) for i in range(0, len(jobs), size)]


class ModelDefaults:
    """Settings resolution for a model not loaded here (a Ray job's driver): the same
    ``settings`` as ``TextEngine.settings``, from the model's declared defaults."""

    def __init__(self, generation_config: Mapping[str, Any]) -> None:
        self.generation_config = dict(generation_config)

    def settings(
        self, given: Mapping[str, Any], fallback: Mapping[str, Any] | None = None
    ) -> GenerationSettings:
        from quotegen.settings import resolve_settings

        return resolve_settings(given, self.generation_config, fallback)


def job_settings(engine: Any, job: Job, given: Mapping[str, Any]) -> GenerationSettings:
    """A line's settings: its own, over the run's flags, over the model's defaults (and, for
    OpenAI requests, OpenAI's)."""
    fallback = OpenAIRequest.DEFAULTS if job.openai else None
    resolved: GenerationSettings = engine.settings({**given, **job.settings}, fallback)
    return resolved


def run_chunk(
    engine: Any, jobs: Sequence[Job], given: Mapping[str, Any], created: int
) -> list[list[dict[str, Any]]]:
    """Generate one chunk as one batch; each line's output rows (JSON objects)."""
    prepared: list[tuple[Job, list[Any] | QuotegenError]] = []
    for job in jobs:
        try:
            rows = engine.prepare(
                [job.prompt], job_settings(engine, job, given), start_index=job.index
            )
        except QuotegenError as exc:
            prepared.append((job, exc))
            continue
        prepared.append((job, rows))
    engine.run([row for _, rows in prepared if isinstance(rows, list) for row in rows])
    out = []
    for job, rows in prepared:
        if isinstance(rows, QuotegenError):
            out.append([_error_row(job, rows)])
            continue
        failed = next((r.error for r in rows if r.error is not None), None)
        if failed is not None:
            from quotegen.errors import as_user_error

            out.append([_error_row(job, as_user_error(failed))])
            continue
        out.append(_output_rows(job, engine.chosen(rows), created))
    return out


def _output_rows(job: Job, results: list[Any], created: int) -> list[dict[str, Any]]:
    if not job.openai:
        extra = {"custom_id": job.custom_id} if job.custom_id is not None else {}
        return [{**r.model_dump(mode="json"), **extra} for r in results]
    from quotegen.openai.format import completion_choices, usage
    from quotegen.openai.protocol import CompletionResponse

    body = CompletionResponse(
        id=f"cmpl-batch-{job.index}",
        created=created,
        model=results[0].model,
        choices=completion_choices(results, job.echo),
        usage=usage(results),
    )
    return [
        {
            "id": f"batch_req_{job.index}",
            "custom_id": job.custom_id,
            "response": {
                "status_code": 200,
                "request_id": f"req_{job.index}",
                "body": body.model_dump(mode="json"),
            },
            "error": None,
        }
    ]


def _error_row(job: Job, error: QuotegenError) -> dict[str, Any]:
    """A line that could not be generated (e.g. a prompt longer than the context): its error,
    so one bad line does not stop a million-line job."""
    detail = {"code": error.error_type, "message": error.message}
    if job.openai:
        return {
            "id": f"batch_req_{job.index}",
            "custom_id": job.custom_id,
            "response": {
                "status_code": error.http_status,
                "request_id": f"req_{job.index}",
                "body": exception_body(error),
            },
            "error": None,
        }
    row: dict[str, Any] = {"index": job.index, "sample": 0, "prompt": job.prompt, "error": detail}
    if job.custom_id is not None:
        row["custom_id"] = job.custom_id
    return row


def rows_per_line(jobs: Sequence[Job], resolver: Any, given: Mapping[str, Any]) -> list[int]:
    """How many output rows each line has (``n`` rows, or one OpenAI line)."""
    return [1 if job.openai else job_settings(resolver, job, given).n for job in jobs]


def run_local(
    engine: Any, pending: Sequence[list[Job]], given: Mapping[str, Any], created: int
) -> Iterator[list[list[dict[str, Any]]]]:
    """Each pending chunk's output rows, in order, generated here."""
    for chunk in pending:
        yield run_chunk(engine, chunk, given, created)


def now() -> int:
    return int(time.time())
