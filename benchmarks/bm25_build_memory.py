"""Peak memory of building a BM25 index: our streamed build vs bm25s' in-memory ``index``, side by side.

Each build runs in its own child process over the same corpus; we print its peak anonymous memory
(sampled every 20 ms) above the interpreter's baseline with bm25s imported, its wall time, and the
ratio.
The default corpus is the synthetic one ``retriever_load.py`` generates (``--num-docs`` passages of
30-70 words); pass ``--corpus`` for a real Search-R1 JSONL file.

    python benchmarks/bm25_build_memory.py --num-docs 400000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from retriever_load import synthetic_corpus

from searchr1.paths import cache_root

# Run in a child: import bm25s (the baseline), build, report the peak of anonymous memory (sampled;
# memory-mapped index files are page cache the kernel can drop, so they are not counted) and seconds.
_CHILD = """
import json, sys, threading, time
from pathlib import Path
import bm25s
from searchr1.retriever.bm25_build import bm25_tokenizer, build_bm25
from searchr1.retriever.corpus import Corpus
mode, corpus_path, out_dir = sys.argv[1:]

def anon_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssAnon:"))

peak, done = [anon_kib()], threading.Event()
baseline = peak[0]

def sample():
    while not done.wait(0.02):
        peak[0] = max(peak[0], anon_kib())

threading.Thread(target=sample, daemon=True).start()
started = time.perf_counter()
corpus = Corpus(corpus_path)
if mode == "streamed":
    build_bm25(corpus, Path(out_dir), show_progress=False)
else:
    # What this project did before: every document's token ids in RAM, then bm25s' own index().
    import numpy as np
    tokenizer = bm25_tokenizer()
    ids = []
    for chunk in corpus.iter_contents(50_000, show_progress=False):
        tokens = tokenizer.tokenize(chunk, update_vocab=True, return_as="ids", show_progress=False)
        ids.extend(np.asarray(d, dtype=np.int32) for d in tokens)
    model = bm25s.BM25()
    model.index((ids, tokenizer.get_vocab_dict()), show_progress=False)
    model.save(out_dir, show_progress=False)
seconds = time.perf_counter() - started
done.set()
print(json.dumps({"peak_mib": (max(peak[0], anon_kib()) - baseline) / 1024, "seconds": seconds}))
"""


def measure(mode: str, corpus: Path) -> dict:
    with tempfile.TemporaryDirectory() as out_dir:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, mode, str(corpus), out_dir], check=True, capture_output=True, text=True
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=None, help="Search-R1 JSONL corpus (default: synthetic)")
    parser.add_argument("--num-docs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    corpus = args.corpus or synthetic_corpus(
        cache_root() / "bench" / f"synthetic-{args.num_docs}.jsonl", args.num_docs, args.seed
    )
    print(f"corpus {corpus} ({corpus.stat().st_size / 2**20:.0f} MiB)")
    results = {mode: measure(mode, corpus) for mode in ("streamed", "in-memory")}
    for mode, result in results.items():
        print(
            f"{mode:9s}: peak {result['peak_mib']:8.0f} MiB of anonymous memory above baseline, "
            f"{result['seconds']:6.1f} s"
        )
    ratio = results["in-memory"]["peak_mib"] / max(results["streamed"]["peak_mib"], 1.0)
    print(f"in-memory / streamed peak memory: {ratio:.1f}x")


if __name__ == "__main__":
    main()
