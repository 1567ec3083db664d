"""Publishing to the Hugging Face Hub: a model folder or LoRA adapter uploaded with
``create_repo`` + ``upload_folder``, failures in words."""

from __future__ import annotations

from pathlib import Path

from quotegen.config import hub_endpoint
from quotegen.errors import ModelAccessError
from quotegen.loading.hub import hub_errors


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
    api = HfApi(endpoint=hub_endpoint(), token=token)
    with hub_errors(repo_id, "upload"):
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
