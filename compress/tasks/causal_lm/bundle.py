"""The edge bundle of a causal LM, ``exports/<name>/``: the shipped ONNX decoder with its KV cache
(``model.onnx``), its tokenizer, ``golden.json`` (held-out prompts, the ids the bundled ``tokenizer.json`` gives
them, the next-token logits after each prompt and the greedy tokens the bundled model generates), a model card,
and ``manifest.json`` (sha256 of every file, inputs and outputs, figures). ``compress verify`` replays it with
tokenizers, numpy and onnxruntime alone."""

from __future__ import annotations

import numpy as np

from compress import __version__
from compress.bench import rounds
from compress.errors import CompressError
from compress.layout import GOLDEN_FILE, MANIFEST_FILE, ONNX_FILE
from compress.records import Report, Variant
from compress.reports.perplexity import generation_flag
from compress.tasks.causal_lm.checks import PROMPT_TOKENS
from compress.tasks.causal_lm.golden import TOLERANCE
from compress.tasks.causal_lm.onnxlm import Decoder
from compress.tasks.causal_lm.text import load_text, prompts


def golden_set(cfg, bundle) -> dict:
    """Held-out prompts through the bundled tokenizer.json (the ``tokenizers`` library, checked against the
    transformers tokenizer the model was evaluated with), then the bundled model.onnx: the next-token logits
    after each prompt and its greedy continuation through the KV cache."""
    import onnxruntime
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(bundle)
    tokenizer = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    dec = Decoder(bundle / ONNX_FILE)
    eos = reference.eos_token_id
    samples = []
    for i, ids in enumerate(prompts(reference, load_text(cfg).eval, cfg.ship.golden_samples, PROMPT_TOKENS)):
        text = reference.decode(ids)
        enc = tokenizer.encode(text, add_special_tokens=False)
        expected = reference(text, add_special_tokens=False)["input_ids"]
        if enc.ids != expected:
            raise CompressError(f"ship: the bundled tokenizer.json gives other ids than the model was evaluated with for "
                                f"prompt {i} ({text[:60]!r}): {enc.ids[:12]} vs {expected[:12]}")
        arr = np.asarray([enc.ids], dtype=np.int64)
        logits = dec.logits(arr, np.ones_like(arr))[0, -1]
        samples.append({"text": text, "input_ids": enc.ids, "attention_mask": enc.attention_mask,
                        "logits": [float(x) for x in logits],
                        "greedy_tokens": dec.greedy(enc.ids, cfg.export.greedy_tokens, eos)})
    return {
        "task": "causal-lm",
        "about": "Held-out prompts, the ids tokenizer.json gives them (no special tokens), the next-token logits "
                 "model.onnx gives after each (an empty KV cache) and its greedy continuation through the KV cache "
                 "(stopping at eos). compress verify replays them.",
        "tokenizer": {"file": "tokenizer.json", "add_special_tokens": False, "truncation_max_length": 1 << 20},
        "output": "logits", "atol": TOLERANCE["logits"], "new_tokens": cfg.export.greedy_tokens, "eos_token_id": eos,
        "computed_with": {"model": ONNX_FILE, "onnxruntime": onnxruntime.__version__, "provider": "CPUExecutionProvider"},
        "samples": samples,
    }


def model_card(cfg, report: Report, variant: Variant, spec: dict, golden: dict) -> str:
    teacher = report.variant("teacher")
    past = [t["name"] for t in spec["inputs"] if t["name"].startswith("past_key_values.")]
    return "\n".join([
        f"# {cfg.name}: {variant.name} ({variant.precision}, causal language model)", "",
        f"Distilled by compress {__version__} from a {report.get('teacher')['model_type']} teacher "
        f"({teacher.parameters / 1e6:.1f}M parameters) into {variant.parameters / 1e6:.1f}M parameters; "
        f"{variant.size_bytes / 1e6:.1f} MB.", "",
        f"- perplexity {variant.perplexity:.3f} on {report.get('eval')['tokens']:,} held-out tokens (teacher "
        f"{teacher.perplexity:.3f}; retention {variant.perplexity_retention:.1%})",
        f"- batch 1, greedy through the KV cache, {report.get('query')['prompt_tokens']}-token prompt: first token "
        f"{variant.time_to_first_token_ms:.1f} ms, {variant.tokens_per_second:.0f} tokens/s, peak RSS "
        f"{variant.peak_memory_bytes / 2**20:.0f} MiB (measured on {report.environment['cpu']}"
        + (f", median of {report.latency_rounds.rounds} interleaved rounds" if report.latency_rounds else "")
        + f"){rounds.tag(variant.flags)}",
        *[f"  - flagged, do not quote these speeds without the flag: {generation_flag(variant.name, t, m)}"
          for t, m in variant.measurements.items() if m.flags],
        "",
        "## Use", "",
        "`model.onnx` takes `input_ids`, `attention_mask`" + (", `position_ids`" if any(t["name"] == "position_ids" for t in spec["inputs"]) else "")
        + f" and {len(past) // 2} layers of `past_key_values.<i>.key/value` (batch, heads, past length, head dim; "
        "length 0 for the first call) and returns `logits` and `present.<i>.key/value`, the cache for the next call. "
        "Tokenize with `tokenizer.json` (no special tokens), feed the prompt once, then one token at a time with "
        "the returned cache.", "",
        f"`{GOLDEN_FILE}` holds {len(golden['samples'])} prompts with their ids, next-token logits and greedy "
        f"continuations ({golden['new_tokens']} tokens); `compress verify <this folder>` replays them and checks "
        f"every file against `{MANIFEST_FILE}`.", "",
        "Try it: `compress generate <this folder> \"your prompt\"` checks the files, then streams the reply with "
        "tokenizers, jinja2, numpy and onnxruntime (never torch or transformers), "
        "greedy, through the chat template when the tokenizer files carry one (`--no-chat-template` to send the "
        "prompt as it is; `--temperature`, `--top-k`, `--seed` to sample; `--max-new-tokens`).", "",
        *(["The bundle is signed (`model.sig`, the OpenSSF model-signing format, every other file covered): "
           "`compress verify <this folder> --key public.pem` checks that it was signed by the holder of the private "
           "key.", ""] if cfg.ship.sign_key else [])])
