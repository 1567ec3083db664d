"""CPU inference forms: the lean Llama forward computes what transformers' does, every
precision stays close to float32, and int4 keeps a LoRA adapter's update exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from quotegen.engine.generation import Engine
from quotegen.engine.kvcache import left_padded
from quotegen.errors import DeviceError
from quotegen.loading import quantization
from quotegen.loading.model import LoadedModel, load_model, place
from quotegen.loading.references import parse_model_ref
from quotegen.settings import GenerationSettings
from tests.helpers.cli import run_cli
from tests.helpers.ggufwriter import build_tiny_llama

PROMPTS = ["Life is what happens", "Love", "The secret of success is to keep going"]


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("lean") / "llama")


def _load(folder: Path, *, optimize: bool = True, **options: str) -> LoadedModel:
    placement = place("cpu", **options, inference=optimize)
    return load_model(parse_model_ref(str(folder)), placement, optimize=optimize)


def _batch(loaded: LoadedModel) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ids, mask = left_padded([loaded.tokenizer(p)["input_ids"] for p in PROMPTS], 0, "cpu")
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def _logits(model: object, ids: torch.Tensor, **kwargs: object) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=ids, **kwargs).logits.float()  # type: ignore[operator]


def test_lean_llama_computes_what_transformers_does(llama: Path) -> None:
    plain = _load(llama, optimize=False)
    lean = _load(llama, dtype="float32")
    assert type(lean.model).__name__ == "LeanLlama"
    ids, mask, positions = _batch(plain)
    with torch.inference_mode():
        # Left-padded prompts with their cache, then two decode steps on that cache.
        a = plain.model(input_ids=ids, attention_mask=mask, position_ids=positions)
        b = lean.model(input_ids=ids, attention_mask=mask, position_ids=positions)
        real = mask.bool()
        assert torch.allclose(a.logits[real], b.logits[real], atol=1e-4)
        cache_a, cache_b = a.past_key_values, b.past_key_values
        step = a.logits[:, -1].argmax(-1, keepdim=True)
        for _ in range(2):
            mask = torch.cat([mask, torch.ones(len(PROMPTS), 1, dtype=mask.dtype)], dim=1)
            positions = positions[:, -1:] + 1
            a = plain.model(
                input_ids=step, attention_mask=mask, position_ids=positions, cache=cache_a
            )
            b = lean.model(
                input_ids=step, attention_mask=mask, position_ids=positions, cache=cache_b
            )
            assert torch.allclose(a.logits, b.logits, atol=1e-4)
            cache_a, cache_b = a.past_key_values, b.past_key_values
            step = a.logits[:, -1].argmax(-1, keepdim=True)
    # Right-padded, no cache: how evaluation scores text.
    right, right_mask = ids.flip(1), mask[:, : ids.shape[1]].flip(1)
    a_eval = _logits(plain.model, right, attention_mask=right_mask, use_cache=False)
    b_eval = _logits(lean.model, right, attention_mask=right_mask, use_cache=False)
    assert torch.allclose(a_eval[right_mask.bool()], b_eval[right_mask.bool()], atol=1e-4)


def test_lean_llama_generates_what_transformers_does(llama: Path) -> None:
    """Greedy, through the engine's continuous batching (rows join and leave mid-batch)."""
    settings = GenerationSettings(seed=3, do_sample=False, max_new_tokens=6, stop=[], clean=False)
    prompts = [*PROMPTS, "Hope is a thing", "War"]
    plain = Engine(_load(llama, optimize=False)).generate(prompts, settings, batch_size=2)
    lean = Engine(_load(llama, dtype="float32")).generate(prompts, settings, batch_size=2)
    assert [r.text for r in lean] == [r.text for r in plain]


@pytest.mark.parametrize("precision", ["bfloat16", "int8", "int4"])
def test_every_precision_stays_close_to_float32_on_gpt2(
    tiny_model_dir: Path, precision: str
) -> None:
    """GPT-2 keeps transformers' forward, its linear layers (``Conv1D`` included) swapped."""
    options = {"quantize": precision} if precision.startswith("int") else {"dtype": precision}
    fp32, other = _load(tiny_model_dir, dtype="float32"), _load(tiny_model_dir, **options)
    kinds = {type(m).__name__ for m in other.model.modules()}
    assert "Conv1D" not in kinds
    assert other.info().precision == precision
    ids = torch.tensor([[5, 17, 42, 7]])
    a, b = _logits(fp32.model, ids), _logits(other.model, ids)
    assert torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0) > 0.98
    results = Engine(other).generate(["life is"], GenerationSettings(seed=1, max_new_tokens=5))
    assert results[0].completion_tokens >= 1


