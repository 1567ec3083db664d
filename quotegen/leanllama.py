"""A lean inference forward pass for Llama-architecture models (SmolLM2, the default model's
base, is one).

transformers' Llama forward runs about 2,500 small tensor operations per decode step on a
30-layer model (separate q/k/v and gate/up products, an RMSNorm written as seven operations,
a mask built per layer, keys and values repeated for grouped-query attention). On a CPU with
a 135M-parameter model those cost more than the matrix products themselves. ``LeanLlama``
computes the same function with fewer, larger operations:

- q, k and v in one product, gate and up in another (their weights concatenated once);
- torch's fused ``rms_norm``, ``silu`` and ``scaled_dot_product_attention`` (grouped-query
  attention handled inside it, no repeated keys);
- one rotary table lookup and one attention mask per forward pass, shared by every layer;
- a ``DynamicCache`` like transformers', so continuous batching (``quotegen.kvcache``) works
  unchanged.

Its linear layers are whatever ``make_linear`` builds from each weight, so the precisions of
``quotegen.quantization`` plug in without this module knowing them. Only plain Llama configs
qualify (``supports``); anything else keeps transformers' forward. torch and transformers are
imported inside the functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from quotegen.quantization import MakeLinear


def supports(model: Any) -> bool:
    """Whether ``model`` is a plain Llama causal LM this forward reproduces exactly."""
    config = getattr(model, "config", None)
    if config is None or type(model).__name__ != "LlamaForCausalLM":
        return False
    rope = getattr(config, "rope_parameters", None) or {}
    return (
        config.hidden_act == "silu"
        and not getattr(config, "attention_bias", False)
        and not getattr(config, "mlp_bias", False)
        and rope.get("rope_type", "default") == "default"
        and getattr(config, "pretraining_tp", 1) == 1
    )


def _layer_class() -> type:
    import torch
    import torch.nn.functional as F
    from torch import nn

    class LeanLayer(nn.Module):
        def __init__(self, layer: Any, config: Any, make_linear: MakeLinear, name: str) -> None:
            super().__init__()
            attn, mlp = layer.self_attn, layer.mlp
            a, m = f"{name}.self_attn", f"{name}.mlp"
            self.heads = config.num_attention_heads
            self.kv_heads = config.num_key_value_heads
            self.head_dim = attn.head_dim
            self.scale = attn.scaling
            self.eps = config.rms_norm_eps
            self.input_norm = nn.Parameter(layer.input_layernorm.weight.detach().float())
            self.post_norm = nn.Parameter(layer.post_attention_layernorm.weight.detach().float())
            self.qkv = make_linear(
                (f"{a}.q_proj", f"{a}.k_proj", f"{a}.v_proj"),
                torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]).detach(),
            )
            self.o = make_linear((f"{a}.o_proj",), attn.o_proj.weight.detach())
            self.gate_up = make_linear(
                (f"{m}.gate_proj", f"{m}.up_proj"),
                torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]).detach(),
            )
            self.down = make_linear((f"{m}.down_proj",), mlp.down_proj.weight.detach())
            self.width = mlp.gate_proj.weight.shape[0]

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

    return LeanLayer


def lean(model: Any, make_linear: MakeLinear) -> Any:
    """A ``LeanLlama`` over ``model``'s weights (``supports(model)`` must hold)."""
    return _lean_class()(model, make_linear)


def _lean_class() -> type:
    import torch
    import torch.nn.functional as F
    from torch import nn
    from transformers.cache_utils import DynamicCache
    from transformers.modeling_outputs import CausalLMOutputWithPast

    layer_class = _layer_class()

    class LeanLlama(nn.Module):
        """``LlamaForCausalLM``'s inference forward with fewer operations (module docstring).

        Keeps ``config`` and ``generation_config``; takes the KV cache as ``cache`` (the
        transformers 5.24+ name) and ``logits_to_keep``.
        """

        def __init__(self, model: Any, make_linear: MakeLinear) -> None:
            super().__init__()
            config = model.config
            self.config = config
            self.generation_config = model.generation_config
            self.main_input_name = "input_ids"
            self.embed = nn.Parameter(model.model.embed_tokens.weight.detach(), False)
            self.layers = nn.ModuleList(
                layer_class(layer, config, make_linear, f"model.layers.{i}")
                for i, layer in enumerate(model.model.layers)
            )
            self.norm = nn.Parameter(model.model.norm.weight.detach().float(), False)
            self.eps = config.rms_norm_eps
            self.head = make_linear(("lm_head",), model.lm_head.weight.detach())
            head_dim = int(
                getattr(config, "head_dim", None)
                or config.hidden_size // config.num_attention_heads
            )
            theta = config.rope_parameters["rope_theta"]
            steps = torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim
            self.inv_freq: torch.Tensor = 1.0 / theta**steps
            self._rotary_table: tuple[torch.Tensor, torch.Tensor] | None = None

        @property
        def device(self) -> torch.device:
            return self.embed.device

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
                cache = DynamicCache(config=self.config)
            past = cache.get_seq_length() if cache is not None else 0
            if position_ids is None:
                if attention_mask is not None and past == 0:
                    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
                else:
                    position_ids = torch.arange(past, past + length, device=input_ids.device)
                    position_ids = position_ids.expand(batch, length)
            mask = self._mask(attention_mask, batch, length, past)
            x = F.embedding(input_ids, self.embed).float()
            rotary = self._rotary(position_ids)
            for index, layer in enumerate(self.layers):
                x = layer(x, rotary, mask, cache, index)
            if logits_to_keep:
                x = x[:, -logits_to_keep:]
            x = F.rms_norm(x, (x.shape[-1],), self.norm, self.eps)
            logits = self.head(x).float()
            return CausalLMOutputWithPast(logits=logits, past_key_values=cache)

        def _mask(
            self, attention_mask: torch.Tensor | None, batch: int, length: int, past: int
        ) -> torch.Tensor | None:
            """The boolean [batch, 1, length, past + length] mask: causal, padding hidden.
            None when nothing is hidden (one new token per row, no padding)."""
            device = self.embed.device
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

    return LeanLlama
