"""``quotegen download`` (Hub to the HF cache) and ``quotegen models`` (what works offline)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from quotegen.loading.references import ModelRef

from quotegen.cli.options import QuietOpt, TokenOpt, UsageError, write
from quotegen.config import DEFAULT_MODEL_NAME
from quotegen.console import loading_display, print_note, stderr_is_terminal


def download(
    model: Annotated[
        str | None,
        typer.Argument(
            show_default=False,
            help="Hub repo id\\[@revision]\\[:FILE.gguf|:QUANT], a pinned base, a .gguf file or "
            f"an adapter folder \\[default: the default model, {DEFAULT_MODEL_NAME}].",
        ),
    ] = None,
    revision: Annotated[
        str | None,
        typer.Option(
            "--revision", show_default=False, help="Branch, tag, commit or ref (e.g. refs/pr/1)."
        ),
    ] = None,
    token: TokenOpt = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir", show_default=False, help="Cache folder \\[default: the HF cache]."
        ),
    ] = None,
    local_dir: Annotated[
        Path | None,
        typer.Option("--local-dir", show_default=False, help="Plain folder instead of the cache."),
    ] = None,
    include: Annotated[
        list[str] | None,
        typer.Option(
            "--include", show_default=False, help="Only files matching this glob (repeatable)."
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude", show_default=False, help="Skip files matching this glob (repeatable)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Download again even if cached.")] = False,
    allow_pickle: Annotated[
        bool,
        typer.Option(
            "--allow-pickle", help="Fetch pickle (.bin) weights when a repo has no safetensors."
        ),
    ] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check/--no-check", help="Load the downloaded files to check they form a model."
        ),
    ] = True,
    quiet: QuietOpt = False,
) -> None:
    """Download a model into the caches and make it ready to load offline; print its path."""
    from quotegen import get_model
    from quotegen.loading.hub import fetch_model
    from quotegen.loading.model import place
    from quotegen.loading.references import ModelRef, resolve_model

    if cache_dir is not None and local_dir is not None:
        raise UsageError("--cache-dir and --local-dir cannot be used together.")
    ref = resolve_model(model)
    if ref.repo_id is None or ref.gguf is not None:
        # The default model, a pinned base, a GGUF file or an adapter: fetched, converted
        # and merged into quotegen's cache by the one loading path.
        if revision is not None or include or exclude or local_dir is not None or cache_dir:
            raise UsageError(
                f"'{ref}' is prepared into quotegen's cache: --revision, --include, "
                "--exclude, --cache-dir and --local-dir apply to Hub repos."
            )
        prepare(ref, quiet=quiet)
        return
    if revision is not None:
        if ref.revision is not None and ref.revision != revision and model is not None:
            raise UsageError(f"'{model}' already names revision '{ref.revision}'.")
        ref = ModelRef(name=ref.repo_id or "", repo_id=ref.repo_id, revision=revision)
    from huggingface_hub.utils.tqdm import disable_progress_bars

    show = stderr_is_terminal() and not quiet
    if not show:
        disable_progress_bars()
    elif not quiet:
        print_note(f"Downloading {ref}")
    path = fetch_model(
        ref,
        token=token,
        allow_pickle=allow_pickle,
        cache_dir=cache_dir,
        local_dir=local_dir,
        include=include or (),
        exclude=exclude or (),
        force=force,
    )
    if check and not include and not exclude:
        checked = ModelRef(name=str(ref), repo_id=ref.repo_id, revision=ref.revision, path=path)
        loaded = get_model(checked, place("cpu"), allow_pickle=allow_pickle).loaded
        if not quiet:
            size = sum(p.stat().st_size for p in path.iterdir() if p.is_file())
            print_note(
                f"OK: {type(loaded.model).__name__}, {size / 1e6:.1f} MB, "
                f"context {loaded.context_length} tokens"
            )
    write(f"{path}\n")


def prepare(ref: ModelRef, *, quiet: bool) -> None:
    """Fetch, convert and merge what ``ref`` needs, then print the folder it loads from."""
    from quotegen.loading.locating import forget_failure, locate_model

    if ref.bundled:
        write(f"{ref.path}\n")
        return
    with loading_display(f"Preparing {ref}…", show=not quiet):
        path = locate_model(ref, notify=None if quiet else print_note)
    forget_failure()  # a failed fetch that other runs remembered is now mended
    if not quiet:
        print_note(f"Ready: {ref} loads from {path}")
    write(f"{path}\n")


def models(
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON Lines: one object per model.")
    ] = False,
) -> None:
    """List the default model (prepared or not, and the folder it loads from), the bundled
    one, the pinned bases and the models in the HF cache."""
    from quotegen.loading.locating import list_local_models

    found = list_local_models()
    if as_json:
        write("".join(entry.model_dump_json() + "\n" for entry in found))
        return
    if not found:
        print_note("No local models. Run: quotegen download")
        return
    rows = [("NAME", "REVISION", "SIZE", "DEFAULT", "PREPARED", "PATH")] + [
        (
            m.name,
            m.revision or (m.commit[:12] if m.commit else "-"),
            f"{m.size_bytes / 1e6:.1f} MB" if m.prepared else "-",
            "*" if m.default else "",
            "yes" if m.prepared else "no",
            str(m.path),
        )
        for m in found
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    write(
        "".join(
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n"
            for r in rows
        )
    )
