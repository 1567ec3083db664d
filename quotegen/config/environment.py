"""The environment, read in one place: every variable quotegen reads goes through ``env``."""

import os

from quotegen.config.constants import ENV_DEBUG, ENV_THREADS


def env(name: str) -> str | None:
    """An environment variable, read now: its value stripped, None when unset or blank. Every
    variable quotegen reads goes through here (or ``env_flag``)."""
    value = os.environ.get(name, "").strip()
    return value or None


def env_flag(name: str) -> bool:
    """An on/off environment variable (1, true, yes, on)."""
    return (env(name) or "").lower() in {"1", "true", "yes", "on"}


def fixed_threads() -> int | None:
    """The CPU thread count a user fixed: ``QUOTEGEN_THREADS``, else ``OMP_NUM_THREADS`` (a
    value torch cannot read is torch's to ignore); None: quotegen chooses. Raises ValueError
    for a ``QUOTEGEN_THREADS`` that is not a whole number of 1 or more."""
    ours = env(ENV_THREADS)
    if ours is not None:
        if not ours.isdigit() or int(ours) < 1:
            raise ValueError(
                f"{ENV_THREADS}={ours!r} is not a thread count: set a whole number of 1 or "
                "more, or unset it to let quotegen use the cores other work leaves free."
            )
        return int(ours)
    omp = env("OMP_NUM_THREADS")
    return int(omp) if omp is not None and omp.isdigit() and int(omp) > 0 else None


def debug_enabled() -> bool:
    """True when ``QUOTEGEN_DEBUG`` asks for tracebacks instead of one-line errors."""
    return env_flag(ENV_DEBUG)


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE``, read now (huggingface_hub reads it once, at import)."""
    return env_flag("HF_HUB_OFFLINE")


def hub_endpoint() -> str | None:
    """``HF_ENDPOINT``: another Hub (a mirror, or a test's stand-in)."""
    return env("HF_ENDPOINT")
