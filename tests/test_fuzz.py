"""Property-based tests: schemathesis against the live server's OpenAPI schema, and hypothesis
for the text and settings code. Example counts are bounded for CI; raise them with
QUOTEGEN_FUZZ_EXAMPLES (e.g. 2000) for a longer run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from quotegen.errors import QuotegenError
from quotegen.loading.references import parse_model_ref
from quotegen.settings import GenerationSettings
from quotegen.text import clean_text, find_stop
from tests.helpers.live import LiveServer, serving

EXAMPLES = int(os.environ.get("QUOTEGEN_FUZZ_EXAMPLES", "30"))


@pytest.fixture(scope="module")
def fuzz_server(tiny_model_dir: Path) -> Iterator[LiveServer]:
    with serving(tiny_model_dir, "--max-wait-ms", "2", "--timeout", "60") as server:
        yield server


def test_api_never_fails_and_matches_its_schema(fuzz_server: LiveServer) -> None:
    """Every check schemathesis has (no 5xx, documented status codes, content types and
    response schemas, rejection of schema-violating requests), on every route.

    Excluded: "schema-valid request accepted". Some limits depend on the model and cannot be
    written into a static schema (prompt plus max_new_tokens within the model's context,
    prompt bytes), so a schema-valid request may rightly get 422.
    """
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{fuzz_server.url}/openapi.json",
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            str(EXAMPLES),
            "--workers",
            "1",
            "--request-timeout",
            "60",
            "--seed",
            "2026",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "generated" in proc.stdout
    health = httpx.get(f"{fuzz_server.url}/health", timeout=5)
    assert health.status_code == 200


@given(st.text())
@settings(max_examples=EXAMPLES * 20)
def test_clean_text_properties(text: str) -> None:
    cleaned = clean_text(text)
    assert cleaned == cleaned.strip()
    assert "  " not in cleaned
    assert not any(c in cleaned for c in "~`^*&%$@#|")
    assert clean_text(cleaned) == cleaned  # idempotent
    assert "\x01" not in cleaned or "\x01" in text


@given(st.text(), st.lists(st.text(min_size=1, max_size=4), max_size=4))
@settings(max_examples=EXAMPLES * 20)
def test_find_stop_properties(text: str, stops: list[str]) -> None:
    cut = find_stop(text, stops)
    if cut is not None:
        # Stops only count from where the text begins, never inside leading blanks.
        assert text.strip()
        assert cut >= len(text) - len(text.lstrip())
        assert any(text.startswith(s, cut) for s in stops)


@given(
    st.dictionaries(
        st.sampled_from([*GenerationSettings.model_fields, "bogus"]),
        st.one_of(
            st.none(),
            st.integers(),
            st.floats(allow_nan=True),
            st.text(),
            st.booleans(),
            st.lists(st.text()),
        ),
    )
)
@settings(max_examples=EXAMPLES * 20)
def test_settings_validation_never_crashes(values: dict[str, object]) -> None:
    try:
        settings_ = GenerationSettings(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        errors = exc.errors()
        assert errors, "a rejection always says why"
        return
    assert 0 <= settings_.temperature <= 5
    assert settings_.min_new_tokens <= settings_.max_new_tokens


@given(st.text(max_size=120))
@settings(max_examples=EXAMPLES * 20)
def test_model_reference_parsing_never_crashes(text: str) -> None:
    try:
        ref = parse_model_ref(text)
    except QuotegenError:
        return
    assert ref.path is not None or ref.repo_id is not None