@pytest.mark.parametrize("precision", ["bfloat16", "int8", "int4"])
def test_every_precision_stays_close_to_float32(llama: Path, precision: str) -> None:
    options = {"quantize": precision} if precision.startswith("int") else {"dtype": precision}
    fp32, other = _load(llama, dtype="float32"), _load(llama, **options)
    assert other.info().precision == precision
    kinds = {type(m).__name__ for m in other.model.modules()}
    expected = {"bfloat16": "HalfLinear", "int8": "Int8Linear", "int4": "Int4Linear"}[precision]
    assert expected in kinds
    if precision == "int4":  # the output head stays int8
        assert type(other.model.head).__name__ == "Int8Linear"
    ids, mask, positions = _batch(fp32)
    a = _logits(fp32.model, ids, attention_mask=mask, position_ids=positions)
    b = _logits(other.model, ids, attention_mask=mask, position_ids=positions)
    real = mask.bool()
    cosine = torch.nn.functional.cosine_similarity(a[real], b[real], dim=-1)
    assert cosine.min() > 0.98
    results = Engine(other).generate(["life is"], GenerationSettings(seed=1, max_new_tokens=5))
    assert results[0].completion_tokens >= 1


@pytest.mark.parametrize("precision", ["int8", "int4"])
def test_a_tied_model_embeds_through_its_int8_head(
    precision: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quantized, a tied model keeps one table: the head's int8 rows, read for the embedding
    too, so the bf16 embedding is neither in memory nor in the packed cache."""
    from safetensors import safe_open

    monkeypatch.setenv("QUOTEGEN_CACHE", str(tmp_path / "cache"))
    tied = build_tiny_llama(tmp_path / "tied", tied=True)
    fp32, quantized = _load(tied, dtype="float32"), _load(tied, quantize=precision)
    model: Any = quantized.model
    assert model.embed is None
    assert type(model.head).__name__ == "Int8Linear"
    ids, mask, positions = _batch(fp32)
    real = mask.bool()
    a = _logits(fp32.model, ids, attention_mask=mask, position_ids=positions)[real]
    b = _logits(model, ids, attention_mask=mask, position_ids=positions)[real]
    assert torch.nn.functional.cosine_similarity(a, b, dim=-1).min() > 0.98
    (packed,) = (tmp_path / "cache" / "packed").glob("*/model.safetensors")
    with safe_open(str(packed), "pt") as handle:
        assert not [key for key in handle.keys() if key == "embed"]  # noqa: SIM118
    again: Any = _load(tied, quantize=precision).model  # from the packed cache
    assert again.embed is None
    c = _logits(again, ids, attention_mask=mask, position_ids=positions)[real]
    assert torch.equal(b, c)


def _snap_to_int4_grid(weight: torch.Tensor) -> torch.Tensor:
    """The weight as GGUF's Q4_1 stores it: groups of 32, 16 levels between min and max."""
    rows, cols = weight.shape
    groups = weight.reshape(rows, cols // 32, 32)
    low = groups.amin(-1, keepdim=True)
    step = (groups.amax(-1, keepdim=True) - low) / 15
    return (((groups - low) / step).round() * step + low).reshape(rows, cols)


@pytest.fixture(scope="module")
def adapter_on_a_4bit_base(llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-bit-grid base (what a Q4 GGUF converts to) and a LoRA adapter on it."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("int4-adapter")
    model = AutoModelForCausalLM.from_pretrained(llama)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and name != "lm_head":
                module.weight.copy_(_snap_to_int4_grid(module.weight))
    model.save_pretrained(root / "base")
    AutoTokenizer.from_pretrained(llama).save_pretrained(root / "base")
    base = AutoModelForCausalLM.from_pretrained(root / "base")
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # peft starts B at zero (no update); make the update real
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    peft_model.save_pretrained(root / "adapter")
    return root / "adapter"


def test_int4_keeps_a_lora_adapter_exactly(
    adapter_on_a_4bit_base: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("QUOTEGEN_CACHE", str(tmp_path / "cache"))
    fp32 = _load(adapter_on_a_4bit_base, dtype="float32")
    int4 = _load(adapter_on_a_4bit_base, quantize="int4")
    sides = [m for m in int4.model.modules() if type(m).__name__ == "LowRankSide"]
    assert len(sides) == 4 * len(int4.model.layers)  # qkv, o, gate_up, down in every layer
    monkeypatch.setattr(quantization, "adapter_low_rank", lambda folder, **_: {})
    plain = _load(adapter_on_a_4bit_base, quantize="int4")
    assert not any(type(m).__name__ == "LowRankSide" for m in plain.model.modules())

    ids, mask, positions = _batch(fp32)
    real = mask.bool()
    exact = _logits(fp32.model, ids, attention_mask=mask, position_ids=positions)[real]
    kept = _logits(int4.model, ids, attention_mask=mask, position_ids=positions)[real]
    lost = _logits(plain.model, ids, attention_mask=mask, position_ids=positions)[real]
    kept_error = (kept - exact).abs().max()
    lost_error = (lost - exact).abs().max()
    # Kept aside, the update survives 4 bits (what is left is bf16 rounding of the inputs);
    # merged into the weights before quantizing, most of it is rounded away.
    assert kept_error < lost_error / 4


@pytest.mark.parametrize("precision", ["int8", "int4"])
def test_quantized_weights_are_packed_once_then_mapped(
    llama: Path, precision: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from quotegen.loading import speedups

    monkeypatch.setenv("QUOTEGEN_CACHE", str(tmp_path / "cache"))
    first = _load(llama, quantize=precision)
    packed = list((tmp_path / "cache" / "packed").iterdir())
    assert len(packed) == 1
    assert (packed[0] / "model.safetensors").is_file()

    def pack_again(*_: object) -> None:
        raise AssertionError("packed twice")

    monkeypatch.setattr(speedups, "_save_packed", pack_again)
    built: list[str] = []
    making = quantization.linear_maker

    def watched(precision: str, low_rank: object = None) -> object:
        make = making(precision, low_rank)  # type: ignore[arg-type]

        def record(names: object, weight: torch.Tensor, bias: object = None) -> object:
            built.append(weight.device.type)
            return make(names, weight, bias)  # type: ignore[arg-type]

        return record

    monkeypatch.setattr(quantization, "linear_maker", watched)
    second = _load(llama, quantize=precision)
    assert set(built) == {"meta"}  # a skeleton: no weight read, nothing quantized again
    ids = torch.tensor([[5, 17, 42, 7]])
    assert torch.equal(_logits(first.model, ids), _logits(second.model, ids))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quantize": "fp4"}, "Unknown quantization 'fp4'"),
        ({"quantize": "int8", "dtype": "bfloat16"}, "drop --dtype"),
        ({"quantize": "int4", "dtype": "float32"}, "drop --dtype"),
    ],
)
def test_bad_quantize_options_are_clear_errors(
    tiny_model_dir: Path, kwargs: dict[str, str], message: str
) -> None:
    with pytest.raises(DeviceError, match=message):
        _load(tiny_model_dir, **kwargs)


@pytest.mark.parametrize("precision", ["int8", "int4"])
def test_cli_quantize(llama: Path, precision: str, tmp_path: Path) -> None:
    result = run_cli(
        "generate", "life is", "--model", str(llama), "--quantize", precision, "--seed", "3"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    quotes = tmp_path / "quotes.txt"
    quotes.write_text("".join(p + ".\n" for p in PROMPTS))
    result = run_cli("eval", str(quotes), "--model", str(llama), "--quantize", precision, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["precision"] == precision


def test_cli_quantize_bad_value_is_one_line(tiny_model_dir: Path) -> None:
    result = run_cli("generate", "x", "--model", str(tiny_model_dir), "--quantize", "fp4")
    assert result.returncode == 2
    assert "Unknown quantization 'fp4'" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_lean_family_names_the_checkpoints_tensors(llama: Path) -> None:
    from safetensors import safe_open

    from quotegen.loading import lean

    config = json.loads((llama / "config.json").read_text())
    saved: set[str] = set()
    for weights in llama.glob("*.safetensors"):
        with safe_open(str(weights), "pt") as handle:
            saved |= set(handle.keys())
    # What a GGUF of the family is merged by, without building transformers' model.
    assert set(lean.tensor_names(config) or ()) == saved
    assert lean.tensor_names({**config, "model_type": "gpt2"}) is None
