"""``task: sequence-classification``: labelled sentences in, a classifier out, judged by accuracy.

Stages, in order (each module: NAME, DEPENDS, CONFIG, ``run(cfg, ctx) -> metrics``; it writes only into
``ctx.out``, and finds the files of the stages it reads through ``ctx.layout``):

    teacher   load or build the teacher, fine-tune it on the task            student   layers of the teacher, pruned
    distill   soft targets + hard labels (+ hidden states)                    refine    prune and distil again
    baseline  the same student on hard labels only                            trim      keep the task's tokens
    export    ONNX, fused, parity-gated                                       quantize  int8 / fp16 / torch int8 ladder
    mobile    ORT format for ONNX Runtime Mobile                              bench     accuracy, latency, memory
    report    report.json / .md / .html                                       ship      the edge bundle

Hooks: rules.py (what the task refuses at load, its preflight), summary.py (the terminal table), golden.py (the
golden replay of compress verify), sweep.py (a sweep point's figures), compress/reports/accuracy.py and html.py
(report.md and report.html).
"""

from compress.tasks import Task

_HERE = __name__
STAGES = ("teacher", "student", "distill", "refine", "baseline", "trim", "export", "quantize", "mobile", "bench",
          "report", "ship")

TASK = Task(
    name="sequence-classification",
    summary_line="a classifier on labelled sentences, judged by accuracy",
    stages=tuple(f"{_HERE}.{s}" for s in STAGES),
    hooks={
        "rules": f"{_HERE}.rules:refuse",
        "check_models": f"{_HERE}.rules:check_models",
        "check_data": f"{_HERE}.rules:check_data",
        "preflight": f"{_HERE}.rules:preflight",
        "summary": f"{_HERE}.summary:summary",
        "markdown": "compress.reports.accuracy:markdown",
        "html": "compress.reports.html:render_run",
        "sweep_figures": f"{_HERE}.sweep:figures",
        "bundle_check": f"{_HERE}.golden:check_model",
        "golden_tolerance": f"{_HERE}.golden:tolerance",
    },
)
