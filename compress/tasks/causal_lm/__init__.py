"""``task: causal-lm``: plain text in blocks, decoders as teacher and student, judged by perplexity and
generation speed.

Stages, in order (each module: NAME, DEPENDS, CONFIG, ``run(cfg, ctx) -> metrics``):

    teacher   a pretrained decoder (hub id, folder) or a random GPT-2-style one with a BPE tokenizer trained on the
              text, trained or fine-tuned by next-token CE                                       -> teacher/model
    student   layers of the teacher, a smaller config, or a smaller pretrained decoder         -> student/model
    distill   tokenizer preflight, then token-level KD (live teacher) and/or sequence-level KD  -> distill/model
    baseline  the same student on next-token CE only (same text, steps, seed)                  -> baseline/student-ce
    export    ONNX with the KV cache; logits parity at several lengths (with and without the cache), greedy
              tokens equal to PyTorch's generate on held-out prompts                          -> export/<model>/
    quantize  dynamic int8 of the ONNX student, held to a perplexity budget                     -> quantize/<variant>/
    score     zero-shot scores of every variant as papers report them (scores.enabled): WikiText-2 perplexity and
              bits per byte, LAMBADA, HellaSwag, PIQA, ARC-Easy, on the same seeded items  -> score/results.json
    bench     perplexity of every variant on held-out text; time to first token, tokens/s, peak RSS at batch 1
              on each target (fresh process); greedy generations from the same prompts        -> bench/results.json
    report    report.json / report.md                                                          -> runs/<name>/
    ship      the edge bundle: the ONNX decoder, its tokenizer, golden prompts and tokens      -> exports/<name>/

The library of the task: lm.py (load, build, save decoders), text.py (plain text, blocks, prompts), objectives.py
(token-level KD, next-token CE, the teacher's completions), onnxlm.py (export and the ONNX decoder with its cache,
numpy and onnxruntime only), preflight.py (do two tokenizers agree), checks.py (parity and greedy checks),
bundle.py (golden set, model card), worker.py (the timed generation in a fresh process), zeroshot.py (zero-shot
scores as lm-evaluation-harness computes them), llamacpp.py (llama.cpp on a GGUF file, the peer of
benchmarks/llm_speed.py; optional). Hooks: rules.py, summary.py, golden.py, generate.py (compress generate: a
bundle's reply, streamed without torch), sweep.py (a sweep point's figures), and compress/reports/perplexity.py
(report.md).
"""

from compress.tasks import Task

_HERE = __name__
STAGES = ("teacher", "student", "distill", "baseline", "export", "quantize", "score", "bench", "report", "ship")

TASK = Task(
    name="causal-lm",
    summary_line="a decoder on plain text, distilled per token, judged by perplexity and generation speed",
    stages=tuple(f"{_HERE}.{s}" for s in STAGES),
    hooks={
        "rules": f"{_HERE}.rules:refuse",
        "check_models": f"{_HERE}.rules:check_models",
        "check_data": f"{_HERE}.rules:check_data",
        "preflight": f"{_HERE}.rules:preflight",
        "summary": f"{_HERE}.summary:summary",
        "markdown": "compress.reports.perplexity:markdown",
        "sweep_figures": f"{_HERE}.sweep:figures",
        "bundle_check": f"{_HERE}.golden:check_decoder",
        "golden_tolerance": f"{_HERE}.golden:tolerance",
        "generate": f"{_HERE}.generate:stream",
    },
    comparable=False,  # compress compare and the comparison page read classification reports only so far
)
