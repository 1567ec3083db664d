"""``quotegen upload``: publish a trained model directory, model card included, to the Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from quotegen.cli.options import QuietOpt, TokenOpt, UsageError, write
from quotegen.console import print_note, status
from quotegen.errors import QuotegenError


def upload(
    directory: Annotated[
        Path,
        typer.Argument(show_default=False, help="A model directory (`quotegen train --out`)."),
    ],
    repo_id: Annotated[
        str, typer.Argument(show_default=False, help="Hub repo id: namespace/name.")
    ],
    private: Annotated[bool, typer.Option("--private", help="Create the repo private.")] = False,
    revision: Annotated[
        str | None,
        typer.Option(
            "--revision", show_default=False, help="Branch to commit to (made if missing)."
        ),
    ] = None,
    commit_message: Annotated[
        str | None,
        typer.Option("--commit-message", "-m", show_default=False, help="The commit's summary."),
    ] = None,
    create: Annotated[
        bool,
        typer.Option("--create/--no-create", help="Create the repo if it does not exist yet."),
    ] = True,
    token: TokenOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Publish a model directory to the Hugging Face Hub; print the commit URL.

    It loads the directory first, as generate would: a broken model is never uploaded.
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils._validators import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise UsageError(f"REPO_ID: '{repo_id}' is not a Hub repo id ({exc}).") from exc
    if "/" not in repo_id:
        raise UsageError(f"REPO_ID: '{repo_id}' needs its namespace: user-or-org/{repo_id}.")
    if not directory.is_dir():
        raise UsageError(f"DIRECTORY: '{directory}' is not a directory.")

    from quotegen import get_model
    from quotegen.loading.model import place
    from quotegen.loading.references import parse_model_ref
    from quotegen.publish import upload_files, upload_model

    with status(f"Checking that {directory} loads…", show=not quiet):
        loaded = get_model(parse_model_ref(str(directory)), place("cpu")).loaded
    files = upload_files(directory)
    size = sum(p.stat().st_size for p in files)
    if not quiet:
        print_note(
            f"OK: {type(loaded.model).__name__}, context {loaded.context_length} tokens; "
            f"{len(files)} files, {size / 1e6:.1f} MB"
        )
        if not (directory / "README.md").is_file():
            print_note("No model card (README.md) in the directory: the repo will have none.")
        _note_adapter_base(directory)
    target = f"{repo_id}@{revision}" if revision else repo_id
    with status(f"Uploading {len(files)} files to {target}…", show=not quiet):
        url = upload_model(
            directory,
            repo_id,
            token=token,
            private=private,
            revision=revision,
            commit_message=commit_message,
            create=create,
        )
    if not quiet:
        print_note(f"Uploaded {target}")
    write(f"{url}\n")


def _note_adapter_base(directory: Path) -> None:
    """An adapter whose base is a local path or file loads only where that path exists."""
    from quotegen.loading.conversion import adapter_base, is_adapter
    from quotegen.training.saving import hub_base_model

    if not is_adapter(directory):
        return
    base = adapter_base(directory)
    try:
        hub_base = hub_base_model(base)
    except QuotegenError:
        hub_base = None
    if hub_base is None:
        print_note(
            f"The adapter's base is '{base}', not a Hub repo: others can load it only with "
            "that base. Set base_model_name_or_path in adapter_config.json to its Hub repo id."
        )
