"""A generated encyclopedia of fictional entities, so the default run needs no download.

Every fact is invented (names are built from random syllables, every name word is unique), so a
model cannot answer from memory: it has to search. Each entity gets one Wikipedia-style passage
whose title is its name, and questions are asked about one entity by name, which keeps them
answerable with BM25 over the corpus:

- single-hop (NQ-like): "In which city was Dravo Kelmin born?";
- two-hop (HotpotQA-like): "In which city was the founder of Velmora Dynamics born?", where the
  first passage names the bridge entity and the second holds the answer.

Those are the ``lookup`` questions (the default). The ``years`` questions (``data.questions=years``) ask
about the same book for a search and then arithmetic: "How many years passed between the founding of
Velmora Dynamics and 2026?" (the passage gives 1834, the answer is 192).

Answers are short spans (a name, a city, a year). Everything comes from one ``random.Random(seed)``
and ordered containers only, so one seed gives the same bytes on every machine.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from searchr1.data.dataset import make_row, write_split
from searchr1.data.files import atomic_dir

TEST_FRACTION = 0.1
"""Share of the questions held out as the test split."""
SINGLE_HOP_SOURCE = "synthetic_1hop"
TWO_HOP_SOURCE = "synthetic_2hop"
YEARS_SOURCE = "synthetic_years"
REFERENCE_YEAR = 2026
"""The year every ``years`` question counts to."""

# Simple consonant-vowel syllables keep invented names pronounceable and short in tokens.
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "st", "th", "sh")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ai", "ou")
_CODAS = ("", "", "", "", "n", "r", "l", "s", "th", "m", "x", "nd")

_CITY_SUFFIXES = ("port", "holm", "vale", "grad", "mere", "stead", "burg", "ford", "wick", "")
_COUNTRY_SUFFIXES = ("ia", "and", "istan", "ora", "ene")
_COMPANY_SUFFIXES = ("Industries", "Dynamics", "Works", "Labs", "Holdings", "Systems", "Trading Company")
_DEVICES = (
    "engine",
    "loom",
    "lens",
    "valve",
    "compass",
    "press",
    "turbine",
    "lamp",
    "pump",
    "clock",
    "sextant",
    "telegraph",
    "kiln",
    "furnace",
    "rangefinder",
)
_OCCUPATIONS = (
    "painter",
    "chemist",
    "architect",
    "novelist",
    "engineer",
    "composer",
    "astronomer",
    "physician",
    "sculptor",
    "cartographer",
    "economist",
    "botanist",
    "poet",
    "mathematician",
)
_PERSON_NOTES = (
    "is remembered for a long series of public lectures",
    "spent most of a long career teaching at a provincial academy",
    "published several widely read essays on method",
    "travelled widely and kept detailed journals",
    "received a national medal late in life",
    "trained a generation of apprentices",
)
_CITY_NOTES = (
    "its covered markets",
    "an old harbour",
    "its stone bridges",
    "a large textile industry",
    "a famous spring festival",
    "its university",
    "a cathedral with twin towers",
)
_INDUSTRIES = (
    "shipping",
    "textile",
    "mining",
    "railway",
    "glassmaking",
    "chemical",
    "publishing",
    "brewing",
    "instrument-making",
    "steel",
)
_ECONOMIES = ("fishing", "mining", "agriculture", "trade", "forestry", "manufacturing")


@dataclass(frozen=True)
class Entity:
    """One encyclopedia entry: a kind, a unique name and its facts (entity facts hold names)."""

    kind: str
    name: str
    facts: dict[str, str | int] = field(default_factory=dict)


@dataclass(frozen=True)
class Calculation:
    """The arithmetic a question's answer takes, over a fact its last search finds."""

    fact: str
    """The value the last passage gives, e.g. "1834"."""
    expression: str
    """What a calculator is asked, e.g. "2026 - 1834"; its result is the answer."""


@dataclass(frozen=True)
class Question:
    """A generated question, with what an oracle would search at each hop (and compute after)."""

    text: str
    answers: list[str]
    data_source: str
    relation: str
    """Relation path, e.g. "company.founder>person.birthplace"."""
    hop_queries: tuple[str, ...]
    """Entity names whose passages hold the facts, in hop order."""
    calculation: Optional[Calculation] = None
    """None: the answer is read off the last passage; else computed from what it says."""


