"""Write the bundled MNLI-format sample (GLUE dev TSV columns): generated pairs only, deterministic.

python -m datasets.open_mnli.make_sample [OUT_DIR]
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from datasets.open_squad.make_sample import ADJECTIVES, NOUNS, SEASONS, proper

SEED = 2222
ROWS = 40
OUT = Path(__file__).resolve().parent / "sample"
GENRES = {
    "dev_matched": ("fiction", "government", "slate", "telephone", "travel"),
    "dev_mismatched": ("facetoface", "letters", "nineeleven", "oup", "verbatim"),
}
HEADER = (
    "index",
    "promptID",
    "pairID",
    "genre",
    "sentence1_binary_parse",
    "sentence2_binary_parse",
    "sentence1_parse",
    "sentence2_parse",
    "sentence1",
    "sentence2",
    "label1",
    "label2",
    "label3",
    "label4",
    "label5",
    "gold_label",
)
LABELS = ("entailment", "neutral", "contradiction")
THINGS = ("bread", "tools", "paint", "books", "lamps", "apples")


def premise_and_hypotheses(rng: random.Random) -> tuple[str, dict[str, str]]:
    name, noun, adj = proper(rng), rng.choice(NOUNS), rng.choice(ADJECTIVES)
    thing, season, n = rng.choice(THINGS), rng.choice(SEASONS), rng.randint(2, 9)
    choices = [
        (
            f"{name} walked to the {adj} {noun} early one {season} morning to buy {thing}.",
            {
                "entailment": f"{name} went to the {noun}.",
                "neutral": f"{name} went to the {noun} with a friend.",
                "contradiction": f"{name} stayed at home all {season}.",
            },
        ),
        (
            f"The council spent {n} thousand dollars on new {thing} for the {noun} last year.",
            {
                "entailment": f"The council spent money on {thing}.",
                "neutral": "The council plans to spend more next year.",
                "contradiction": "The council spent nothing last year.",
            },
        ),
        (
            f"We talked on the phone for {n} hours about the {adj} {noun}.",
            {
                "entailment": f"We discussed the {noun}.",
                "neutral": f"We agreed that the {noun} should be rebuilt.",
                "contradiction": f"We never talked about the {noun}.",
            },
        ),
        (
            f"The old {noun} near the river was rebuilt after the flood in the {season} of {1900 + 7 * n}.",
            {
                "entailment": f"The {noun} was rebuilt.",
                "neutral": f"The rebuilding took {n} years.",
                "contradiction": f"The {noun} was never damaged.",
            },
        ),
    ]
    return rng.choice(choices)


def parses(sentence: str) -> tuple[str, str]:
    """Crude right-branching binary parse and flat constituency parse (the columns exist in GLUE)."""
    words = sentence.rstrip(".").split() + ["."]
    binary = words[-1]
    for word in reversed(words[:-1]):
        binary = f"( {word} {binary} )"
    flat = "(ROOT (S " + " ".join(f"(X {w})" for w in words) + "))"
    return binary, flat


def rows(split: str, rng: random.Random) -> list[list[str]]:
    out = []
    for i in range(ROWS):
        prompt_id = str(rng.randint(10000, 99999))
        premise, hypotheses = premise_and_hypotheses(rng)
        gold = rng.choice(LABELS)
        annotators = [gold] + [gold if rng.random() < 0.8 else rng.choice(LABELS) for _ in range(4)]
        (b1, p1), (b2, p2) = parses(premise), parses(hypotheses[gold])
        out.append(
            [
                str(i),
                prompt_id,
                f"{prompt_id}{gold[0]}",
                rng.choice(GENRES[split]),
                b1,
                b2,
                p1,
                p2,
                premise,
                hypotheses[gold],
                *annotators,
                gold,
            ]
        )
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else OUT
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    for split in GENRES:
        lines = ["\t".join(HEADER)] + ["\t".join(row) for row in rows(split, rng)]
        (out / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
