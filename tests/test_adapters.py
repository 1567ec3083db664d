"""LoRA adapters: trained by ``quotegen train --lora``, loaded (merged, cached) by every
command, resumed from checkpoints, published as the Hub expects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from quotegen.errors import InputError
from quotegen.loading.locating import is_prepared
from quotegen.loading.model import load_model, place
from quotegen.loading.references import parse_model_ref
from quotegen.settings import TrainConfig
from quotegen.training.fit import train
from tests.helpers.cli import run_cli
from tests.helpers.ggufwriter import build_tiny_llama
from tests.helpers.modelfactory import CORPUS

QUOTES = [f"{q} ({i})" if i else q for i in range(4) for q in CORPUS]
FRAME = "<|endoftext|>"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("base") / "llama")


@pytest.fixture(scope="module")
def adapter(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("adapter")
    data = root / "quotes.txt"
    data.write_text("".join(q + "\n" for q in QUOTES))
    out = root / "lora"
    proc = run_cli(
        "train", str(data), "--base", str(base), "--lora", "--lora-targets", "q_proj,v_proj",
        "--frame-token", FRAME, "--epochs", "2", "--learning-rate", "1e-2", "--out", str(out),
        "--save-dtype", "float16", "--json", "-q",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["best_val_perplexity"] < report["initial_val_perplexity"]
    return out


def test_adapter_folder_is_a_standard_peft_adapter(adapter: Path, base: Path) -> None:
    names = {p.name for p in adapter.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= names
    assert "model.safetensors" not in names
    assert "config.json" not in names
    assert not (adapter / ".checkpoint").exists()  # removed once the run completed
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"
    assert config["base_model_name_or_path"] == str(base)
    assert sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    from safetensors import safe_open

    with safe_open(adapter / "adapter_model.safetensors", "pt") as weights:
        assert {str(weights.get_slice(k).get_dtype()) for k in weights.keys()} == {"F16"}  # noqa: SIM118
    card = (adapter / "README.md").read_text()
    assert 'library_name: "peft"' in card
    generation = json.loads((adapter / "generation_config.json").read_text())
    tokenizer = json.loads((adapter / "tokenizer_config.json").read_text())
    assert tokenizer["eos_token"] == tokenizer["bos_token"] == FRAME
    assert generation["eos_token_id"] is not None


def test_adapter_loads_merged_as_peft_computes_it(adapter: Path, base: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from quotegen.loading.hardware import storage_dtype

    loaded = load_model(
        parse_model_ref(str(adapter)), place("cpu", inference=False), optimize=False
    )
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter)
    # The merge is stored in the precision this CPU computes in (bf16 where it has bf16 units).
    reference = reference.merge_and_unload().to(storage_dtype()).float()
    reference.eval()
    stored = {str(t.dtype) for t in load_file(next(loaded.path.glob("*.safetensors"))).values()}
    assert stored == {str(storage_dtype())}
    ids = torch.tensor([loaded.tokenizer("Life is")["input_ids"]])
    assert ids[0, 0] == loaded.tokenizer.convert_tokens_to_ids(FRAME)  # the framing it learned
    with torch.no_grad():
        difference = (loaded.model(input_ids=ids).logits - reference(input_ids=ids).logits).abs()
    assert float(difference.max()) < 1e-4
    assert loaded.tokenizer.convert_tokens_to_ids(FRAME) in loaded.eos_token_ids
    assert is_prepared(parse_model_ref(str(adapter))) == loaded.path


def test_adapter_generate_and_eval(adapter: Path) -> None:
    generated = run_cli("generate", "-m", str(adapter), "--json", "--seed", "3", "life is")
    assert generated.returncode == 0, generated.stderr
    result = json.loads(generated.stdout)
    assert result["text"].lower().startswith("life is")
    evaluated = run_cli("eval", "-m", str(adapter), "--json", "-q", "-", input="Life is good.\n")
    if evaluated.returncode != 0:  # eval reads a file, not stdin
        data = adapter.parent / "one.txt"
        data.write_text("Life is good.\nLove is kind.\n")
        evaluated = run_cli("eval", str(data), "-m", str(adapter), "--json", "-q")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["perplexity"] > 1


def test_adapter_with_a_missing_base_is_one_line(adapter: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in adapter.iterdir():
        if item.is_file():
            (broken / item.name).write_bytes(item.read_bytes())
    config = json.loads((broken / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "gone")
    (broken / "adapter_config.json").write_text(json.dumps(config))
    proc = run_cli("generate", "-m", str(broken), "x")
    assert proc.returncode in (1, 2)
    assert proc.stderr.count("\n") == 1
    assert "gone" in proc.stderr


def _config(base: Path, out: Path, **extra: object) -> TrainConfig:
    settings = {
        "out": out, "base": str(base), "lora": True, "lora_targets": "q_proj,v_proj",
        "frame_token": FRAME, "epochs": 2, "batch_size": 4, "learning_rate": 1e-2,
        "checkpoint_every": 1, "lora_dropout": 0.1,
    }  # fmt: skip
    return TrainConfig(**{**settings, **extra})  # type: ignore[arg-type]


def _weights(folder: Path) -> dict:  # type: ignore[type-arg]
    from safetensors.torch import load_file

    return load_file(folder / "adapter_model.safetensors")


def test_interrupted_training_resumes_where_it_stopped(base: Path, tmp_path: Path) -> None:
    import torch

    whole = train(_config(base, tmp_path / "whole"), QUOTES)

    def interrupt(kind: str, done: int, total: int, values: dict[str, float]) -> None:
        if kind == "train" and done == 7:
            raise KeyboardInterrupt

    stopped = train(_config(base, tmp_path / "resumed"), QUOTES, progress=interrupt)
    assert stopped.interrupted
    assert (tmp_path / "resumed" / ".checkpoint" / "state.pt").is_file()
    notes: list[str] = []
    resumed = train(_config(base, tmp_path / "resumed"), QUOTES, notify=notes.append)
    steps = 2 * -(-whole.train_quotes // 4)  # two epochs of batches of four
    assert notes == [f"Resuming from the checkpoint at step 7 of {steps}"]
    assert not resumed.interrupted
    assert [e.epoch for e in resumed.epochs] == [e.epoch for e in whole.epochs]
    for name, tensor in _weights(tmp_path / "whole").items():
        torch.testing.assert_close(_weights(tmp_path / "resumed")[name], tensor)


def test_checkpoint_of_another_run_is_refused(base: Path, tmp_path: Path) -> None:
    def interrupt(kind: str, done: int, total: int, values: dict[str, float]) -> None:
        if kind == "train" and done == 2:
            raise KeyboardInterrupt

    train(_config(base, tmp_path / "a"), QUOTES, progress=interrupt)
    with pytest.raises(InputError, match="other settings or data"):
        train(_config(base, tmp_path / "a", learning_rate=5e-3), QUOTES)


def test_adapter_upload_download_generate(adapter: Path, tmp_path: Path) -> None:
    from tests.helpers.hubserver import HubStandIn

    hub = HubStandIn().start()
    try:
        env = {
            "HF_ENDPOINT": hub.url,
            "HF_HUB_OFFLINE": "0",
            "HF_HOME": str(tmp_path / "hf-home"),
            "HF_TOKEN": "hf_good_token",
        }
        proc = run_cli("upload", str(adapter), "tester/quote-lora", env=env)
        assert proc.returncode == 0, proc.stderr
        assert "not a Hub repo: others can load it only with that base" in proc.stderr
        files = hub.repos["tester/quote-lora"].commits[
            hub.repos["tester/quote-lora"].revisions["main"]
        ]
        assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= set(files)
        assert "model.safetensors" not in files  # the adapter, not a merged model
        fetched = run_cli("download", "tester/quote-lora", env=env)
        assert fetched.returncode == 0, fetched.stderr
        args = ["generate", "--seed", "5", "-t", "8", "love is"]
        offline = {**env, "HF_HUB_OFFLINE": "1"}
        remote = run_cli(*args, "-m", "tester/quote-lora", env=offline)
        local = run_cli(*args, "-m", str(adapter), env=offline)
        assert remote.returncode == 0, remote.stderr
        assert remote.stdout == local.stdout
    finally:
        hub.stop()


CHAT = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|endoftext|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _chat_rows() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for i, quote in enumerate(QUOTES):
        if i % 2:
            rows.append({"text": quote})
            continue
        topic = quote.split()[-1].strip(".()0123456789") or "life"
        messages = [{"role": "user", "content": f"Write a quote about {topic}."}]
        rows.append({"messages": [*messages, {"role": "assistant", "content": quote}]})
    return rows


def test_training_on_conversations_learns_replies_only(base: Path, tmp_path: Path) -> None:
    """A base with a chat template trained on plain quotes and chat requests (OpenAI's
    fine-tuning rows): the template is kept, --about uses it, --lora-init trains further."""
    from transformers import AutoTokenizer

    from quotegen.inputs import Conversation, read_examples
    from quotegen.training.evaluation import encode_examples

    chatty = tmp_path / "chatty"
    chatty.mkdir()
    for item in base.iterdir():
        (chatty / item.name).write_bytes(item.read_bytes())
    tokenizer = AutoTokenizer.from_pretrained(chatty)
    tokenizer.chat_template = CHAT
    tokenizer.save_pretrained(chatty)
    data = tmp_path / "mix.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _chat_rows()))
    examples = read_examples(data)
    assert isinstance(examples[0], Conversation)
    assert isinstance(examples[1], str)
    ((ids, held),) = encode_examples(tokenizer, [examples[0]], 128)
    context = tokenizer.apply_chat_template(
        examples[0].as_dicts(-1), add_generation_prompt=True, tokenize=False
    )
    assert held == len(tokenizer(context)["input_ids"])
    assert held < len(ids)
    assert tokenizer.decode(ids[held:]) == examples[0].reply + "<|endoftext|>"

    out = tmp_path / "lora"
    args = ["--lora", "--lora-targets", "q_proj,v_proj", "--frame-token", FRAME, "--json", "-q"]
    first = run_cli("train", str(data), "--base", str(chatty), *args, "--epochs", "2",
                    "--learning-rate", "1e-2", "--out", str(out))  # fmt: skip
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["best_val_perplexity"] < report["initial_val_perplexity"]
    assert AutoTokenizer.from_pretrained(out).chat_template == CHAT
    quote = run_cli("generate", "-m", str(out), "--about", "wisdom", "--seed", "1", "-t", "5", "a")
    assert quote.returncode == 0, quote.stderr
    assert quote.stdout.startswith("A")
    assert "<|" not in quote.stdout
    # Trained further from the adapter: it starts where the first run ended.
    further = run_cli("train", str(data), "--base", str(chatty), *args, "--lora-init", str(out),
                      "--max-steps", "1", "--out", str(tmp_path / "more"))  # fmt: skip
    assert further.returncode == 0, further.stderr
    again = json.loads(further.stdout)["initial_val_perplexity"]
    assert again == pytest.approx(report["best_val_perplexity"], rel=1e-3)


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "last message must be"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "needs a role"),
        ({"messages": "hello"}, "non-empty list"),
        ({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "x"}]},
         "text content"),
    ],
)  # fmt: skip
def test_bad_conversation_rows_are_clear_errors(
    tmp_path: Path, row: dict[str, object], needle: str
) -> None:
    from quotegen.inputs import read_examples

    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps({"text": "fine"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(InputError, match=needle) as caught:
        read_examples(data)
    assert "Row 2" in str(caught.value)