@dataclass(frozen=True)
class Encyclopedia:
    """The generated world: entities in corpus order, and the questions of each split."""

    entities: list[Entity]
    train: list[Question]
    test: list[Question]

    def corpus_lines(self) -> list[str]:
        return [
            json.dumps({"id": str(i), "contents": f'"{e.name}"\n{render_passage(e)}'})
            for i, e in enumerate(self.entities)
        ]


# --------------------------------------------------------------------------- names
class _Namer:
    """Invented name words, each used once across the whole encyclopedia (so BM25 finds its entry)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        # Membership only; never iterated, so hash order cannot leak.
        self.used: set[str] = set()
        self.prefixes: set[str] = set()  # every leading part of a used word

    def word(self, suffix: str = "", syllables: tuple[int, int] = (2, 3)) -> str:
        while True:
            count = self.rng.randint(*syllables)
            stem = "".join(self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) for _ in range(count))
            stem += self.rng.choice(_CODAS)
            word = (stem + suffix).capitalize()
            if 4 <= len(word) <= 14 and self._fresh(word.lower()):
                self.used.add(word.lower())
                self.prefixes.update(word.lower()[:i] for i in range(1, len(word)))
                return word

    def _fresh(self, word: str) -> bool:
        # No name may start another ("Thoul" and "Thoulex"): a question naming one would hold the
        # other, and so could hand the model its answer.
        return (
            word not in self.used
            and word not in self.prefixes
            and not any(word[:i] in self.used for i in range(1, len(word)))
        )


def _counts(n: int) -> dict[str, int]:
    counts = {
        "country": max(2, n // 50),
        "river": max(1, n // 20),
        "company": max(1, 3 * n // 20),
        "invention": max(1, n // 8),
    }
    counts["city"] = max(counts["country"], 3 * n // 20)
    counts["person"] = n - sum(counts.values())
    return counts


# --------------------------------------------------------------------------- entities
def _entities(rng: random.Random, n: int) -> list[Entity]:
    counts = _counts(n)
    namer = _Namer(rng)

    countries = [
        Entity(
            "country",
            namer.word(rng.choice(_COUNTRY_SUFFIXES), (1, 2)),
            {"independence": rng.randint(1650, 1960), "economy": rng.choice(_ECONOMIES)},
        )
        for _ in range(counts["country"])
    ]
    rivers = [
        Entity(
            "river",
            namer.word(syllables=(1, 2)),
            {"source": rng.choice(countries).name, "length": rng.randint(40, 2400)},
        )
        for _ in range(counts["river"])
    ]
    cities = []
    for i in range(counts["city"]):
        # The first cities go one per country, and each becomes that country's capital.
        country = countries[i] if i < len(countries) else rng.choice(countries)
        cities.append(
            Entity(
                "city",
                namer.word(rng.choice(_CITY_SUFFIXES), (1, 2)),
                {
                    "country": country.name,
                    "river": rng.choice(rivers).name,
                    "founded": rng.randint(800, 1850),
                    "note": rng.choice(_CITY_NOTES),
                },
            )
        )
        if i < len(countries):
            country.facts["capital"] = cities[-1].name
    people = [
        Entity(
            "person",
            f"{namer.word(syllables=(1, 2))} {namer.word()}",
            {
                "birthplace": rng.choice(cities).name,
                "born": rng.randint(1700, 1990),
                "occupation": rng.choice(_OCCUPATIONS),
                "note": rng.choice(_PERSON_NOTES),
            },
        )
        for _ in range(counts["person"])
    ]
    # Founding and invention happen in the founder's or inventor's adult life.
    companies = []
    for _ in range(counts["company"]):
        founder = rng.choice(people)
        companies.append(
            Entity(
                "company",
                f"{namer.word()} {rng.choice(_COMPANY_SUFFIXES)}",
                {
                    "founder": founder.name,
                    "headquarters": rng.choice(cities).name,
                    "founded": int(founder.facts["born"]) + rng.randint(20, 60),
                    "industry": rng.choice(_INDUSTRIES),
                },
            )
        )
    inventions = []
    for _ in range(counts["invention"]):
        inventor = rng.choice(people)
        inventions.append(
            Entity(
                "invention",
                f"{namer.word()} {rng.choice(_DEVICES)}",
                {"inventor": inventor.name, "year": int(inventor.facts["born"]) + rng.randint(18, 70)},
            )
        )
    entities = countries + rivers + cities + people + companies + inventions
    rng.shuffle(entities)  # interleave kinds so corpus ids say nothing about the kind
    return entities


def _a(word: object) -> str:
    word = str(word)
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def render_passage(e: Entity) -> str:
    """The passage text (without the quoted title line) of one entity."""
    f = e.facts
    if e.kind == "country":
        return (
            f"{e.name} is a country whose capital is {f['capital']}. {e.name} declared independence in "
            f"{f['independence']}. Its economy is based mainly on {f['economy']}."
        )
    if e.kind == "river":
        return (
            f"The {e.name} River is a river that rises in {f['source']}. It is {f['length']} kilometres "
            f"long and is navigable for part of its course."
        )
    if e.kind == "city":
        return (
            f"{e.name} is a city in {f['country']}. It was founded in {f['founded']} on the banks of the "
            f"{f['river']} River. {e.name} is known for {f['note']}."
        )
    if e.kind == "person":
        surname = e.name.split()[-1]
        return (
            f"{e.name} (born {f['born']}) is {_a(f['occupation'])}. {e.name} was born in {f['birthplace']} "
            f"in {f['born']}. As {_a(f['occupation'])}, {surname} {f['note']}."
        )
    if e.kind == "company":
        return (
            f"{e.name} is {_a(f['industry'])} company headquartered in {f['headquarters']}. It was founded "
            f"in {f['founded']} by {f['founder']}. {e.name} grew into one of the best known "
            f"{f['industry']} firms of its region."
        )
    return (
        f"The {e.name} is a device invented by {f['inventor']} in {f['year']}. The {e.name} was widely "
        f"copied in the decades after its invention."
    )


# --------------------------------------------------------------------------- questions
def _answers(kind: str, value: str | int) -> list[str]:
    # Rivers are named "X River" in the text; accept both the full name and the bare one.
    return [f"{value} River", str(value)] if kind == "river" else [str(value)]


# (subject kind, relation, answer kind, question template) for one-hop facts.
_SINGLE: tuple[tuple[str, str, str, str], ...] = (
    ("person", "birthplace", "city", "In which city was {s} born?"),
    ("person", "born", "year", "In what year was {s} born?"),
    ("city", "country", "country", "In which country is the city of {s}?"),
    ("city", "river", "river", "Which river flows through {s}?"),
    ("city", "founded", "year", "In what year was {s} founded?"),
    ("country", "capital", "city", "What is the capital of {s}?"),
    ("country", "independence", "year", "In what year did {s} declare independence?"),
    ("river", "source", "country", "In which country does the {s} River rise?"),
    ("company", "founder", "person", "Who founded {s}?"),
    ("company", "headquarters", "city", "In which city is {s} headquartered?"),
    ("company", "founded", "year", "In what year was {s} founded?"),
    ("invention", "inventor", "person", "Who invented the {s}?"),
    ("invention", "year", "year", "In what year was the {s} invented?"),
)
# (subject kind, first relation, second relation, answer kind, template): the first relation's
# value is the bridge entity, whose own passage holds the answer.
_TWO_HOP: tuple[tuple[str, str, str, str, str], ...] = (
    ("company", "founder", "birthplace", "city", "In which city was the founder of {s} born?"),
    ("company", "founder", "born", "year", "In what year was the founder of {s} born?"),
    ("company", "headquarters", "country", "country", "In which country is {s} headquartered?"),
    ("invention", "inventor", "birthplace", "city", "In which city was the inventor of the {s} born?"),
    ("invention", "inventor", "born", "year", "In what year was the inventor of the {s} born?"),
    ("person", "birthplace", "country", "country", "In which country was {s} born?"),
    ("person", "birthplace", "river", "river", "Which river flows through the city where {s} was born?"),
    ("city", "country", "capital", "city", "What is the capital of the country that {s} is in?"),
)


def _questions(entities: list[Entity]) -> list[Question]:
    by_name = {e.name: e for e in entities}
    questions = []
    for e in entities:
        for kind, rel, answer_kind, template in _SINGLE:
            if e.kind == kind:
                questions.append(
                    Question(
                        template.format(s=e.name),
                        _answers(answer_kind, e.facts[rel]),
                        SINGLE_HOP_SOURCE,
                        f"{kind}.{rel}",
                        (e.name,),
                    )
                )
        for kind, rel1, rel2, answer_kind, template in _TWO_HOP:
            if e.kind == kind:
                bridge = by_name[str(e.facts[rel1])]
                if bridge.facts[rel2] == e.name:
                    continue  # e.g. the capital of a capital's country: the question would give it away
                questions.append(
                    Question(
                        template.format(s=e.name),
                        _answers(answer_kind, bridge.facts[rel2]),
                        TWO_HOP_SOURCE,
                        f"{kind}.{rel1}>{bridge.kind}.{rel2}",
                        (e.name, bridge.name),
                    )
                )
    return questions


# (subject kind, year relation, template): how many years from an event of the book to REFERENCE_YEAR.
_YEARS: tuple[tuple[str, str, str], ...] = (
    ("person", "born", "How many years passed between the birth of {s} and {year}?"),
    ("city", "founded", "How many years passed between the founding of {s} and {year}?"),
    ("country", "independence", "How many years passed between the independence of {s} and {year}?"),
    ("company", "founded", "How many years passed between the founding of {s} and {year}?"),
    ("invention", "year", "How many years passed between the invention of the {s} and {year}?"),
)


def _year_questions(entities: list[Entity]) -> list[Question]:
    """One question per dated entity: its passage gives the year, a subtraction gives the answer (numbers a
    small model does not get right in its head). Events after REFERENCE_YEAR (some companies and inventions
    of people born late) are not asked about."""
    questions = []
    for e in entities:
        for kind, rel, template in _YEARS:
            if e.kind == kind and int(e.facts[rel]) <= REFERENCE_YEAR:
                year = int(e.facts[rel])
                questions.append(
                    Question(
                        template.format(s=e.name, year=REFERENCE_YEAR),
                        [str(REFERENCE_YEAR - year)],
                        YEARS_SOURCE,
                        f"{kind}.{rel}",
                        (e.name,),
                        Calculation(str(year), f"{REFERENCE_YEAR} - {year}"),
                    )
                )
    return questions


QUESTION_SETS: dict[str, Callable[[list[Entity]], list[Question]]] = {
    "lookup": _questions,
    "years": _year_questions,
}
"""``data.questions``: which questions the book asks about its entities."""


def generate(seed: int, num_entities: int, questions: str = "lookup") -> Encyclopedia:
    """Build the encyclopedia and its train/test questions; pure and deterministic in (seed, n, questions).

    The entities (and so the corpus) are the same for every question set."""
    if num_entities < 10:
        raise ValueError(f"num_entities={num_entities} is too small; allowed: >= 10")
    if questions not in QUESTION_SETS:
        raise ValueError(f"questions={questions!r} is unknown; allowed: {', '.join(QUESTION_SETS)}")
    rng = random.Random(seed)
    entities = _entities(rng, num_entities)
    questions_asked = QUESTION_SETS[questions](entities)
    rng.shuffle(questions_asked)
    n_test = max(1, round(len(questions_asked) * TEST_FRACTION))
    return Encyclopedia(entities=entities, train=questions_asked[n_test:], test=questions_asked[:n_test])


# --------------------------------------------------------------------------- files
def _rows(questions: list[Question], split: str) -> list[dict]:
    return [
        make_row(
            row_id=f"{split}_{i}",
            question=q.text,
            golden_answers=q.answers,
            data_source=q.data_source,
            split=split,
            index=i,
        )
        for i, q in enumerate(questions)
    ]


def write_encyclopedia(book: Encyclopedia, *, train_path: Path, test_path: Path, corpus_path: Path) -> None:
    """Write the corpus JSONL and both parquet splits, which share one dir, as a set: into a temporary dir
    first, moved into place once all three are complete (``atomic_dir``)."""
    directory = {Path(path).absolute().parent for path in (train_path, test_path, corpus_path)}
    if len(directory) != 1:
        raise ValueError(f"a synthetic set is written into one dir, not {sorted(map(str, directory))}")
    with atomic_dir(directory.pop()) as tmp:
        (tmp / Path(corpus_path).name).write_bytes(("\n".join(book.corpus_lines()) + "\n").encode())
        write_split(_rows(book.test, "test"), tmp / Path(test_path).name)
        write_split(_rows(book.train, "train"), tmp / Path(train_path).name)
