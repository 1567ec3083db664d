"""Publishing to the Hugging Face Hub: a model folder or LoRA adapter uploaded with
``create_repo`` + ``upload_folder``, failures in words."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from quotegen.errors import (
    HubUnreachableError,
    InvalidModelError,
    ModelAccessError,
    ModelNotFoundError,
    QuotegenError,
)


@contextmanager
def upload_errors(repo_id: str) -> Iterator[None]:
    """Translate a failed upload into ``QuotegenError`` with a next step."""
    from huggingface_hub import errors as hf_errors

    try:
        yield
    except QuotegenError:
        raise
    except hf_errors.OfflineModeIsEnabled as exc:
        raise HubUnreachableError(
            f"HF_HUB_OFFLINE=1 forbids uploading '{repo_id}': unset it to publish."
        ) from exc
    except hf_errors.RepositoryNotFoundError as exc:
        raise ModelNotFoundError(
            f"The repo '{repo_id}' does not exist on the Hub, or your token cannot see it. "
            "Drop --no-create to create it, or check HF_TOKEN."
        ) from exc
    except hf_errors.RevisionNotFoundError as exc:
        raise ModelNotFoundError(
            f"The revision to upload to was not found in '{repo_id}'."
        ) from exc
    except hf_errors.HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        detail = str(exc).splitlines()[0]
        if status == 401:
            raise ModelAccessError(
                "The Hub refused your token (HTTP 401). Set HF_TOKEN to a valid token with "
                "write access, or run `hf auth login`."
            ) from exc
        if status == 403:
            raise ModelAccessError(
                f"Your token may not write to '{repo_id}' (HTTP 403): use a token with write "
                "access to that namespace."
            ) from exc
        raise HubUnreachableError(f"The Hub refused the upload: {detail}") from exc
    except ValueError as exc:  # huggingface_hub's own checks, e.g. invalid README metadata
        raise InvalidModelError(f"Cannot upload to '{repo_id}': {exc}") from exc
    except Exception as exc:
        kinds = {c.__module__.split(".")[0] for c in type(exc).__mro__}
        if kinds & {"httpx", "httpx2", "requests", "urllib3"} or isinstance(exc, OSError):
            raise HubUnreachableError(
                f"Could not reach the Hub to upload '{repo_id}' ({type(exc).__name__}). Check "
                "your network and HF_ENDPOINT."
            ) from exc
        raise


def upload_files(folder: Path) -> list[Path]:
    """The files of a model directory that get published (not hidden files or caches)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def upload_model(
    folder: Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    create: bool = True,
) -> str:
    """Publish a model directory to a Hub repo (``create_repo`` then ``upload_folder``);
    returns the commit's URL. A ``revision`` other than main is made as a branch if needed."""
    from huggingface_hub import HfApi, get_token

    token = token or get_token()
    if not token:
        raise ModelAccessError(
            "No Hugging Face token: set HF_TOKEN to a token with write access, or run "
            "`hf auth login`."
        )
    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token)
    with upload_errors(repo_id):
        if create:
            api.create_repo(repo_id, private=private, exist_ok=True)
        if revision not in (None, "main"):
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            revision=revision,
            commit_message=commit_message or f"Upload {folder.name} with quotegen",
            ignore_patterns=[".*", "**/.*"],
        )
    return str(info.commit_url)
