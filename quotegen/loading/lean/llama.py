"""The lean inference forward pass for Llama-architecture models (SmolLM2, the default
model's base, is one): the ``llama`` family of ``quotegen.loading.lean``.

transformers' Llama forward runs about 2,500 small tensor operations per decode step on a
30-layer model (separate q/k/v and gate/up products, an RMSNorm written as seven operations,
a mask built per layer, keys and values repeated for grouped-query attention). On a CPU with
a 135M-parameter model those cost more than the matrix products themselves. ``LeanLlama``
computes the same function with fewer, larger operations:

- q, k and v in one product, gate and up in another (their weights concatenated once);
- torch's fused ``rms_norm``, ``silu`` and ``scaled_dot_product_attention`` (grouped-query
  attention handled inside it, no repeated keys);
- one rotary table lookup and one attention mask per forward pass, shared by every layer;
- a ``DynamicCache`` like transformers', so continuous batching (``quotegen.engine.kvcache``) works
  unchanged;
- built straight from the checkpoint's tensors (``from_tensors``): no transformers model class
  is imported, which takes about a second off a cold start.

Its linear layers are whatever ``make_linear`` builds from each weight, so the precisions of
``quotegen.loading.quantization`` plug in without this module knowing them. Only plain Llama configs
qualify (``supports``); anything else keeps transformers' forward. The classes live at module
level (``isinstance`` and pickling work); torch is imported with the module, which only the
registry's lazy import brings in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import DynamicCache

if TYPE_CHECKING:
    from quotegen.loading.quantization import MakeLinear

#: config.json's ``model_type`` this module computes (the registry's key).
MODEL_TYPE = "llama"


def supports(model: Any) -> bool:
    """Whether ``model`` is a plain Llama causal LM this forward reproduces exactly."""
    config = getattr(model, "config", None)
    return (
        type(model).__name__ == "LlamaForCausalLM"
        and config is not None
        and (supports_config(config.to_dict()))
    )


def supports_config(config: Mapping[str, Any]) -> bool:
    """Whether a ``config.json`` (as a dict) describes such a model."""
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    return (
        config.get("model_type") == "llama"
        and config.get("architectures") in (None, ["LlamaForCausalLM"])
        and config.get("hidden_act", "silu") == "silu"
        and not config.get("attention_bias", False)
        and not config.get("mlp_bias", False)
        and rope.get("rope_type", "default") == "default"
        and config.get("pretraining_tp", 1) == 1
    )


class LeanConfig:
    """A checkpoint's ``config.json`` as attributes, with Llama's defaults: what the lean
    model and quotegen read of a config (``vocab_size``, ``max_position_embeddings``,
    ``eos_token_id``, ...), without importing transformers' config classes."""

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False,
        "max_position_embeddings": 2048,
        "eos_token_id": None,
        "bos_token_id": None,
        "pad_token_id": None,
    }

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = {**self.DEFAULTS, **values}
        self._values.setdefault("num_key_value_heads", values.get("num_attention_heads"))
        for key, value in self._values.items():
            setattr(self, key, value)

    def to_dict(self) -> dict[str, Any]:
        return dict(self._values)


def _head_dim(config: Any) -> int:
    return int(
        getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    )


def _frozen(tensor: torch.Tensor) -> Any:
    return nn.Parameter(tensor, requires_grad=False)


