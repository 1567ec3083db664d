"""Each generation setting is declared once (``quotegen.config.Generation``): the settings
model, the request models, the CLI flags, OpenAI's names and defaults and the model-default
keys all follow from the declarations, so a new setting shows up everywhere by itself."""

from __future__ import annotations

import pytest
import torch
import typer.main

from quotegen.cli import app
from quotegen.config import GENERATION_SETTINGS
from quotegen.engine.rows import Row
from quotegen.engine.sampling import choose_tokens
from quotegen.openai.protocol import ChatCompletionRequest, CompletionRequest, OpenAIRequest
from quotegen.schemas import SettingsOverrides
from quotegen.settings import MODEL_DEFAULT_KEYS, GenerationSettings, model_defaults
from tests.helpers.cli import run_cli


def _command_options(name: str) -> set[str]:
    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def test_the_settings_model_has_every_declared_setting_with_its_default() -> None:
    assert list(GenerationSettings.model_fields) == list(GENERATION_SETTINGS)
    defaults = {name: setting.default for name, setting in GENERATION_SETTINGS.items()}
    assert GenerationSettings().model_dump() == defaults
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


def _row(settings: GenerationSettings, seed: int) -> Row:
    row = Row(0, 0, "p", settings, seed, [1], 1)
    row.rng = torch.Generator().manual_seed(seed)
    return row


def test_min_p_keeps_only_tokens_near_the_likeliest() -> None:
    # Probabilities 0.4, 0.3, 0.1, 0.1, 0.1: min_p 0.5 keeps tokens with p >= 0.2 (0 and 1).
    logits = torch.tensor([[0.4, 0.3, 0.1, 0.1, 0.1]]).log()
    settings = GenerationSettings(min_p=0.5, top_k=0, top_p=1.0, temperature=1.0)
    picked = {
        int(choose_tokens(logits.clone(), [_row(settings, seed)], None, [])[0])
        for seed in range(300)
    }
    assert picked == {0, 1}
    off = settings.model_copy(update={"min_p": 0.0})
    every = {
        int(choose_tokens(logits.clone(), [_row(off, seed)], None, [])[0]) for seed in range(300)
    }
    assert every == {0, 1, 2, 3, 4}


def test_min_p_reaches_every_door() -> None:
    assert CompletionRequest.model_validate({"prompt": "x", "min_p": 0.1}).requested()["min_p"]
    assert model_defaults({"min_p": 0.05}) == {"min_p": 0.05}
    assert SettingsOverrides.model_validate({"min_p": 0.2}).given() == {"min_p": 0.2}
    proc = run_cli("generate", "-m", "quotegen-mini", "--min-p", "1.5", "life is")
    assert proc.returncode == 2
    assert "--min-p" in proc.stderr
