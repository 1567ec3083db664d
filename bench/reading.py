"""The blind reading: does a reader keep the model's quotes as often as real ones?

    python bench/reading.py draw [--model M] [--best-of N] [--set S] [--variant V] [--out DIR]
    (a reader fills in DIR/marks.txt: one line per sheet line, "k" keep or "x" not)
    python bench/reading.py report [--out DIR]                          # the shares kept

``draw`` takes 50 real held-out sayings, and 25 of them give their first two or three words
as prompts; the model writes 2 quotes for each (its own defaults, ``--best-of`` to
override), 50 in all. The sayings come from one of two sets, never trained on and never
used to build the scorer:

- ``modern`` (the first readings): the corpus's modern held-out set, mostly programmers'
  fortunes ("Rule #9:", "Unix and C"), far from what the model was trained to write;
- ``sayings``: the corpus's validation split less the 500 sayings the scorer learned from,
  its aphorisms and plain sayings (``modelbuild.framing.weight`` 1 or more), the kind of
  line a user asks for.

Each ``--variant NAME='{"temperature": 0.5}'`` (repeatable) writes another 50 model lines
with those settings over the defaults, on the same prompts and seed, so decoding choices are
read side by side. The lines are shuffled (seeded) into ``sheet.txt``, numbered, with
nothing that tells whose a line is; ``key.json`` keeps the source and variant of each line
and the scorer's score, away from the reader.

``report`` reads the marks and prints the share kept of each group (and of each variant),
and how well the model's own scorer agrees with the reader: the area under the ROC curve of
its scores against the marks (0.5: chance), over the model's lines and over all lines.

A reader fills in the sheet with a quote-calendar editor's standard: keep a line only if it
is worth printing as it stands (it makes sense, says something, reads well).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

SAYINGS = 50
PROMPTS = 25
PER_PROMPT = 2
SHEET_SEED = 37


def opening(saying: str, rng: random.Random) -> str:
    """The first two or three words of a saying: the prompt the model continues."""
    words = saying.split()
    return " ".join(words[: rng.choice((2, 3))])


def pick_sayings(modern: list[str], rng: random.Random) -> list[str]:
    """50 real sayings of 5 to 30 words, drawn once by the sheet's seed."""
    usable = [s for s in modern if 5 <= len(s.split()) <= 30]
    return rng.sample(usable, SAYINGS)


SCORER_SAYINGS = 500  # scripts/train-scorer.py: the first 500 of its shuffled validation


def reading_sayings(kind: str, corpus: Path | None) -> list[str]:
    """The held-out sayings a reading draws from (see the module's doc)."""
    held = common.held_out_quotes(corpus)
    if kind == "modern":
        return held["modern"]
    from modelbuild.framing import weight

    usable = [s for s in held["validation"] if 4 <= len(s.split()) <= 30]
    random.Random(0).shuffle(usable)  # the scorer's own draw, to leave its sayings out
    return [s for s in usable[SCORER_SAYINGS:] if weight(s, "") >= 1.0]