class LeanLayer(nn.Module):
    def __init__(
        self, config: Any, tensors: Mapping[str, torch.Tensor], make: MakeLinear, name: str
    ) -> None:
        super().__init__()

        def linear(*parts: str) -> nn.Module:
            names = tuple(f"{name}.{part}" for part in parts)
            weights = [tensors[f"{n}.weight"] for n in names]
            return make(names, weights[0] if len(weights) == 1 else torch.cat(weights))

        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = _head_dim(config)
        self.scale = self.head_dim**-0.5
        self.eps = config.rms_norm_eps
        self.input_norm = _frozen(tensors[f"{name}.input_layernorm.weight"].float())
        self.post_norm = _frozen(tensors[f"{name}.post_attention_layernorm.weight"].float())
        self.qkv = linear("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")
        self.o = linear("self_attn.o_proj")
        self.gate_up = linear("mlp.gate_proj", "mlp.up_proj")
        self.down = linear("mlp.down_proj")
        self.width = tensors[f"{name}.mlp.gate_proj.weight"].shape[0]

    def forward(
        self,
        x: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor | None,
        cache: Any,
        index: int,
    ) -> torch.Tensor:
        batch, length, hidden = x.shape
        h = F.rms_norm(x, (hidden,), self.input_norm, self.eps)
        qkv = self.qkv(h).view(batch, length, -1, self.head_dim).transpose(1, 2)
        qk, v = qkv[:, : self.heads + self.kv_heads], qkv[:, self.heads + self.kv_heads :]
        cos, sin = rotary
        half = self.head_dim // 2
        qk = qk * cos + torch.cat([-qk[..., half:], qk[..., :half]], dim=-1) * sin
        q, k = qk[:, : self.heads], qk[:, self.heads :]
        if cache is not None:
            k, v = cache.update(k, v, index)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, scale=self.scale, enable_gqa=True
        )
        x = x + self.o(out.transpose(1, 2).reshape(batch, length, -1))
        h = F.rms_norm(x, (hidden,), self.post_norm, self.eps)
        gate, up = self.gate_up(h).split(self.width, dim=-1)
        result: torch.Tensor = x + self.down(F.silu(gate) * up)
        return result


class LeanOutput:
    """A forward pass's logits and KV cache (under both names transformers has used)."""

    def __init__(self, logits: torch.Tensor, cache: Any) -> None:
        self.logits = logits
        self.cache = self.past_key_values = cache


