"""Build small real GPT-2 models on the spot: random weights, a byte-level BPE tokenizer trained
here with ``tokenizers``, saved with ``save_pretrained``, through the same builders as
``quotegen train --from-scratch`` (and the benchmarks). Tests load them through quotegen's real
loading code; nothing is downloaded.
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
    tokenizer_kind: str = "bpe",
    dictionary: set[str] | None = None,
    spelling_pieces: int = 0,
    generation: dict[str, object] | None = None,
    chat_template: str | None = None,
) -> Path:
    """Save a random-weight GPT-2 and its freshly trained tokenizer to ``out``.

    ``quote_special_tokens`` mimics seed 2's quote model, which adds ``<BOS>``, ``<EOS>`` and
    ``<PAD>`` on top of GPT-2's vocabulary. A "words" tokenizer keeps every word of the
    corpus (or of ``dictionary``) and spells the others, with ``spelling_pieces`` if given.
    """
    from transformers import GenerationConfig

    from quotegen.training.fit import new_gpt2, train_tokenizer

    texts = (corpus or CORPUS) * 4
    if tokenizer_kind == "words":  # whole words (quotegen.training.vocab), a leading-space marker
        from quotegen.training.vocab import build_tokenizer

        words = dictionary or {w.strip(".,;!?\"'") for t in texts for w in t.split()}
        tokenizer, spelling = build_tokenizer(
            texts,
            words | {w.lower() for w in words},
            min_count=1,
            spelling_pieces=spelling_pieces,
        )
        if generation is not None and generation.get("suppress_tokens") == "spelling":
            generation = {**generation, "suppress_tokens": spelling}
    elif tokenizer_kind == "wordlevel":  # no space markers: the decoder joins with spaces
        tokenizer = _word_level_tokenizer(texts, n_positions)
    else:  # byte-level BPE, like GPT-2's
        tokenizer = train_tokenizer(texts, vocab_size, n_positions, min_frequency=1)
        tokenizer.pad_token = None  # like GPT-2 itself: no pad token
    if quote_special_tokens:
        tokenizer.add_special_tokens(
            {"bos_token": "<BOS>", "eos_token": "<EOS>", "pad_token": "<PAD>"}
        )
    model = new_gpt2(
        tokenizer,
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        seed=seed,
    )
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **(generation if generation is not None else {"do_sample": True, "top_k": 50}),
    )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _word_level_tokenizer(texts: list[str], context: int):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for t in texts for w, _ in pre_tokenizers.Whitespace().pre_tokenize_str(t)})
    vocab = {"<|endoftext|>": 0, "<unk>": 1} | {w: i + 2 for i, w in enumerate(words)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.decoder = decoders.WordPiece(cleanup=False)  # tokens joined with single spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        unk_token="<unk>",
        model_max_length=context,
    )