def draw(args: argparse.Namespace) -> None:
    import quotegen

    rng = random.Random(SHEET_SEED)
    real = pick_sayings(reading_sayings(args.set, args.corpus), rng)
    prompts = [opening(s, rng) for s in real[:PROMPTS]]
    engine = quotegen.get_model(args.model)
    given: dict[str, object] = {"n": PER_PROMPT, "seed": args.seed}
    if args.best_of is not None:
        given["best_of"] = args.best_of
    variants = {"default": {}} | dict(args.variant)
    lines = [{"text": t, "source": "real"} for t in real]
    chosen = {}
    for name, extra in variants.items():
        settings = engine.settings(given | extra)
        chosen[name] = settings.model_dump(mode="json")
        lines += [
            {"text": r.text, "source": "model", "variant": name}
            for r in engine.generate(prompts, settings)
        ]
        common.log(f"{name}: {len(prompts) * PER_PROMPT} lines")
    scores = engine.score([line["text"] for line in lines])
    for line, score in zip(lines, scores, strict=True):
        line["score"] = round(score, 4)
    rng.shuffle(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    sheet = "".join(f"{i + 1}. {line['text']}\n" for i, line in enumerate(lines))
    (args.out / "sheet.txt").write_text(sheet, "utf-8")
    key = {
        "model": engine.info.name,
        "set": args.set,
        "settings": chosen["default"],
        "variants": chosen,
        "prompts": prompts,
        "lines": lines,
    }
    (args.out / "key.json").write_text(json.dumps(key, indent=1) + "\n", "utf-8")
    common.log(f"sheet: {args.out / 'sheet.txt'} ({len(lines)} lines); key: key.json")


def auc(scores: list[float], kept: list[bool]) -> float | None:
    """The area under the ROC curve: the chance a kept line outscores a dropped one."""
    good = [s for s, k in zip(scores, kept, strict=True) if k]
    bad = [s for s, k in zip(scores, kept, strict=True) if not k]
    if not good or not bad:
        return None
    wins = sum((g > b) + 0.5 * (g == b) for g in good for b in bad)
    return wins / (len(good) * len(bad))


def read_marks(path: Path, count: int) -> list[bool]:
    """``k`` or ``x`` per sheet line (a line may be ``12 k`` or ``12. k``)."""
    marks = []
    for raw in path.read_text("utf-8").splitlines():
        mark = raw.strip().split()[-1].lower() if raw.strip() else ""
        if mark not in ("k", "x"):
            raise SystemExit(f"{path}: '{raw}' is neither k nor x")
        marks.append(mark == "k")
    if len(marks) != count:
        raise SystemExit(f"{path}: {len(marks)} marks for {count} sheet lines")
    return marks


def report(args: argparse.Namespace) -> dict[str, object]:
    key = json.loads((args.out / "key.json").read_text("utf-8"))
    lines = key["lines"]
    kept = read_marks(args.out / "marks.txt", len(lines))
    result: dict[str, object] = {"model": key["model"], "lines": len(lines)}
    for group in ("real", "model"):
        marks = [k for k, line in zip(kept, lines, strict=True) if line["source"] == group]
        result[f"{group}_kept"] = f"{sum(marks)}/{len(marks)}"
        result[f"{group}_share"] = round(sum(marks) / len(marks), 3)
    names = sorted({line["variant"] for line in lines if "variant" in line})
    if len(names) > 1:
        per: dict[str, object] = {}
        for name in names:
            picked = [
                (line, k)
                for line, k in zip(lines, kept, strict=True)
                if line.get("variant") == name
            ]
            share = sum(k for _, k in picked) / len(picked)
            per[name] = {
                "settings": key["variants"][name],
                "kept": f"{sum(k for _, k in picked)}/{len(picked)}",
                "share": round(share, 3),
                "scorer_auc": auc([line["score"] for line, _ in picked], [k for _, k in picked]),
            }
        result["variants"] = per
    model = [(line["score"], k) for line, k in zip(lines, kept, strict=True)]
    mine = [(s, k) for (s, k), line in zip(model, lines, strict=True) if line["source"] == "model"]
    result["scorer_auc_model_lines"] = auc([s for s, _ in mine], [k for _, k in mine])
    result["scorer_auc_all_lines"] = auc([s for s, _ in model], [k for _, k in model])
    print(json.dumps(result, indent=1))
    return result


def variant(text: str) -> tuple[str, dict[str, object]]:
    name, _, settings = text.partition("=")
    try:
        parsed = json.loads(settings)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"{text}: not NAME=JSON ({exc})") from None
    if not name or not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f"{text}: not NAME=JSON object")
    return name, parsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("draw", "report"))
    parser.add_argument(
        "--model", default=None, help="any --model reference (default: the default)"
    )
    parser.add_argument("--best-of", type=int, default=None)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--set", choices=("modern", "sayings"), default="sayings")
    parser.add_argument(
        "--variant",
        type=variant,
        action="append",
        default=[],
        help="NAME=JSON settings over the defaults, read beside them (repeatable)",
    )
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=common.RESULTS / "reading")
    args = parser.parse_args()
    draw(args) if args.step == "draw" else report(args)


if __name__ == "__main__":
    main()
