"""Write the bundled SQuAD-format sample: generated text only (no copyrighted passages), deterministic.

    python -m datasets.open_squad.make_sample [OUT.json]

Context lengths spread like SQuAD dev (most 60-180 words, a couple short, two long enough to need
several 384-token features); every answer is a span of its context, with answer_start set.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path

SEED = 1111
OUT = Path(__file__).resolve().parent / "sample" / "dev-sample.json"
# Target words per context and questions per context: 12 contexts, 40 questions. Question-weighted
# mean about 140 words, near dev-v1.1's; the two long contexts (few questions, as in dev) need 2-3 features.
WORDS = (38, 62, 80, 94, 105, 115, 126, 138, 152, 180, 330, 470)
QUESTIONS = (3, 3, 4, 4, 4, 4, 4, 3, 3, 4, 2, 2)

SYLLABLES = (
    "var",
    "len",
    "tor",
    "mi",
    "sa",
    "bel",
    "dun",
    "ka",
    "ro",
    "wen",
    "ash",
    "fel",
    "gar",
    "lo",
    "ni",
    "quen",
    "sol",
    "tam",
    "ur",
    "vy",
    "pel",
    "dra",
    "mon",
    "est",
    "hal",
    "bri",
    "cor",
    "thi",
)
GROUPS = (
    "fishermen from the eastern islands",
    "wool traders from the southern valleys",
    "monks from a distant abbey",
    "miners from the northern hills",
    "farmers from the river plain",
)
PRODUCTS = ("blue glass", "salted fish", "woven carpets", "copper bells", "pear brandy", "painted tiles")
SEASONS = ("spring", "summer", "autumn", "winter")
ADJECTIVES = (
    "quiet",
    "narrow",
    "busy",
    "ancient",
    "green",
    "windy",
    "crowded",
    "famous",
    "small",
    "wide",
    "steep",
    "bright",
    "old",
    "new",
    "colourful",
    "shaded",
)
NOUNS = (
    "market",
    "harbour",
    "bridge",
    "square",
    "garden",
    "library",
    "road",
    "hill",
    "chapel",
    "museum",
    "mill",
    "orchard",
    "station",
    "canal",
    "theatre",
    "park",
)
VERBS = ("attracts", "overlooks", "connects", "surrounds", "faces", "borders", "shelters", "joins")
TAILS = (
    "",
    ", and many visitors walk there during the {season} months",
    " near the edge of the old town",
    ", which was repaired several times over the years",
    ", where local families gather on weekend evenings",
    " and is often mentioned in travel guides",
)


def proper(rng: random.Random, parts: int = 2) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()


def filler(rng: random.Random) -> str:
    tail = rng.choice(TAILS).format(season=rng.choice(SEASONS))
    return (
        f"The {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {rng.choice(VERBS)} the "
        f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}{tail}."
    )


def facts(rng: random.Random, town: str) -> list[tuple[str, list[tuple[str, list[str]]]]]:
    """(sentence, [(question, [gold answers, each a substring of the sentence])]) about one town."""
    year, year2, y1 = rng.randint(1100, 1700), rng.randint(1800, 1900), rng.randint(1901, 1950)
    y2, y3 = y1 + rng.randint(3, 12), rng.randint(1951, 2010)
    group, product = rng.choice(GROUPS), rng.choice(PRODUCTS)
    people = f"{rng.randint(2, 90)},{rng.randint(100, 999)}"
    place, architect, mayor = proper(rng, 3), f"{proper(rng)} {proper(rng)}", f"{proper(rng)} {proper(rng, 3)}"
    river, sea, tower, fest, school = proper(rng), proper(rng), proper(rng), proper(rng, 3), proper(rng)
    season, days = rng.choice(SEASONS), rng.choice(("three", "four", "five", "nine"))
    pupils = rng.randint(120, 900)
    return [
        (
            f"{town} was founded in {year} by {group}.",
            [
                (f"When was {town} founded?", [str(year), f"in {year}"]),
                (f"Who founded {town}?", [group, group.split(" from ")[0]]),
            ],
        ),
        (
            f"By {year2}, the population of {town} had grown to {people} people.",
            [(f"How many people lived in {town} by {year2}?", [people, f"{people} people"])],
        ),
        (
            f"{town} is best known for its {product}, most of which is shipped to {place}.",
            [
                (f"What is {town} best known for?", [f"its {product}", product]),
                (f"Where is most of the {product} from {town} shipped?", [place]),
            ],
        ),
        (
            f"The tallest building in {town} is the {tower} Tower, designed by the architect {architect}.",
            [(f"Who designed the {tower} Tower?", [architect, f"the architect {architect}"])],
        ),
        (
            f"{mayor} served as mayor of {town} from {y1} to {y2}.",
            [
                (f"Who was mayor of {town} from {y1} to {y2}?", [mayor]),
                (f"Until what year did {mayor} serve as mayor?", [str(y2), f"to {y2}"]),
            ],
        ),
        (
            f"The {river} River flows through {town} on its way to the {sea} Sea.",
            [(f"Which river flows through {town}?", [f"The {river} River", f"{river} River", river])],
        ),
        (
            f"Every {season}, the town holds a festival called {fest}, which lasts {days} days.",
            [
                (f"How long does {fest} last?", [f"{days} days", days]),
                (f"What is the festival held every {season} in {town} called?", [fest]),
            ],
        ),
        (
            f"The local school, {school} Academy, was opened in {y3} and teaches about {pupils} students.",
            [
                (f"When was {school} Academy opened?", [str(y3), f"in {y3}"]),
                (f"How many students does {school} Academy teach?", [f"about {pupils}", str(pupils)]),
            ],
        ),
    ]


def paragraph(rng: random.Random, town: str, words: int, n_questions: int) -> dict:
    chosen, questions = [], 0
    for sentence, qas in rng.sample(facts(rng, town), 8):
        if questions >= n_questions:
            break
        qas = qas[: n_questions - questions]
        chosen.append((sentence, qas))
        questions += len(qas)
    sentences = [filler(rng) for _ in range(max(1, words // 13 - len(chosen)))]
    # Spread the facts over the paragraph, so long contexts have answers in later features too.
    for k, fact in enumerate(chosen):
        sentences.insert(round(k * len(sentences) / len(chosen)) + k, fact)
    context, qas_out = "", []
    for item in sentences:
        sentence = item if isinstance(item, str) else item[0]
        start = len(context) + (1 if context else 0)
        context = f"{context} {sentence}" if context else sentence
        if isinstance(item, str):
            continue
        for question, answers in item[1]:
            qid = hashlib.sha256(f"{SEED}/{town}/{question}".encode()).hexdigest()[:24]
            golds = []
            for text in answers:
                at = sentence.rindex(text)  # the last match: numbers may also occur inside earlier years
                assert context[start + at : start + at + len(text)] == text
                golds.append({"answer_start": start + at, "text": text})
            qas_out.append({"answers": golds, "question": question, "id": qid})
    return {"context": context, "qas": qas_out}


def build(seed: int = SEED) -> dict:
    rng = random.Random(seed)
    data, towns = [], [proper(rng, 2) for _ in range(len(WORDS))]
    for a in range(0, len(WORDS), 2):
        paragraphs = [paragraph(rng, towns[i], WORDS[i], QUESTIONS[i]) for i in (a, a + 1)]
        data.append({"title": f"{towns[a]}_and_{towns[a + 1]}", "paragraphs": paragraphs})
    return {"version": "1.1", "data": data}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(build(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
