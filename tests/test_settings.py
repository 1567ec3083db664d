"""Each generation setting is declared once (``quotegen.config.Generation``): the settings
model, the request models, the CLI flags, OpenAI's names and defaults and the model-default
keys all follow from the declarations, so a new setting shows up everywhere by itself."""

from __future__ import annotations

import pytest
import typer.main

from quotegen.cli import app
from quotegen.config import GENERATION_DEFAULTS, GENERATION_SETTINGS
from quotegen.openaischemas import ChatCompletionRequest, CompletionRequest, OpenAIRequest
from quotegen.schemas import SettingsOverrides
from quotegen.settings import MODEL_DEFAULT_KEYS, GenerationSettings


def _command_options(name: str) -> set[str]:
    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def test_the_settings_model_has_every_declared_setting_with_its_default() -> None:
    assert list(GenerationSettings.model_fields) == list(GENERATION_SETTINGS)
    assert GenerationSettings().model_dump() == GENERATION_DEFAULTS
    for name, setting in GENERATION_SETTINGS.items():
        assert GenerationSettings.model_fields[name].description == setting.help


@pytest.mark.parametrize("command", ["generate", "batch"])
def test_every_declared_flag_and_switch_is_a_cli_option(command: str) -> None:
    options = _command_options(command)
    for setting in GENERATION_SETTINGS.values():
        for flag in setting.flags:
            assert set(flag.split("/")) <= options, flag
        if setting.switch is not None:
            assert setting.switch[0] in options


def test_openai_requests_take_every_declared_openai_name() -> None:
    named = {s.openai: n for n, s in GENERATION_SETTINGS.items() if s.openai}
    fields = set(CompletionRequest.model_fields) & set(ChatCompletionRequest.model_fields)
    assert set(named) <= fields
    defaults = {
        n: s.openai_default for n, s in GENERATION_SETTINGS.items() if s.openai_default is not ...
    }
    assert defaults == OpenAIRequest.DEFAULTS


def test_overrides_and_model_default_keys_follow_the_declarations() -> None:
    overridable = [n for n, s in GENERATION_SETTINGS.items() if s.override]
    assert list(SettingsOverrides.model_fields) == overridable
    keys = {s.model_key: n for n, s in GENERATION_SETTINGS.items() if s.model_key}
    assert keys == MODEL_DEFAULT_KEYS
