"""Train the default model's quote scorer (``quotegen.engine.scorer``) and save it beside the
adapter as ``quotegen-scorer.json``.

    python scripts/train-scorer.py MODEL CORPUS_DIR OUT_JSON_REPORT

Real sayings the model never trained on (the corpus's validation split) are labelled 1, the
model's own quotes 0: continuations of the first words of other validation sayings, and
quotes about topics drawn from those sayings. The features are the model's mean final hidden
state over the quote; a logistic regression separates the two. The report gives the
cross-validated area under the ROC curve of the regression and, beside it, of the model's
length-normalised likelihood (the scorer it replaces), of the adapter's likelihood against
the base's, and of the penalties alone.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.reading import auc

REAL = 500
CONTINUATIONS = 400
TOPICAL = 150
L2_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)


def mean_logprob(engine: object, texts: list[str]) -> list[float]:
    """Each text's mean token log-probability under the model (plain framing)."""
    import torch

    loaded = engine.loaded  # type: ignore[attr-defined]
    tokenizer, model = loaded.tokenizer, loaded.model
    frame = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    out = []
    with torch.inference_mode():
        for text in texts:
            ids = [frame, *tokenizer(text, add_special_tokens=False)["input_ids"], frame]
            x = torch.tensor([ids])
            logits = model(input_ids=x, attention_mask=torch.ones_like(x)).logits.float()
            logprobs = torch.log_softmax(logits[0, :-1], -1).gather(-1, x[0, 1:, None])
            out.append(float(logprobs.mean()))
    return out


def main() -> None:
    import torch

    import quotegen
    from quotegen.engine.scorer import fit_logistic, penalty, pooled_states
    from quotegen.training.fit import split_quotes

    model, corpus, report_path = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    started = time.perf_counter()
    rng = random.Random(0)
    lines = (corpus / "corpus.txt").read_text("utf-8").splitlines()
    from quotegen.config import TRAIN

    _, validation = split_quotes(lines, TRAIN.val_split, TRAIN.seed)
    usable = [s for s in validation if 4 <= len(s.split()) <= 30]
    rng.shuffle(usable)
    real = usable[:REAL]
    openings = [" ".join(s.split()[: rng.choice((2, 3))]) for s in usable[REAL:]]
    openings = (openings * 2)[:CONTINUATIONS]
    engine = quotegen.get_model(model)
    plain = engine.settings({"seed": 11, "best_of": 1})
    samples = [r.text for r in engine.generate(openings, plain)]
    from modelbuild.framing import GENERIC, STOP

    topics = [
        w.strip(".,;:!?\"'").lower()
        for s in usable
        for w in s.split()
        if len(w) > 4 and w.isalpha() and w.lower() not in STOP | GENERIC
    ]
    rng.shuffle(topics)
    topical: list[str] = []
    for topic in topics[:TOPICAL]:
        settings = engine.settings({"seed": len(topical), "best_of": 1, "about": topic})
        topical += [r.text for r in engine.generate([""], settings)]
    fakes = samples + topical
    texts = real + fakes
    labels = [1] * len(real) + [0] * len(fakes)
    loaded = engine.loaded
    frame = loaded.tokenizer.convert_tokens_to_ids("<|endoftext|>")
    encoded = loaded.tokenizer(texts, add_special_tokens=False)["input_ids"]
    features = torch.cat(
        [pooled_states(loaded.model, encoded[i : i + 32], frame) for i in range(0, len(texts), 32)]
    )
    # 5-fold cross-validation of the regression (and its L2 strength), against the baselines.
    order = list(range(len(texts)))
    rng.shuffle(order)
    folds = [order[k::5] for k in range(5)]
    cv: dict[str, float] = {}
    for l2 in L2_GRID:
        predicted = [0.0] * len(texts)
        for fold in folds:
            held = set(fold)
            train_ids = [i for i in order if i not in held]
            scorer = fit_logistic(features[train_ids], [labels[i] for i in train_ids], l2=l2)
            for i, value in zip(fold, scorer.logits(features[fold]), strict=True):
                predicted[i] = value
        cv[f"logistic_l2_{l2}"] = auc(predicted, [bool(v) for v in labels]) or 0.5
    best_l2 = max(L2_GRID, key=lambda v: cv[f"logistic_l2_{v}"])
    likelihood = mean_logprob(engine, texts)
    cv["mean_token_logprob"] = auc(likelihood, [bool(v) for v in labels]) or 0.5
    base = quotegen.get_model("smollm2-135m-instruct")
    ratio = [a - b for a, b in zip(likelihood, mean_logprob(base, texts), strict=True)]
    cv["adapter_minus_base_logprob"] = auc(ratio, [bool(v) for v in labels]) or 0.5
    del base
    cv["penalties"] = auc([penalty(t) for t in texts], [bool(v) for v in labels]) or 0.5
    scorer = fit_logistic(features, labels, l2=best_l2)
    about = {
        "trained_on": f"{len(real)} real validation sayings (1) against {len(fakes)} of the "
        f"model's own quotes (0): {len(samples)} continuations, {len(topical)} about a topic",
        "l2": best_l2,
        "cross_validated_auc": round(cv[f"logistic_l2_{best_l2}"], 4),
    }
    folder = Path(model)
    scorer.save(folder, **about)
    report = {
        **about,
        "auc_5_fold": {k: round(v, 4) for k, v in cv.items()},
        "seconds": round(time.perf_counter() - started, 1),
        "examples_model": fakes[:10],
    }
    report_path.write_text(json.dumps(report, indent=1) + "\n", "utf-8")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
