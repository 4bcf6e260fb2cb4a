"""Local retrieval server (``searchr1-retriever build|serve``): BM25 or dense index over a JSONL corpus.

Runs in its own process and is reached over HTTP only; ``EmbeddedRetriever`` starts one for a run.
"""
