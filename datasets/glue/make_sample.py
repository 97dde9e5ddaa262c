"""Write the bundled GLUE samples: generated rows (no GLUE text) in each task's real dev.tsv layout,
awkward rows included (CoLA without a header, quote characters kept unquoted, a QQP row missing fields).

    python -m datasets.glue.make_sample [ROOT]     # ROOT/<dataset>/sample/dev.tsv (default datasets/)
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from datasets.open_squad.make_sample import ADJECTIVES, NOUNS, SEASONS, proper

SEED = 3333
ROWS = 24
ROOT = Path(__file__).resolve().parent.parent


def sentence(rng: random.Random) -> str:
    name, noun, adj, season = proper(rng), rng.choice(NOUNS), rng.choice(ADJECTIVES), rng.choice(SEASONS)
    forms = (
        f"{name} walked to the {adj} {noun} one {season} morning.",
        f'The "{adj}" {noun} near {name}\'s house was closed all {season}.',
        f"In {season}, {name} said the {noun} looked {adj}.",
    )
    return rng.choice(forms)


def cola(rng: random.Random) -> list[str]:
    rows = []
    for i in range(ROWS):
        good = i % 3 != 0
        text = sentence(rng) if good else " ".join(reversed(sentence(rng).split()))
        rows.append("\t".join((f"src_{i % 4}", "1" if good else "0", "" if good else "*", text)))
    return rows  # CoLA's dev.tsv has no header


def sst2(rng: random.Random) -> list[str]:
    rows = ["sentence\tlabel"]
    for i in range(ROWS):
        text = f"{sentence(rng)} {'a lovely' if i % 2 else 'a dull'} film ."
        rows.append(f"{text}\t{i % 2}")
    return rows


def mrpc(rng: random.Random) -> list[str]:
    rows = ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
    for i in range(ROWS):
        first = sentence(rng)
        second = first.replace("walked", "went") if i % 2 else sentence(rng)
        rows.append("\t".join((str(i % 2), str(1000 + i), str(2000 + i), first, second)))
    return rows


def stsb(rng: random.Random) -> list[str]:
    rows = ["index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"]
    for i in range(ROWS):
        first, second = sentence(rng), sentence(rng)
        rows.append(
            "\t".join(
                (str(i), "main-news", "news", "2016", str(i), "none", "none", first, second, f"{(i * 0.37) % 5:.3f}")
            )
        )
    return rows


def qqp(rng: random.Random) -> list[str]:
    rows = ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"]
    for i in range(ROWS):
        question = f"Why did {proper(rng)} visit the {rng.choice(NOUNS)}?"
        other = question.replace("visit", "go to") if i % 2 else f"How big is the {rng.choice(NOUNS)}?"
        rows.append("\t".join((str(i), str(2 * i), str(2 * i + 1), question, other, str(i % 2))))
    rows.insert(7, f"{ROWS}\t{2 * ROWS}\t{2 * ROWS + 1}\tWhat is a question without its pair?")  # missing fields
    return rows


def pair_task(header: str, labels: tuple[str, str]):
    def rows_of(rng: random.Random) -> list[str]:
        rows = [header]
        for i in range(ROWS):
            first = sentence(rng)
            second = first.split(" one ")[0] + "." if i % 2 else sentence(rng)
            rows.append("\t".join((str(i), first, second, labels[i % 2])))
        return rows

    return rows_of


WRITERS = {
    "open_cola": cola,
    "open_sst2": sst2,
    "open_mrpc": mrpc,
    "open_stsb": stsb,
    "open_qqp": qqp,
    "open_qnli": pair_task("index\tquestion\tsentence\tlabel", ("not_entailment", "entailment")),
    "open_rte": pair_task("index\tsentence1\tsentence2\tlabel", ("not_entailment", "entailment")),
}


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else ROOT
    for offset, (dataset, writer) in enumerate(WRITERS.items()):
        out = root / dataset / "sample" / "dev.tsv"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(writer(random.Random(SEED + offset))) + "\n", encoding="utf-8")
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
