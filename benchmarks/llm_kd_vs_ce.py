"""Token-level KD against next-token CE on a finished causal-LM run's student, epoch by epoch: what the teacher's
distributions buy over the text's own tokens when the same blocks are seen several times.

    python benchmarks/llm_kd_vs_ce.py kd [key=value ...] [--run runs/smollm2] [--pipeline pipelines/smollm2.yaml]
    python benchmarks/llm_kd_vs_ce.py ce [...same overrides...]       # --out benchmarks/results/llm_kd_vs_ce-<mode>.json

Starts from the run's pruned student (<run>/student/model), trains it with the pipeline's distill.train settings
(overrides win: data.max_train_samples=200 distill.train.epochs=3) on the pipeline's text, either on the cached
teacher's top-k distributions mixed with CE by distill.alpha (kd; the run's teacher-output cache is reused) or on CE
alone (ce), and after every epoch scores WikiText-2 perplexity on its first --epoch-tokens tokens; at the end, the
pipeline's scores.sets items and --final-tokens WikiText-2 tokens. Run the two modes with the same overrides and
compare them epoch by epoch (same blocks, order, steps and seed). --cache-precision fp32 computes the teacher
cache in fp32 whatever the training precision (a cache of its own). Writes JSON with the CPU it ran on.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from rich.console import Console

from compress.config.load import load_config
from compress.distill.train import fit, make_accelerator
from compress.envinfo import resolve_precision
from compress.tasks.causal_lm import lm, zeroshot
from compress.tasks.causal_lm.objectives import TokenKD, cached_teacher, kd_loss_fn, lm_cross_entropy
from compress.tasks.causal_lm.text import load_text, train_rows
from compress.tasks.causal_lm.wikitext import read_wikitext, wikitext_scores

METRIC = {"hellaswag": "acc_norm"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["kd", "ce"])
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--run", default="runs/smollm2")
    ap.add_argument("--pipeline", default="pipelines/smollm2.yaml")
    ap.add_argument("--epoch-tokens", type=int, default=4096)
    ap.add_argument("--final-tokens", type=int, default=8192)
    ap.add_argument("--out", default=None)
    ap.add_argument("--cache-precision", default=None, choices=["fp32", "bf16"],
                    help="the teacher cache's autocast (kd); default: the training precision")
    args = ap.parse_args()
    cfg = load_config(args.pipeline, args.overrides)
    run, console = Path(args.run), Console()
    out = Path(args.out or f"benchmarks/results/llm_kd_vs_ce-{args.mode}.json")
    model, tok = lm.load_saved(run / "student" / "model")
    data = train_rows(cfg, tok, load_text(cfg))
    precision = resolve_precision(cfg.distill.train.precision, "cpu")
    accelerator = make_accelerator("cpu", precision, 1)
    folder = Path(cfg.scores.folder).expanduser()
    text = read_wikitext(folder / cfg.scores.wikitext)
    result = {"mode": args.mode, "run": str(run), "overrides": args.overrides, "blocks": len(data),
              "cpu": _cpu(), "epochs": []}

    def evaluate(trained) -> float:
        student = getattr(trained, "student", trained).eval()
        with torch.no_grad():
            ppl = wikitext_scores({"model": student}, tok, text, args.epoch_tokens, cfg.scores.window)["perplexity"]
        result["epochs"].append(ppl)
        console.print(f"{args.mode}: epoch {len(result['epochs'])}, WikiText-2 perplexity {ppl:.2f}")
        _write(out, result)
        return float(len(result["epochs"]))  # increasing: the last epoch's weights are kept

    t0 = time.perf_counter()
    if args.mode == "ce":
        train = fit(model, data, tok.pad_token_id, cfg.distill.train, accelerator, cfg.seed, lm_cross_entropy, "ce",
                    console, evaluate=evaluate)
    else:
        teacher, _ = lm.load_saved(run / "teacher" / "model")
        teacher.eval().requires_grad_(False)
        ctx = SimpleNamespace(runs_dir=run.parent, run_dir=run, console=console, device="cpu")
        cached, result["cache"] = cached_teacher(cfg, ctx, teacher, run / "teacher" / "model", data, tok.pad_token_id,
                                                 args.cache_precision or precision, lm.output_rows(model))
        del teacher
        train = fit(TokenKD(model, cfg.distill), data, tok.pad_token_id, cfg.distill.train, accelerator, cfg.seed,
                    kd_loss_fn(None, accelerator, cached), "kd", console, evaluate=evaluate)
    result["train_seconds"], result["final_loss"] = train["seconds"], train["final_loss"]
    model.eval()
    with torch.no_grad():
        for name, n in cfg.scores.sets.items():
            items = zeroshot.load(name, folder, n, seed=cfg.seed)
            result[name] = zeroshot.score(name, items, tok, batch_size=cfg.scores.batch_size, model=model)[METRIC.get(name, "acc")]
        result["wikitext_final"] = wikitext_scores({"model": model}, tok, text, args.final_tokens, cfg.scores.window)["perplexity"]
    result["mean"] = sum(result[n] for n in cfg.scores.sets) / len(cfg.scores.sets)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    _write(out, result)
    console.print(json.dumps({k: v for k, v in result.items() if k not in ("cache",)}))


def _write(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))


def _cpu() -> str:
    from compress.envinfo import cpu_model

    return cpu_model()


if __name__ == "__main__":
    main()
