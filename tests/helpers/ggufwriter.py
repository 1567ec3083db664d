"""Real GGUF files for tests, written with the ``gguf`` package's own writer.

A tiny Llama (grouped-query attention) or GPT-2 with random weights and a byte-level BPE
tokenizer trained on the spot is saved with ``save_pretrained`` (the reference) and written
as GGUF the way llama.cpp's converter lays it out: llama.cpp's tensor names, Llama's Q and K
rows permuted for its rotary layout, GPT-2's Conv1D weights transposed, the tokenizer as
``tokenizer.ggml.*`` metadata. Tensors are F32, F16 or Q8_0 (quantized by ``gguf.quants``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers.modelfactory import CORPUS


def _tokenizer(vocab_size: int) -> Any:
    from quotegen.training.fit import train_tokenizer

    tokenizer = train_tokenizer(CORPUS * 4, vocab_size, 128, min_frequency=1)
    return tokenizer


def build_tiny_llama(out: Path, *, seed: int = 0, tied: bool = False) -> Path:
    """A random-weight Llama with 2 layers, 4 query heads over 2 key-value heads, saved;
    ``tied``: its output head is its embedding (as SmolLM2's is)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _tokenizer(320)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        tie_word_embeddings=tied,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # random norms, so a wrong mapping of them shows in the logits
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.uniform_(0.5, 1.5)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _permute(weights: Any, heads: int) -> Any:
    """llama.cpp's rotary layout of a Q or K projection (transformers undoes it on load)."""
    return (
        weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _llama_tensors(state: dict[str, Any], config: Any) -> dict[str, Any]:
    tensors = {
        "token_embd.weight": state["model.embed_tokens.weight"],
        "output_norm.weight": state["model.norm.weight"],
        "output.weight": state["lm_head.weight"],
    }
    for i in range(config.num_hidden_layers):
        layer = f"model.layers.{i}."
        names = {
            "attn_norm": "input_layernorm",
            "attn_v": "self_attn.v_proj",
            "attn_output": "self_attn.o_proj",
            "ffn_norm": "post_attention_layernorm",
            "ffn_gate": "mlp.gate_proj",
            "ffn_up": "mlp.up_proj",
            "ffn_down": "mlp.down_proj",
        }
        for short, long in names.items():
            tensors[f"blk.{i}.{short}.weight"] = state[f"{layer}{long}.weight"]
        tensors[f"blk.{i}.attn_q.weight"] = _permute(
            state[f"{layer}self_attn.q_proj.weight"], config.num_attention_heads
        )
        tensors[f"blk.{i}.attn_k.weight"] = _permute(
            state[f"{layer}self_attn.k_proj.weight"], config.num_key_value_heads
        )
    return tensors


def _gpt2_tensors(state: dict[str, Any], config: Any) -> dict[str, Any]:
    tensors = {
        "token_embd.weight": state["transformer.wte.weight"],
        "position_embd.weight": state["transformer.wpe.weight"],
        "output_norm.weight": state["transformer.ln_f.weight"],
        "output_norm.bias": state["transformer.ln_f.bias"],
        "output.weight": state["lm_head.weight"],
    }
    for i in range(config.n_layer):
        layer = f"transformer.h.{i}."
        names = {
            "attn_norm": "ln_1",
            "attn_qkv": "attn.c_attn",
            "attn_output": "attn.c_proj",
            "ffn_norm": "ln_2",
            "ffn_up": "mlp.c_fc",
            "ffn_down": "mlp.c_proj",
        }
        for short, long in names.items():
            weight = state[f"{layer}{long}.weight"]
            conv1d = short not in ("attn_norm", "ffn_norm")
            tensors[f"blk.{i}.{short}.weight"] = weight.T if conv1d else weight
            tensors[f"blk.{i}.{short}.bias"] = state[f"{layer}{long}.bias"]
    return tensors


def write_gguf(model_dir: Path, out: Path, kind: str = "F32") -> Path:
    """The model saved in ``model_dir`` as a GGUF file of ``kind`` (F32, F16 or Q8_0)."""
    import gguf
    import numpy as np
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    state = {name: t.detach().float().numpy() for name, t in model.state_dict().items()}
    arch = config.model_type
    writer = gguf.GGUFWriter(str(out), arch)
    writer.add_name(model_dir.name)
    if arch == "llama":
        tensors = _llama_tensors(state, config)
        writer.add_context_length(config.max_position_embeddings)
        writer.add_embedding_length(config.hidden_size)
        writer.add_block_count(config.num_hidden_layers)
        writer.add_feed_forward_length(config.intermediate_size)
        writer.add_head_count(config.num_attention_heads)
        writer.add_head_count_kv(config.num_key_value_heads)
        writer.add_layer_norm_rms_eps(config.rms_norm_eps)
        writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
        writer.add_vocab_size(config.vocab_size)
    elif arch == "gpt2":
        tensors = _gpt2_tensors(state, config)
        writer.add_context_length(config.n_positions)
        writer.add_embedding_length(config.n_embd)
        writer.add_block_count(config.n_layer)
        writer.add_feed_forward_length(4 * config.n_embd)
        writer.add_head_count(config.n_head)
        writer.add_layer_norm_eps(config.layer_norm_epsilon)
    else:
        raise ValueError(arch)
    vocab = tokenizer.get_vocab()
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    special = set(tokenizer.all_special_tokens)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(
        [gguf.TokenType.CONTROL if token in special else gguf.TokenType.NORMAL for token in tokens]
    )
    spec = tokenizer.backend_tokenizer.to_str()
    import json

    merges = json.loads(spec)["model"]["merges"]
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    if tokenizer.bos_token_id is not None:
        writer.add_bos_token_id(tokenizer.bos_token_id)
    if tokenizer.eos_token_id is not None:
        writer.add_eos_token_id(tokenizer.eos_token_id)
    quant = getattr(gguf.GGMLQuantizationType, kind)
    for name, array in tensors.items():
        array = np.ascontiguousarray(array, dtype=np.float32)
        if array.ndim == 1 or kind == "F32":
            writer.add_tensor(name, array)
        elif kind == "F16":
            writer.add_tensor(name, array.astype(np.float16))
        else:
            data = gguf.quants.quantize(array, quant)
            writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=quant)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
