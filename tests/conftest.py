"""Test isolation and shared fixtures.

The environment is isolated before anything imports huggingface_hub (which reads its variables
once): a temporary HF_HOME, offline mode, no colour, no QUOTEGEN_* from the developer's shell.
A tiny real GPT-2 is built once per session and loaded through quotegen's real loading code.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

#: The user's own quotegen cache, where the README's first command prepared the default model
#: (named in the default-model checks' skip message; the tests never read it by themselves).
#: (The xdist workers start with the isolated environment: they read it from QG_TESTS_USER_CACHE.)
USER_CACHE = Path(
    os.environ.get("QG_TESTS_USER_CACHE")
    or (
        Path(os.environ["HF_HOME"]).expanduser()
        if os.environ.get("HF_HOME", "").strip()
        else Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "huggingface"
    )
    / "quotegen"
)
os.environ["QG_TESTS_USER_CACHE"] = str(USER_CACHE)
_HOME = Path(tempfile.mkdtemp(prefix="quotegen-tests-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)  # each process's own, at its exit
os.environ["HF_HOME"] = str(_HOME / "hf")
os.environ.pop("HF_HUB_CACHE", None)
os.environ.pop("TRANSFORMERS_CACHE", None)
os.environ.pop("HF_TOKEN", None)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["NO_COLOR"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
# One torch thread here and in every CLI process a test starts: two threads on two cores
# fight whatever else runs (the same 40 tiny-model tokens: 5.2 s with two threads under
# load, 0.05 s with one). Read by torch when it is first imported.
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
#: Where CI prepared the real default model before pytest (`QUOTEGEN_CACHE=DIR quotegen
#: download`): the default-model checks read it; nothing else sees it. It is handed to the
#: xdist workers under a name of its own (they start with this environment, QUOTEGEN_* gone).
_PREPARED = "QG_TESTS_PREPARED_CACHE"
PREPARED_CACHE = (
    os.environ.get("QUOTEGEN_CACHE", "").strip() or os.environ.get(_PREPARED, "").strip() or None
)
if PREPARED_CACHE is not None:
    os.environ[_PREPARED] = PREPARED_CACHE
for _name in list(os.environ):
    if _name.startswith("QUOTEGEN_"):
        del os.environ[_name]

from tests.helpers.fakes import FakeEngine  # noqa: E402
from tests.helpers.modelfactory import build_tiny_gpt2  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 without a pad token, like GPT-2 itself."""
    return build_tiny_gpt2(tmp_path_factory.mktemp("models") / "tiny-gpt2")


@pytest.fixture(scope="session")
def quote_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 that adds <BOS>/<EOS>/<PAD>, like seed 2's quote model."""
    return build_tiny_gpt2(
        tmp_path_factory.mktemp("models") / "tiny-quote", quote_special_tokens=True
    )


@pytest.fixture(scope="session")
def engine(tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    """The tiny model through the library's entry point, as the CLI and the server load."""
    import quotegen
    from quotegen.loading.model import place

    return quotegen.get_model(str(tiny_model_dir), place("cpu"))


@pytest.fixture(scope="session")
def loaded_tiny(engine):  # type: ignore[no-untyped-def]
    return engine.loaded


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HF cache for one test (huggingface_hub's constants follow it)."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def fake_engine() -> FakeEngine:
    return FakeEngine()
