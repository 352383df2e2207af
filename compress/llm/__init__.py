"""Causal language models (``task: causal-lm``): plain text in blocks, decoders as teacher and student,
token-level and sequence-level distillation, ONNX export with the KV cache, perplexity and generation
benchmarks. The stages of compress.stages call :mod:`compress.llm.stages` for this task."""
