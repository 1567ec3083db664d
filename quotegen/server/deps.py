"""Route dependencies: the app state, the API key, and ``Service``, the one thing a
generation route uses: the engine, the request door once the model is ready, and the limits
(with the checks every route makes on its prompts and model name)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from quotegen.errors import InvalidRequestError, UnauthorizedError, UnknownModelError
from quotegen.server.state import ServerState
from quotegen.server.tickets import Ticket, Tickets

if TYPE_CHECKING:
    from quotegen.engine.generation import TextEngine
    from quotegen.schemas import GenerationResult
    from quotegen.settings import GenerationSettings, ServeConfig


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.quotegen
    return state


State = Annotated[ServerState, Depends(get_state)]


def require_api_key(request: Request, state: State) -> None:
    key = state.config.api_key
    if not key:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    # compare_digest: the time taken does not reveal how much of the key matched.
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode("utf-8", "replace"), key.encode("utf-8")
    ):
        raise UnauthorizedError(
            "Missing or wrong API key: send the header 'Authorization: Bearer <key>'."
        )


Auth: list[Any] = [Depends(require_api_key)]


@dataclass(frozen=True)
class GenerationService:
    """The engine, its request door and the server's limits: what generation routes use."""

    tickets: Tickets
    config: ServeConfig
    created: int

    @property
    def engine(self) -> TextEngine:
        return self.tickets.engine

    def settings(
        self, given: Mapping[str, Any], fallback: Mapping[str, Any] | None = None
    ) -> GenerationSettings:
        """What a request set, over the model's defaults (over an API's own ``fallback``)."""
        return self.engine.settings(given, fallback)

    def check_prompts(self, prompts: Sequence[str], field: str) -> None:
        """The prompts within the limits (``field`` named when one is not)."""
        check_prompts(list(prompts), self.config.max_prompt_bytes, field)

    async def results(self, ticket: Ticket, request: Request) -> list[GenerationResult]:
        """A ticket's results (from ``tickets.submit``); it is cancelled if the client goes
        away or time runs out."""
        return await self.tickets.result(ticket, request.is_disconnected)

    def check_model(self, requested: str | None) -> str:
        """The served model's name, if the request names it (or no model): 404 otherwise."""
        served = self.engine.info.name
        if requested not in (None, "", served, "quotegen"):
            raise UnknownModelError(
                f"The model '{requested}' is not served here; this server serves '{served}' "
                "(see GET /v1/models).",
                param="model",
            )
        return served


def get_service(state: State) -> GenerationService:
    """The service once the model is ready; a clear 503 before."""
    return GenerationService(state.ready_tickets(), state.config, state.created)


Service = Annotated[GenerationService, Depends(get_service)]


def check_prompts(prompts: list[str], limit: int, field_name: str) -> None:
    """The byte limit and no NUL characters, with the offending field named."""
    for i, prompt in enumerate(prompts):
        size = len(prompt.encode("utf-8", "surrogatepass"))
        if size > limit:
            where = field_name if len(prompts) == 1 else f"{field_name}[{i}]"
            raise InvalidRequestError(
                f"{where}: the prompt is {size} bytes; the limit is {limit}.", param=field_name
            )
        if "\x00" in prompt:
            raise InvalidRequestError(
                f"{field_name}: NUL characters are not allowed in prompts.", param=field_name
            )
