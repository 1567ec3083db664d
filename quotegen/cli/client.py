"""Client mode: ``generate`` sends its work to a running ``quotegen serve`` (native API).

No torch, no transformers, not even pydantic: a call costs an interpreter start and a request,
not a model load. The server validates the settings (its errors name the field) and resolves
them over its model's defaults exactly as a local run would; each request says where its
prompts start in the run (``start_index``), so indices and seeds are a local run's too.
Results stay the JSON objects the server sent. Only the standard library speaks HTTP here
(``urllib``), to keep the call fast.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from quotegen.config import MAX_PROMPTS, PROMPT_READER
from quotegen.errors import QuotegenError, ServerError, ServerUnreachableError, UnauthorizedError

#: Requests in flight at once: enough to keep the server's batches full.
IN_FLIGHT = 4
#: How long a call waits for a server that is loading its model or briefly full (503).
WAIT_FOR_SERVER_S = 120.0
RETRIED = {"not_ready", "overloaded"}
#: A result as the server sent it: the ``GenerationResult`` schema, as JSON.
Result = dict[str, Any]


class Client:
    """A quotegen server's native API: ``/v1/generate`` and ``/v1/generate/stream``."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 600.0) -> None:
        if not url.startswith(("http://", "https://")):
            url = f"http://{url}"
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def generate(
        self, prompts: list[str], settings: dict[str, Any], *, start_index: int = 0
    ) -> list[Result]:
        """Results for ``prompts`` as prompts ``start_index``… of one run with ``settings``
        (the settings the user chose; the server's model fills in the rest)."""
        body = {"prompts": prompts, "settings": settings, "start_index": start_index}
        results: list[Result] = json.load(self._open("/v1/generate", body))["results"]
        return results

    def stream(self, prompt: str, settings: dict[str, Any]) -> RemoteStream:
        settings = {k: v for k, v in settings.items() if k != "n"}
        body = {"prompt": prompt, "settings": settings}
        return RemoteStream(self._open("/v1/generate/stream", body))

    def _open(self, path: str, body: dict[str, Any]) -> Any:
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.url + path, data, headers, method="POST")
        deadline = time.monotonic() + WAIT_FOR_SERVER_S
        try:
            while True:
                try:
                    return urllib.request.urlopen(request, timeout=self.timeout)
                except urllib.error.HTTPError as exc:
                    error = self._error(exc)
                    # A server still loading its model, or full for a moment, is waited for.
                    waiting = isinstance(error, ServerError) and error.code in RETRIED
                    if not waiting or time.monotonic() > deadline:
                        raise error from None
                    time.sleep(float(exc.headers.get("Retry-After") or 1))
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerUnreachableError(
                f"Cannot reach the quotegen server at {self.url} ({reason}). Start one with "
                "`quotegen serve`, or unset QUOTEGEN_SERVER to generate locally."
            ) from None

    def _error(self, exc: urllib.error.HTTPError) -> QuotegenError:
        try:
            error = json.loads(exc.read())["error"]
            message, param, code = str(error["message"]), error.get("param"), error.get("code")
        except (ValueError, KeyError, TypeError, OSError):
            message, param, code = f"HTTP {exc.code} {exc.reason}", None, None
        if exc.code == 401:
            return UnauthorizedError(
                f"The server at {self.url} refused the API key: {message} "
                "Set QUOTEGEN_API_KEY to the key it was started with."
            )
        return ServerError(
            f"The server at {self.url} answered {exc.code}: {message}",
            status=exc.code,
            param=param,
            code=code,
        )


class RemoteStream:
    """One prompt streamed from the server, as ``generation.TextStream`` is locally: iterate
    for text pieces; then ``result`` holds the result. ``prompt`` is the prompt used."""

    def __init__(self, response: Any) -> None:
        self._events = _server_sent_events(response)
        self.result: Result | None = None
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
                self.result = data
            else:
                self._check(event, data)
        if self.result is None:
            raise ServerError("The server closed the stream before the result.")

    @staticmethod
    def _check(event: str, data: Any) -> None:
        if event == "error":
            raise ServerError(f"The server failed: {data['error']['message']}")


def send_ordered(
    client: Client, prompts: Iterable[str], settings: dict[str, Any], *, batch_size: int
) -> Iterator[Result]:
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

    threading.Thread(target=read, daemon=True, name=PROMPT_READER).start()
    size = max(1, min(batch_size, MAX_PROMPTS))
    pending: queue.Queue[Future[list[Result]] | None] = queue.Queue(IN_FLIGHT)
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
                try:
                    request = pool.submit(client.generate, chunk, settings, start_index=start)
                except RuntimeError:  # the pool is shut: the main thread has given up
                    return
                pending.put(request)
                start += len(chunk)
            pending.put(None)

        threading.Thread(target=send, daemon=True, name="quotegen-sender").start()
        while (future := pending.get()) is not None:
            yield from future.result()
    if failure:
        raise failure[0]


def _server_sent_events(response: Any) -> Iterator[tuple[str, Any]]:
    """``(event, data)`` pairs of a ``text/event-stream`` response, read as they arrive."""
    event, data = "message", list[str]()  # the data lines of the event being read
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


class RemoteQuotes:
    """Results from a server as JSON records, as ``scheduler.LocalQuotes`` gives local ones:
    the flags given are sent, and the server lays them over its model's defaults."""

    def __init__(self, client: Client, given: dict[str, Any]) -> None:
        self.client = client
        self.given = given
        self.samples = int(given.get("n", 1))
        self.clean = bool(given.get("clean", True))

    def results(self, prompts: Iterable[str], batch_size: int) -> Iterator[Result]:
        return send_ordered(self.client, prompts, self.given, batch_size=batch_size)

    def stream(self, prompt: str) -> RemoteStream:
        return self.client.stream(prompt, self.given)
