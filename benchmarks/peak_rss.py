"""Peak RSS of the quickstart (``python -m searchr1``, 2 GRPO steps of SmolLM2-135M with LoRA 16),
with the vocabulary projection in slices (the default) and all at once (``trainer.logprob_chunk_tokens=0``).

Each run is a child of its own small watcher process, which prints ``getrusage(RUSAGE_CHILDREN).ru_maxrss``:
the peak resident set of its biggest descendant (the trainer; the retriever server is far smaller).
The runs go one after the other so they do not compete for the CPU; extra overrides apply to both.

    python benchmarks/peak_rss.py                       # the quickstart as shipped
    python benchmarks/peak_rss.py trainer.steps=1       # any override, both runs
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

# The watcher: run the command, then report the largest child's peak RSS (KiB on Linux) and its exit code.
_WATCHER = """
import json, resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
print(json.dumps({"maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "returncode": code}))
"""

VARIANTS = {
    "default": [],
    "before (unsliced, no checkpointing)": ["trainer.logprob_chunk_tokens=0", "trainer.gradient_checkpointing=false"],
}


def measure(overrides: list[str], run_dir: str) -> dict:
    command = [sys.executable, "-m", "searchr1", *overrides, f"hydra.run.dir={run_dir}"]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _WATCHER, *command], capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["returncode"] != 0:
        sys.exit(f"{' '.join(command)} failed:\n{(done.stdout + done.stderr)[-3000:]}")  # Hydra logs to stdout
    return {"peak_rss_gib": result["maxrss_kib"] / 2**20, "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for both runs")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, extra) in enumerate(VARIANTS.items()):
            results[name] = measure([*args.overrides, *extra], f"{tmp}/run{i}")
            print(
                f"{name:>36}: peak RSS {results[name]['peak_rss_gib']:.2f} GiB, {results[name]['seconds']:.0f} s "
                f"(overrides: {' '.join([*args.overrides, *extra]) or 'none'})",
                flush=True,
            )
    default, before = results.values()
    print(f"ratio before / default: {before['peak_rss_gib'] / default['peak_rss_gib']:.2f}x")


if __name__ == "__main__":
    main()
