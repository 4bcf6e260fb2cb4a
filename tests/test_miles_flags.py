"""The recorded Miles flag list and the script that extracts it."""

from __future__ import annotations

import argparse
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
    assert set(sections) == {"miles", "megatron", "sglang", "router"}
    for flags in sections.values():
        assert flags and flags == sorted(flags)
    assert len(miles_flags().flags) > 1000


def test_recorded_list_holds_only_comments_sections_and_flags():
    """Nothing the generator's imports print (their log lines) ends up in the list (issue 25, 27)."""
    strays = [line for line in FLAGS_PATH.read_text().splitlines() if not line.startswith(("#", "[", "--"))]
    assert strays == []
    assert set(miles_flags().commits) == {"miles", "megatron", "router"}


def test_router_flags_miles_always_accepts_are_recorded():
    """Miles adds the SGLang router's RouterArgs to train.py's parser as --router-* (issue 27, item 11)."""
    known = miles_flags()
    assert known.unknown(["--router-policy", "round_robin", "--worker-urls", "http://h:1", "--router-dp-aware"]) == []
    assert {"--router-policy", "--worker-urls"} <= known.sections["router"]
    assert not [flag for flag in known.sections["router"] if not flag.startswith(("--router-", "--worker-urls"))]


def test_unknown_ignores_values_and_equals_forms():
    known = miles_flags()
    assert known.unknown(["--lr", "1e-6", "--lr=2e-6", "-x", "--not-a-miles-flag"]) == ["--not-a-miles-flag"]


# Flags the old static scan picked up from other Miles parsers (tools, routers, dashboards) or from
# prose, all rejected by the parser train.py builds (issue 13, defect 4).
STRAYS = [
    "--assistant-text-threshold",
    "--cache-dir",
    "--config",
    "--custom-agent-function-path",
    "--demo",
    "--follow",
    "--generate-execute-tool-function-path",
    "--generate-max-turns",
    "--generate-tool-call-parser",
    "--generate-tool-specs-path",
    "--host",
    "--low-mfu-threshold",
    "--max-seq-len",
    "--port",
    "--session-verify-cycles",
    "--sglang-cuda-graph-bs",
    "--sglang-cuda-graph-max-bs",
    "--sglang-custom-pull-weights-pre-read-hook",
    "--sglang-dit-precision",
    "--sglang-enable-deepep-moe",
    "--sglang-mamba-scheduler-strategy",
    "--sglang-nsa-decode-backend",
    "--sglang-nsa-prefill-backend",
    "--sglang-path",
    "--sglang-port",
    "--sglang-remote-instance-weight-loader-ib-device",
    "--sglang-router",
    "--sglang-speculative-",
    "--sglang-true-on-policy-contract",
    "--tensor-lru",
    "--tokenizer-name",
    "--tool-call-failure-mode",
    "--use-utilization-overview",
    "--verbose",
    "--help",
]


def test_recorded_list_holds_no_flag_train_py_rejects():
    recorded = miles_flags().flags
    assert [flag for flag in STRAYS if flag in recorded] == []
    assert not [flag for flag in recorded if flag.endswith("-")]  # no truncated names
    # what Miles' provider defines on the same parser: its own flags, SGLang's through its prefixer
    assert {
        "--rollout-batch-size",
        "--no-offload-train",
        "--sglang-mem-fraction-static",
        "--sglang-router-ip",
        "--eval-sglang-mem-fraction-static",
        "--lr",
        "--custom-config-path",
    } <= recorded


def test_extractor_records_the_parser_megatron_and_miles_build_together():
    module = extractor()

    def add_megatron(parser):
        parser.add_argument("--lr", type=float)
        parser.add_argument("--custom-config-path")
        return parser

    def miles_provider(parser):
        import sys

        parser.parse_known_args()  # Miles' provider parses sys.argv for user hooks: must see no argv
        assert sys.argv == ["train.py"]
        parser.add_argument("--rollout-batch-size", type=int, required=True)
        parser.add_argument("--offload-train", action=argparse.BooleanOptionalAction)
        parser.add_argument("--sglang-mem-fraction-static", type=float)
        parser.add_argument("--eval-sglang-dtype")
        parser.add_argument("--router-policy")  # RouterArgs.add_cli_args(use_router_prefix=True, ...)
        parser.add_argument("--worker-urls", nargs="*")
        parser.add_argument("--miles-router-timeout")
        return parser

    assert module.train_parser_flags(add_megatron, miles_provider) == {
        "megatron": {"--lr", "--custom-config-path"},
        "miles": {"--rollout-batch-size", "--offload-train", "--no-offload-train", "--miles-router-timeout"},
        "sglang": {"--sglang-mem-fraction-static", "--eval-sglang-dtype"},
        "router": {"--router-policy", "--worker-urls"},
    }


def test_extractor_stubs_give_argparse_choices_it_can_list():
    """The router's tool-call parser choices come from its compiled extension, a stub here: argparse
    must be able to list them (an endless stub hung the extractor in Miles' usage message)."""
    stub = extractor()._StubModule("sglang_router.sglang_router_rs")
    parser = argparse.ArgumentParser()
    parser.add_argument("--router-tool-call-parser", choices=stub.get_available_tool_call_parsers())
    assert "--router-tool-call-parser" in parser.format_usage()
