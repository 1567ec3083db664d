"""Build small real GPT-2 models on the spot: random weights, a byte-level BPE tokenizer trained
here with ``tokenizers``, saved with ``save_pretrained``. Tests and benchmarks load them through
quotegen's real loading code; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "Life is what happens when you are busy making other plans.",
    "The only way to do great work is to love what you do.",
    "Friendship is like a lantern in the dark.",
    "She is a warrior, and she does not give up.",
    "You cannot find light without first knowing the dark.",
    "Life is not fair, but it is still good.",
    "Love is patient, love is kind.",
    "Work is love made visible.",
    "Time is a river without banks.",
    "Hope is the thing with feathers that perches in the soul.",
    "I think, therefore I am.",
    "NASA sent a man to the moon, and the world held its breath.",
    "Happiness is not something ready made. It comes from your own actions.",
    "Be yourself; everyone else is already taken.",
    "In the middle of difficulty lies opportunity!",
    "What we think, we become?",
    "Naïve café owners say: «déjà vu» — 日本語 and emoji 🙂 too.",
]


def build_tiny_gpt2(
    out: Path,
    *,
    vocab_size: int = 400,
    n_positions: int = 128,
    n_embd: int = 32,
    n_layer: int = 2,
    n_head: int = 2,
    quote_special_tokens: bool = False,
    seed: int = 0,
    corpus: list[str] | None = None,
) -> Path:
    """Save a random-weight GPT-2 and its freshly trained tokenizer to ``out``.

    ``quote_special_tokens`` mimics seed 2's quote model, which adds ``<BOS>``, ``<EOS>`` and
    ``<PAD>`` on top of GPT-2's vocabulary.
    """
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    texts = corpus or CORPUS
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        texts * 4, vocab_size=vocab_size, min_frequency=1, special_tokens=["<|endoftext|>"]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        model_max_length=n_positions,
    )
    if quote_special_tokens:
        tokenizer.add_special_tokens(
            {"bos_token": "<BOS>", "eos_token": "<EOS>", "pad_token": "<PAD>"}
        )
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = GPT2LMHeadModel(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        do_sample=True,
        top_k=50,
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