class LeanLlama(nn.Module):
    """``LlamaForCausalLM``'s inference forward with fewer operations (module docstring).

    Keeps ``config``; takes the KV cache as ``cache`` (the transformers 5.24+ name) and
    ``logits_to_keep``.
    """

    def __init__(
        self, config: Any, tensors: Mapping[str, torch.Tensor], make_linear: MakeLinear
    ) -> None:
        super().__init__()
        self.config = config
        self.main_input_name = "input_ids"
        self.embed = _frozen(tensors["model.embed_tokens.weight"])
        self.layers = nn.ModuleList(
            LeanLayer(config, tensors, make_linear, f"model.layers.{i}")
            for i in range(config.num_hidden_layers)
        )
        self.norm = _frozen(tensors["model.norm.weight"].float())
        self.eps = config.rms_norm_eps
        head = tensors.get("lm_head.weight")  # absent from a tied checkpoint
        self.head = make_linear(("lm_head",), self.embed if head is None else head)
        if head is None and hasattr(self.head, "rows"):
            # Tied and quantized: the head's int8 rows are the embedding too (a lookup
            # dequantizes the rows it takes), so the table is not kept a second time.
            self.embed = None
        head_dim = _head_dim(config)
        rope = getattr(config, "rope_parameters", None) or {}
        theta = float(rope.get("rope_theta") or getattr(config, "rope_theta", None) or 1e4)
        steps = torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim
        self.inv_freq: torch.Tensor = 1.0 / theta**steps
        self._rotary_table: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def device(self) -> torch.device:
        device: torch.device = self.norm.device
        return device

    def _rotary(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin for ``positions`` [batch, length], shaped [batch, 1, length, dim]
        to broadcast over heads; from a table made once for the model's whole context."""
        size = int(positions.max()) + 1
        if self._rotary_table is None or self._rotary_table[0].shape[0] < size:
            wanted = max(size, getattr(self.config, "max_position_embeddings", 0) or size)
            steps = torch.arange(wanted, dtype=torch.float, device=self.inv_freq.device)
            freqs = torch.outer(steps, self.inv_freq)
            both = torch.cat([freqs, freqs], dim=-1)
            self._rotary_table = (both.cos(), both.sin())
        cos, sin = self._rotary_table
        return cos[positions][:, None], sin[positions][:, None]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: Any = None,
        use_cache: bool = True,
        logits_to_keep: int = 0,
        **_: Any,
    ) -> Any:
        batch, length = input_ids.shape
        if use_cache and cache is None:
            cache = DynamicCache()
        past = cache.get_seq_length() if cache is not None else 0
        if position_ids is None:
            if attention_mask is not None and past == 0:
                position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
            else:
                position_ids = torch.arange(past, past + length, device=input_ids.device)
                position_ids = position_ids.expand(batch, length)
        mask = self._mask(attention_mask, batch, length, past)
        x = self._embedded(input_ids)
        rotary = self._rotary(position_ids)
        for index, layer in enumerate(self.layers):
            x = layer(x, rotary, mask, cache, index)
        if logits_to_keep:
            x = x[:, -logits_to_keep:]
        x = F.rms_norm(x, (x.shape[-1],), self.norm, self.eps)
        logits = self.head(x).float()
        return LeanOutput(logits, cache)

    def _embedded(self, input_ids: torch.Tensor) -> torch.Tensor:
        if self.embed is None:
            head: Any = self.head
            rows: torch.Tensor = head.rows(input_ids)
            return rows
        return F.embedding(input_ids, self.embed).float()

    def final_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        """The final hidden states (after the last norm) of a batch, without a cache: what
        the quote scorer (``quotegen.engine.scorer``) reads."""
        batch, length = input_ids.shape
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        mask = self._mask(attention_mask, batch, length, 0)
        x = self._embedded(input_ids)
        rotary = self._rotary(positions)
        for index, layer in enumerate(self.layers):
            x = layer(x, rotary, mask, None, index)
        return F.rms_norm(x, (x.shape[-1],), self.norm, self.eps)

    def _mask(
        self, attention_mask: torch.Tensor | None, batch: int, length: int, past: int
    ) -> torch.Tensor | None:
        """The boolean [batch, 1, length, past + length] mask: causal, padding hidden.
        None when nothing is hidden (one new token per row, no padding)."""
        device = self.norm.device
        total = past + length
        padded = attention_mask is not None and not bool(attention_mask.all())
        if length == 1 and not padded:
            return None
        rows = torch.arange(past, total, device=device)[:, None]
        allowed = torch.arange(total, device=device)[None, :] <= rows
        mask = allowed.expand(batch, 1, length, total)
        if padded:
            assert attention_mask is not None
            mask = mask & attention_mask[:, None, None, :total].bool()
            # A padding position attends to nothing; let it see itself so its (ignored)
            # output stays a number rather than NaN.
            mask = mask | (rows == torch.arange(total, device=device)[None, :])
        return mask


def lean(model: Any, make_linear: MakeLinear) -> Any:
    """A ``LeanLlama`` over a loaded ``LlamaForCausalLM``'s weights (``supports(model)``)."""
    tensors = {name: tensor.detach() for name, tensor in model.state_dict().items()}
    return LeanLlama(model.config, tensors, make_linear)


def from_tensors(config: Any, tensors: Mapping[str, Any], make_linear: MakeLinear) -> Any:
    """A ``LeanLlama`` straight from a checkpoint's tensors (``config`` a transformers config
    that ``supports_config`` accepts): no transformers model is built at all."""
    return LeanLlama(config, tensors, make_linear)


#: How ``config.json`` (a dict) becomes what ``from_tensors`` takes.
config_class = LeanConfig

_LAYER_TENSORS = (
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
    "input_layernorm",
    "post_attention_layernorm",
)


def tensor_names(config: Mapping[str, Any]) -> list[str]:
    """The tensors a checkpoint of ``config`` holds, by transformers' names (what
    ``LlamaForCausalLM`` saves): named without building the model."""
    names = ["model.embed_tokens.weight", "model.norm.weight"]
    for layer in range(int(config["num_hidden_layers"])):
        names += [f"model.layers.{layer}.{part}.weight" for part in _LAYER_TENSORS]
    if not config.get("tie_word_embeddings", False):
        names.append("lm_head.weight")
    return names
