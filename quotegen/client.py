"""Client mode: ``generate`` sends its work to a running ``quotegen serve`` (native API).

No torch, no transformers: a call costs an interpreter start and a request, not a model load.
Results are the server's ``GenerationResult``s, made to read exactly as a local run's would:
each request carries the run's base seed shifted to its first prompt, so row ``k`` of prompt
``i`` gets seed ``base + i * n + k`` as it does locally, and indices count from the start of
the input. Only the standard library speaks HTTP here (``urllib``), to keep the call fast.
"""

from __future__ import annotations

import json
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from quotegen.errors import QuotegenError, UnauthorizedError
from quotegen.schemas import GenerationResult
from quotegen.settings import MAX_PROMPTS, GenerationSettings

#: Requests in flight at once: enough to keep the server's batches full.
IN_FLIGHT = 4


class ServerError(QuotegenError):
    """The server answered with an error (its message is passed on)."""

    error_type = "server_error"


class ServerUnreachableError(QuotegenError):
    error_type = "server_unreachable"


class Client:
    """A quotegen server's native API: ``/info``, ``/v1/generate``, ``/v1/generate/stream``."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 600.0) -> None:
        if not url.startswith(("http://", "https://")):
            url = f"http://{url}"
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = json.load(self._open("GET", "/info"))
        return info

    def settings(self, given: dict[str, Any]) -> GenerationSettings:
        """What a local run would use: the flags, over the served model's defaults."""
        defaults = self.info().get("defaults", {})
        return GenerationSettings.model_validate({**defaults, **given})

    def generate(
        self, prompts: list[str], settings: GenerationSettings, *, start_index: int = 0
    ) -> list[GenerationResult]:
        """Results for ``prompts`` as if they were prompts ``start_index``… of a local run."""
        body = {"prompts": prompts, "settings": _shifted(settings, start_index).model_dump()}
        reply = json.load(self._open("POST", "/v1/generate", body))
        return [_as_local(r, settings, start_index) for r in reply["results"]]

    def stream(self, prompt: str, settings: GenerationSettings) -> RemoteStream:
        body = {"prompt": prompt, "settings": settings.model_dump(exclude={"n"})}
        return RemoteStream(self._open("POST", "/v1/generate/stream", body), settings)

    def _open(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url + path, data, headers, method=method)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            raise self._error(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerUnreachableError(
                f"Cannot reach the quotegen server at {self.url} ({reason}). Start one with "
                "`quotegen serve`, or unset QUOTEGEN_SERVER to generate locally."
            ) from None

    def _error(self, exc: urllib.error.HTTPError) -> QuotegenError:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError, OSError):
            message = f"HTTP {exc.code} {exc.reason}"
        if exc.code == 401:
            return UnauthorizedError(
                f"The server at {self.url} refused the API key: {message} "
                "Set QUOTEGEN_API_KEY to the key it was started with."
            )
        return ServerError(f"The server at {self.url} answered {exc.code}: {message}")


class RemoteStream:
    """One prompt streamed from the server, as ``generation.TextStream`` is locally: iterate
    for text pieces; then ``result`` holds the result. ``prompt`` is the prompt used."""

    def __init__(self, response: Any, settings: GenerationSettings) -> None:
        self._events = _server_sent_events(response)
        self._settings = settings
        self.result: GenerationResult | None = None
        self.prompt = ""
        for event, data in self._events:
            if event == "prompt":
                self.prompt = data["prompt"]
                break
            self._check(event, data)

    def __iter__(self) -> Iterator[str]:
        for event, data in self._events:
            if event == "token":
                yield data["text"]
            elif event == "result":
                self.result = _as_local(data, self._settings, 0)
            else:
                self._check(event, data)
        if self.result is None:
            raise ServerError("The server closed the stream before the result.")

    @staticmethod
    def _check(event: str, data: Any) -> None:
        if event == "error":
            raise ServerError(f"The server failed: {data['error']['message']}")


def send_ordered(
    client: Client, prompts: Iterable[str], settings: GenerationSettings, *, batch_size: int
) -> Iterator[GenerationResult]:
    """Every result of ``prompts``, in input order, each as soon as it and those before it
    are back. Prompts are read on a thread and sent in chunks of what is waiting (at most
    ``batch_size``), up to ``IN_FLIGHT`` requests at once: a slow trickle of stdin lines gets
    answers line by line, a big file gets full batches."""
    lines: queue.Queue[str | None] = queue.Queue(maxsize=batch_size * IN_FLIGHT * 2)
    failure: list[BaseException] = []

    def read() -> None:
        try:
            for prompt in prompts:
                lines.put(prompt)
        except BaseException as exc:  # surfaced on the main thread
            failure.append(exc)
        finally:
            lines.put(None)

    threading.Thread(target=read, daemon=True, name="quotegen-prompts").start()
    size = max(1, min(batch_size, MAX_PROMPTS))
    pending: queue.Queue[Future[list[GenerationResult]] | None] = queue.Queue(IN_FLIGHT)
    with ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="quotegen-request") as pool:

        def send() -> None:
            start, ended = 0, False
            while not ended:
                first = lines.get()
                if first is None:
                    break
                chunk = [first]
                while len(chunk) < size:
                    try:
                        line = lines.get_nowait()
                    except queue.Empty:
                        break
                    if line is None:
                        ended = True
                        break
                    chunk.append(line)
                pending.put(pool.submit(client.generate, chunk, settings, start_index=start))
                start += len(chunk)
            pending.put(None)

        sender = threading.Thread(target=send, daemon=True, name="quotegen-sender")
        sender.start()
        while (future := pending.get()) is not None:
            yield from future.result()
    if failure:
        raise failure[0]


def _shifted(settings: GenerationSettings, start_index: int) -> GenerationSettings:
    """The settings of a request whose first prompt is prompt ``start_index`` of the run."""
    assert settings.seed is not None
    from quotegen.settings import MAX_SEED

    return settings.model_copy(
        update={"seed": (settings.seed + start_index * settings.n) % MAX_SEED}
    )


def _as_local(
    data: dict[str, Any], settings: GenerationSettings, start_index: int
) -> GenerationResult:
    """A server result renumbered as in a local run (input index, the run's base seed)."""
    result = GenerationResult.model_validate(data)
    result.index += start_index
    result.settings = result.settings.model_copy(update={"seed": settings.seed})
    return result


def _server_sent_events(response: Any) -> Iterator[tuple[str, Any]]:
    """``(event, data)`` pairs of a ``text/event-stream`` response, read as they arrive."""
    event, data = "message", []
    with response:
        for raw in response:
            line = raw.decode("utf-8").rstrip("\r\n")
            if not line:
                if data:
                    yield event, json.loads("\n".join(data))
                event, data = "message", []
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
