"""The mistakes tests/reliability/test_load_refusals.py makes in every shipped pipeline they apply to: data only (no
compress import), so the same table can be replayed against another checkout of compress.

Each case: (kind, pipeline name, overrides, the text its one error line must hold). Overrides and texts may name
``{tmp}``, ``{afile}`` (an existing file) and ``{site}`` (a folder on sys.path holding packages), which
:func:`prepare` makes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

CLASSIFIERS = ["tiny", "distilbert", "distilbert-sweep"]
DECODERS = ["tiny-lm", "shakespeare", "gpt2-distilgpt2", "smollm2", "smollm2-gpu", "smollm2-sweep"]
EVERY = CLASSIFIERS + DECODERS
LOCAL_TEACHER = ["tiny", "tiny-lm", "shakespeare", "distilbert", "distilbert-sweep", "smollm2", "smollm2-gpu",
                 "smollm2-sweep"]  # teachers whose config is here: a random architecture, a package, a GGUF file
ZW = "\u200b"  # zero-width space
CYRILLIC_A = "\u0430"  # looks like a Latin a

# A tiny BERT / GPT-2 model folder's config.json (the weights are what the cases spoil).
BERT = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2,
        "intermediate_size": 64, "vocab_size": 120, "max_position_embeddings": 512}
GPT2 = {"model_type": "gpt2", "n_embd": 32, "n_layer": 4, "n_head": 2, "vocab_size": 120, "n_positions": 1024}
RANDOM_TEACHER = ["teacher.architecture=null"]


def _cases() -> list[tuple[str, str, list[str], str]]:
    c: list[tuple[str, str, list[str], str]] = []

    def add(kind, pipelines, overrides, expected):
        for p in pipelines:
            c.append((kind, p, list(overrides), expected))

    # an architecture transformers refuses
    add("arch-heads", ["tiny"], ["teacher.architecture.num_attention_heads=3"], "teacher.architecture: transformers refuses")
    add("arch-heads", ["tiny-lm"], ["teacher.architecture.n_head=3"], "teacher.architecture: transformers refuses")
    add("arch-heads", ["shakespeare"], ["teacher.architecture.n_head=3"], "teacher.architecture: transformers refuses")
    add("arch-type", ["tiny"], ["teacher.architecture.model_type=bertt"], "teacher.architecture.model_type: 'bertt'")
    add("arch-type", ["tiny-lm", "shakespeare"], ["teacher.architecture.model_type=gpt3"],
        "teacher.architecture.model_type: 'gpt3'")
    add("arch-type", ["tiny-lm"], ["teacher.architecture.model_type=bert"], "teacher.architecture.model_type: 'bert'")
    add("student-config", ["tiny", "tiny-lm"], ["student.method=config", "student.layers=null",
                                                "student.num_attention_heads=3"],
        "student.num_attention_heads: transformers refuses")
    add("student-config", ["distilbert"], ["student.method=config", "student.layers=null", "student.hidden_size=100"],
        "student.hidden_size: transformers refuses")
    # student or refine sizes the teacher does not have
    add("student-layers", ["tiny"], ["student.layers=[0,7]"], "student.layers: [7] out of range")
    add("student-layers", ["tiny-lm"], ["student.layers=[0,9]"], "student.layers: [9] out of range")
    add("student-layers", ["shakespeare", "distilbert"], ["student.layers=[0,6]"], "student.layers: [6] out of range")
    add("student-layers", ["distilbert-sweep"], ['sweep.grid={"student.layers": [[0, 2], [0, 8]]}'],
        "student.layers: [8] out of range")
    add("student-layers", ["smollm2", "smollm2-gpu", "smollm2-sweep"], ["student.num_layers=40"],
        "student.num_layers: 40 is not in 1..30")
    add("student-heads", ["tiny"], ["student.num_attention_heads=4"], "student.num_attention_heads: 4 is more than")
    add("student-heads", ["distilbert"], ["student.num_attention_heads=16", "refine.enabled=false"], "student.num_attention_heads: 16 is more than")
    add("student-ffn", ["tiny"], ["student.intermediate_size=128"], "student.intermediate_size: 128 is wider than")
    add("student-ffn", ["distilbert"], ["student.intermediate_size=2048", "refine.enabled=false"], "student.intermediate_size: 2048 is wider than")
    add("student-ffn", ["smollm2", "smollm2-gpu"], ["student.intermediate_size=2048"],
        "student.intermediate_size: 2048 is wider than")
    add("student-ffn", ["tiny-lm"], ["student.intermediate_size=64"], "student.intermediate_size: feed-forward pruning is "
                                                                     "not offered for 'gpt2'")
    add("refine", ["tiny"], ["refine.enabled=true", "refine.num_attention_heads=4"],
        "refine.num_attention_heads: 4 is more than")
    add("refine", ["tiny"], ["refine.enabled=true", "refine.intermediate_size=128"], "refine.intermediate_size: 128 is wider than")
    add("refine", ["distilbert"], ["refine.num_attention_heads=16"], "refine.num_attention_heads: 16 is more than")
    add("refine", ["distilbert"], ["refine.intermediate_size=2048"], "refine.intermediate_size: 2048 is wider than")
    add("layer-map", ["tiny"], ["distill.hidden.weight=1", "distill.hidden.layer_map=[[1, 9]]"],
        "distill.hidden.layer_map: [(1, 9)] out of range (student 0..2, teacher 0..4")
    add("layer-map", ["distilbert"], ["distill.hidden.weight=1", "distill.hidden.layer_map=[[4, 2]]"],
        "distill.hidden.layer_map: [(4, 2)] out of range (student 0..3, teacher 0..6")
    # booleans where numbers are expected (YAML true is an int in Python)
    add("boolean", ["tiny", "tiny-lm"], ["student.layers=[0, true]"], "student.layers: [0, true] holds a YAML boolean")
    add("boolean", ["shakespeare", "distilbert"], ["student.layers=[true, 2]"], "student.layers: [true, 2] holds a YAML boolean")
    add("boolean", ["distilbert-sweep"], ['sweep.grid={"student.layers": [[0, true]]}'],
        "student.layers: [0, true] holds a YAML boolean")
    add("boolean", ["tiny"], ["distill.hidden.layer_map=[[true, 1]]"], "distill.hidden.layer_map: [[true, 1]] holds a YAML boolean")
    add("boolean", ["smollm2", "smollm2-gpu", "smollm2-sweep"], ["student.num_layers=yes"],
        "student.num_layers: true holds a YAML boolean")
    add("boolean", ["gpt2-distilgpt2"], ["bench.new_tokens=on"], "bench.new_tokens: true holds a YAML boolean")
    # a bench sequence length beyond the model's position table
    add("positions", ["tiny"], ["bench.sequence_length=600"], "bench.sequence_length: 600 tokens")
    add("positions", ["tiny"], ["bench.mobile_sequence_lengths=[16, 600]"], "bench.mobile_sequence_lengths: 600 tokens")
    add("positions", ["tiny-lm"], ["bench.sequence_length=250"], "bench.sequence_length + bench.new_tokens: 266 tokens")
    add("positions", ["shakespeare"], ["bench.sequence_length=250"], "bench.sequence_length + bench.new_tokens: 314 tokens")
    add("positions", ["distilbert", "distilbert-sweep"], ["bench.sequence_length=1024"], "bench.sequence_length: 1024 tokens")
    # an ONNX opset the exporter does not write
    add("opset", EVERY, ["export.opset=99"], "export.opset: 99")
    add("opset", ["tiny", "tiny-lm"], ["export.opset=13"], "export.opset: 13")
    # an output folder that is a file
    add("output-file", ["tiny", "tiny-lm", "distilbert", "smollm2"], ["ship.dir={afile}"], "ship.dir: {afile} is a file")
    add("output-file", ["tiny", "distilbert"], ["ship.dir={afile}/bundles"], "ship.dir: {afile} is a file")
    add("output-file", ["tiny", "tiny-lm", "distilbert"], ["distill.cache.dir={afile}"], "distill.cache.dir: {afile} is a file")
    # names longer than the file system allows
    add("name-length", EVERY, ["name=" + "n" * 300], "name: 300 characters")
    add("name-length", ["tiny"], ["quantize.variants.0.name=" + "v" * 300, "ship.variant=" + "v" * 300],
        "quantize.variants.0.name: 300 characters")
    # a hub id that cannot be one
    add("hub-id", ["tiny"], [*RANDOM_TEACHER, "teacher.model=bert base uncased"], "teacher.model: 'bert base uncased'")
    add("hub-id", ["distilbert"], ["teacher.model=org/name/extra"], "teacher.model: 'org/name/extra'")
    add("hub-id", ["gpt2-distilgpt2"], ["student.model=distil--gpt2"], "student.model: 'distil--gpt2'")
    add("hub-id", ["distilbert"], ["data.source=glue sst2"], "data.source: 'glue sst2'")
    add("hub-id", ["smollm2"], ["data.source=a/b/c"], "data.source: 'a/b/c'")
    # a Windows path on POSIX
    add("windows-path", ["tiny", "distilbert"], ["data.source=C:\\data\\sst2"], "data.source: 'C:\\data\\sst2' is a Windows path")
    add("windows-path", ["shakespeare"], ["data.source=D:/text/input.txt"], "data.source: 'D:/text/input.txt' is a Windows path")
    add("windows-path", ["distilbert"], ["teacher.model=C:\\models\\minilm"], "teacher.model: 'C:\\models\\minilm' is a Windows path")
    add("windows-path", ["smollm2"], ["teacher.model=C:\\models\\smollm2.gguf"], "is a Windows path")
    # a model folder whose weight file is not a file
    add("weights-kind", ["tiny"], [*RANDOM_TEACHER, "teacher.model={tmp}/bert-dir"], "model.safetensors is a directory, not a file")
    add("weights-kind", ["tiny"], [*RANDOM_TEACHER, "teacher.model={tmp}/bert-device"], "model.safetensors is a character device")
    add("weights-kind", ["tiny-lm"], [*RANDOM_TEACHER, "teacher.finetune=false", "teacher.model={tmp}/gpt2-dir"],
        "model.safetensors is a directory, not a file")
    add("weights-kind", ["gpt2-distilgpt2"], ["student.model={tmp}/gpt2-device"], "model.safetensors is a character device")
    # !!binary (bytes) where text is expected
    add("binary", EVERY, ["name=!!binary dGlueQ=="], "name: a !!binary value")
    add("binary", ["distilbert"], ["data.text_column=!!binary c2VudGVuY2U="], "data.text_column: a !!binary value")
    # package: sources are found without running the package's code
    add("package", ["tiny"], [*RANDOM_TEACHER, "teacher.model=package:noisy_pkg"], "teacher.model: package 'noisy_pkg' holds no")
    add("package", ["distilbert"], ["teacher.model=package:noisy_pkg"], "teacher.model: package 'noisy_pkg' holds no")
    add("package", ["smollm2"], ["teacher.model=package:noisy_pkg"], "teacher.model: package 'noisy_pkg' holds no")
    # invisible or look-alike characters are shown escaped
    add("invisible", ["tiny", "tiny-lm", "distilbert", "smollm2"], [f"distill.alph{ZW}a=0.5"],
        "distill.alph\\u200ba: unknown key")
    add("invisible", ["tiny", "distilbert"], [f"d{CYRILLIC_A}ta.max_length=64"], "d\\u0430ta: unknown key")
    add("invisible", ["tiny"], [f"distill.divergence=forw{CYRILLIC_A}rd_kl"], "got 'forw\\u0430rd_kl'")
    add("invisible", ["tiny"], [f"name=tiny{ZW}"], "got 'tiny\\u200b'")
    return c


CASES = _cases()
KINDS = sorted({kind for kind, *_ in CASES})


def prepare(tmp: Path) -> dict[str, str]:
    """The files the cases name, under ``tmp``: an existing file, model folders whose weights are a folder or a
    device, and a package whose code must not run (it writes {tmp}/ran when imported)."""
    tmp.mkdir(parents=True, exist_ok=True)
    afile = tmp / "afile"
    afile.write_text("a file, not a folder\n")
    for name, config, weights in (("bert-dir", BERT, "dir"), ("bert-device", BERT, "device"),
                                  ("gpt2-dir", GPT2, "dir"), ("gpt2-device", GPT2, "device")):
        folder = tmp / name
        folder.mkdir(exist_ok=True)
        (folder / "config.json").write_text(json.dumps(config))
        target = folder / "model.safetensors"
        if not target.exists() and not target.is_symlink():
            target.mkdir() if weights == "dir" else os.symlink(os.devnull, target)
    site = tmp / "site"
    package = site / "noisy_pkg"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(f"print('noisy_pkg ran at import')\nopen({str(tmp / 'ran')!r}, 'w').close()\n"
                                         "def get_model_path():\n    return '/nowhere'\n")
    return {"tmp": str(tmp), "afile": str(afile), "site": str(site)}


def fill(text: str, where: dict[str, str]) -> str:
    for key, value in where.items():
        text = text.replace("{" + key + "}", value)
    return text
