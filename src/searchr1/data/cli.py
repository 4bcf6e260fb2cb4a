"""``searchr1-data``: make the data a run reads.

    searchr1-data synthetic --out DIR [--seed 0] [--num-entities 2000] [--questions lookup|years]
    searchr1-data prepare --source hub|DIR --out DIR
    searchr1-data download --out DIR [--what corpus e5-index]

Errors are one line on stderr with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from searchr1.data.errors import DataError
from searchr1.errors import exit_on_user_error

PROG = "searchr1-data"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Make the data a searchr1 run reads.")
    commands = parser.add_subparsers(dest="command", required=True)

    synthetic = commands.add_parser("synthetic", help="generate the fictional encyclopedia and its questions")
    synthetic.add_argument("--out", type=Path, required=True, help="directory for train/test parquet and corpus")
    synthetic.add_argument("--seed", type=int, default=0, help="generator seed (same seed, same bytes)")
    synthetic.add_argument("--num-entities", type=int, default=2000, help="entities in the encyclopedia")
    synthetic.add_argument(
        "--questions",
        default="lookup",
        help="lookup: 1-hop and 2-hop facts; years: a search, then a subtraction (data.questions)",
    )

    prepare = commands.add_parser("prepare", help="Search-R1's NQ+HotpotQA train and 7-dataset test parquet")
    prepare.add_argument(
        "--source",
        required=True,
        help="'hub' (RUC-NLPIR/FlashRAG_datasets, needs huggingface_hub) or a local copy "
        "of the hub files (DIR/<dataset>/<split>.jsonl)",
    )
    prepare.add_argument("--out", type=Path, required=True, help="directory for train.parquet and test.parquet")
    prepare.add_argument("--revision", default=None, help="hub revision (with --source hub)")

    download = commands.add_parser("download", help="Search-R1's wiki-18 corpus and E5 flat index")
    download.add_argument("--out", type=Path, required=True, help="directory for wiki-18.jsonl and e5_Flat.index")
    download.add_argument(
        "--what",
        nargs="+",
        default=["corpus", "e5-index"],
        choices=["corpus", "e5-index"],
        help="which artifacts to fetch",
    )
    download.add_argument("--endpoint", default=None, help="hub endpoint (default: $HF_ENDPOINT or huggingface.co)")
    return parser


def _synthetic(args: argparse.Namespace) -> str:
    from searchr1.data.synthetic import QUESTION_SETS, generate, write_encyclopedia

    if args.num_entities < 10:
        raise DataError(f"--num-entities={args.num_entities} is too small; allowed: >= 10")
    if args.questions not in QUESTION_SETS:
        raise DataError(f"--questions={args.questions} is unknown; allowed: {', '.join(QUESTION_SETS)}")
    book = generate(args.seed, args.num_entities, args.questions)
    write_encyclopedia(
        book,
        train_path=args.out / "train.parquet",
        test_path=args.out / "test.parquet",
        corpus_path=args.out / "corpus.jsonl",
    )
    return f"{len(book.entities)} passages, {len(book.train)} train and {len(book.test)} test questions in {args.out}"


def _prepare(args: argparse.Namespace) -> str:
    from searchr1.data.prepare import hub_snapshot, prepare

    root = hub_snapshot(revision=args.revision) if args.source == "hub" else Path(args.source)
    counts = prepare(root, args.out)
    return f"{counts['train']} train and {counts['test']} test rows in {args.out}"


def _download(args: argparse.Namespace) -> str:
    from searchr1.data.download import download

    paths = download(args.out, what=args.what, endpoint=args.endpoint)
    return "ready: " + ", ".join(str(p) for p in paths)


_COMMANDS = {"synthetic": _synthetic, "prepare": _prepare, "download": _download}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)  # stderr: errors only
    with exit_on_user_error(PROG):
        summary = _COMMANDS[args.command](args)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
