"""The recorded Miles flag list and the script that extracts it."""

from __future__ import annotations

import importlib.util

from searchr1.trainers.miles.flags import FLAGS_FILE, miles_flags
from tests.support.compose import REPO

FLAGS_PATH = REPO / "src" / "searchr1" / "trainers" / "miles" / FLAGS_FILE


def extractor():
    spec = importlib.util.spec_from_file_location("extract_miles_flags", REPO / "scripts" / "extract_miles_flags.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recorded_list_has_every_source_section_sorted():
    text = FLAGS_PATH.read_text()
    sections = {}
    current = None
    for line in text.splitlines():
        if line.startswith("["):
            current = line.strip("[]")
            sections[current] = []
        elif line.startswith("--"):
            sections[current].append(line)
    assert set(sections) == {"miles", "megatron", "sglang"}
    for flags in sections.values():
        assert flags and flags == sorted(flags)
    assert len(miles_flags().flags) > 1000


def test_unknown_ignores_values_and_equals_forms():
    known = miles_flags()
    assert known.unknown(["--lr", "1e-6", "--lr=2e-6", "-x", "--not-a-miles-flag"]) == ["--not-a-miles-flag"]


def test_extractor_reads_literal_flags_and_sglang_passthrough(tmp_path):
    module = extractor()
    (tmp_path / "miles" / "sub").mkdir(parents=True)
    (tmp_path / "miles" / "sub" / "args.py").write_text(
        'def add(parser):\n'
        '    parser.add_argument("--alpha", type=int)\n'
        '    reset_arg(parser, "--beta", default=1)\n'
        '    parser.add_argument("--gamma", "--gamma-alias", action="store_true")\n'
        '    other("--not-a-flag")\n')
    (tmp_path / "run.sh").write_text("python3 train.py --sglang-mem-fraction-static 0.7 --lr 1\n")
    assert module.miles_flags(tmp_path) == {"--alpha", "--beta", "--gamma", "--gamma-alias"}
    assert module.sglang_flags_used_by_miles(tmp_path) == {"--sglang-mem-fraction-static"}
