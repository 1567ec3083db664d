"""Each setting is declared once (``quotegen.config``: generation, loading, serve, training):
the settings models, the request models, the CLI flags and their help, ``/info``'s limits,
OpenAI's names and defaults and the model-default keys all follow from the declarations, so a
new setting shows up everywhere by itself."""

from __future__ import annotations

import pytest
import torch
import typer.main

from quotegen.cli import app
from quotegen.cli.options import LoadFlags
from quotegen.config import (
    GENERATION_SETTINGS,
    LOADING_SETTINGS,
    SERVE_LIMITS,
    SERVE_SETTINGS,
    TRAIN_SETTINGS,
    Setting,
)
from quotegen.engine.rows import Row
from quotegen.engine.sampling import choose_tokens
from quotegen.openai.protocol import ChatCompletionRequest, CompletionRequest, OpenAIRequest
from quotegen.schemas import Limits, SettingsOverrides
from quotegen.settings import (
    MODEL_DEFAULT_KEYS,
    GenerationSettings,
    ServeConfig,
    TrainConfig,
    model_defaults,
)
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


def _help_text(command: str) -> dict[str, str]:
    params = typer.main.get_command(app).commands[command].params  # type: ignore[attr-defined]
    return {param.name: " ".join(str(param.help or "").split()) for param in params}


@pytest.mark.parametrize(
    ("command", "settings", "model"),
    [("serve", SERVE_SETTINGS, ServeConfig), ("train", TRAIN_SETTINGS, TrainConfig)],
)
def test_serve_and_train_settings_are_declared_once(
    command: str, settings: dict[str, Setting], model: type
) -> None:
    """The model's fields, the flags and their help all come from one declaration each."""
    assert set(settings) <= set(model.model_fields)
    options = _command_options(command)
    helps = _help_text(command)
    for name, setting in settings.items():
        field = model.model_fields[name]
        assert field.description == setting.help
        assert field.is_required() == (setting.default is ...)
        if setting.default is not ...:
            assert field.get_default(call_default_factory=True) == setting.default
        assert set(setting.flags) <= options, setting.flags
        assert helps[name].startswith(" ".join(setting.help.split())), name


def test_info_limits_are_the_declared_serve_limits() -> None:
    assert set(SERVE_LIMITS) <= set(Limits.model_fields)
    assert "api_key" not in Limits.model_fields
    for name in SERVE_LIMITS:
        assert Limits.model_fields[name].description == SERVE_SETTINGS[name].help


def test_loading_flags_follow_their_declarations() -> None:
    assert list(LoadFlags.__dataclass_fields__) == list(LOADING_SETTINGS)
    options = _command_options("generate")
    for setting in LOADING_SETTINGS.values():
        assert set(setting.flags) <= options


def test_train_takes_only_the_loading_flags_that_apply() -> None:
    options = _command_options("train")
    assert {"--device", "--allow-pickle", "--trust-remote-code"} <= options
    assert not {"--dtype", "--quantize"} & options


def test_a_declared_setting_out_of_range_is_a_flag_error() -> None:
    proc = run_cli("serve", "--max-batch-size", "0")
    assert proc.returncode == 2
    assert proc.stderr.startswith("Error: --max-batch-size: ")
    proc = run_cli("train", "quotes.txt", "--out", "o", "--base", "b", "--tokenizer", "chars")
    assert proc.returncode == 2
    assert "--tokenizer: Input should be 'bpe' or 'words'" in proc.stderr
