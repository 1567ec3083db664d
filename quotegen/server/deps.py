"""Route dependencies: the app state, the request door once the model is ready, the API key,
and the checks every generation route makes on its prompts."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, Request

from quotegen.errors import InvalidRequestError, UnauthorizedError, UnknownModelError
from quotegen.server.state import ServerState
from quotegen.server.tickets import Tickets


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.quotegen
    return state


State = Annotated[ServerState, Depends(get_state)]


def get_tickets(state: State) -> Tickets:
    return state.ready_tickets()


Ready = Annotated[Tickets, Depends(get_tickets)]


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


def check_prompts(prompts: list[str], state: ServerState, field_name: str) -> None:
    """The byte limit and no NUL characters, with the offending field named."""
    limit = state.config.max_prompt_bytes
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


def check_model(requested: str | None, tickets: Tickets) -> str:
    """The served model's name, if the request names it (or no model): a 404 otherwise."""
    served = tickets.engine.info.name
    if requested not in (None, "", served, "quotegen"):
        raise UnknownModelError(
            f"The model '{requested}' is not served here; this server serves '{served}' "
            "(see GET /v1/models).",
            param="model",
        )
    return served
