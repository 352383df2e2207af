"""The real-LLM recipe's pieces on tiny decoders built in code: the top-k teacher targets and their KL, students
ranked on the data (block influence, gated feed-forward pruning), the ONNX decoder's shared-context scoring,
WikiText windows and bits per byte, and the paired intervals of the report (compress/tasks/causal_lm/retention.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from compress import models
from compress.distill.cache import _topk
from compress.distill.losses import forward_kl, topk_forward_kl
from compress.tasks.causal_lm import lm, onnxlm, retention, wikitext, zeroshot
from compress.tasks.causal_lm.text import generate_text, train_bpe_tokenizer

from .test_llm import tiny

TEXT = generate_text(300, seed=2)


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer(TEXT, 300, 64)


def _rows(tokenizer, n=6, length=24):
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    return [ids[i * length:(i + 1) * length] for i in range(n)]


def test_topk_kl_is_the_full_kl_when_k_covers_the_vocabulary_and_a_lower_bound_below():
    torch.manual_seed(0)
    s, t = torch.randn(2, 5, 40) * 3, torch.randn(2, 5, 40) * 3
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1, 3:] = False
    full = forward_kl(s, t, 2.0, mask=mask)
    values, idx, rest = _topk(t, 40, 2.0)
    probs = torch.softmax(values / 2.0, -1) * (1 - rest).unsqueeze(-1)
    assert topk_forward_kl(s, probs, rest, idx.long(), 2.0, mask=mask) == pytest.approx(full.item(), rel=1e-4)
    values, idx, rest = _topk(t, 8, 2.0)
    probs = torch.softmax(values / 2.0, -1) * (1 - rest).unsqueeze(-1)
    sparse = topk_forward_kl(s, probs, rest, idx.long(), 2.0, mask=mask)
    assert 0 < sparse.item() <= full.item() + 1e-6
    # it teaches: a gradient step on the sparse loss lowers the full KL
    s.requires_grad_(True)
    topk_forward_kl(s, probs, rest, idx.long(), 2.0, mask=mask).backward()
    assert forward_kl(s.detach() - 0.5 * s.grad, t, 2.0, mask=mask) < full


def test_layers_ranked_by_block_influence_and_a_gated_feed_forward_pruned(tokenizer):
    teacher = tiny("llama", len(tokenizer), layers=6)
    rows = _rows(tokenizer)
    kept, influence = lm.ranked_layers(teacher, rows, 4)
    assert len(influence) == 6 and kept == sorted(kept) and len(kept) == 4
    assert set(kept) == set(sorted(range(6), key=lambda i: -influence[i])[:4])
    student, _ = models.student_from_layers(teacher, kept, models.DECODER_LAYERS)
    ids = torch.tensor(rows[:2])
    with torch.no_grad():
        before = student(input_ids=ids).logits
    # keeping every neuron changes nothing; keeping fewer slices gate, up and down alike
    info = models.prune_ffn(student, 64, lm._batches(rows, 0), registry=models.DECODER_LAYERS)
    with torch.no_grad():
        torch.testing.assert_close(student(input_ids=ids).logits, before)
    info = models.prune_ffn(student, 40, lm._batches(rows, 0), registry=models.DECODER_LAYERS)
    mlp = student.model.layers[0].mlp
    assert (mlp.gate_proj.out_features, mlp.up_proj.out_features, mlp.down_proj.in_features) == (40, 40, 40)
    assert student.config.intermediate_size == 40 and all(0.5 < s <= 1 for s in info["importance_kept"])
    with torch.no_grad():
        assert torch.isfinite(student(input_ids=ids).logits).all()


def test_the_onnx_decoder_scores_a_shared_context_as_the_padded_rows_do(tokenizer, tmp_path):
    model = tiny("llama", len(tokenizer))
    models.save(model, tokenizer, tmp_path / "model")
    dec = onnxlm.Decoder(onnxlm.export(tmp_path / "model", tmp_path / "onnx"))
    item = zeroshot.Item("FOOL: The queen mocks the", ["king.", "old man fears", "duke", "people forgives"], 2)
    shared = zeroshot.score("hellaswag", [item, item], tokenizer, decoder=dec, max_length=128)
    padded = zeroshot.score("hellaswag", [item, item], tokenizer, dec.logits, max_length=128)
    by_torch = zeroshot.score("hellaswag", [item, item], tokenizer, model=model, max_length=128)
    assert shared["correct"] == padded["correct"] == by_torch["correct"]
    assert shared["correct_norm"] == padded["correct_norm"] == by_torch["correct_norm"]
    pairs = [zeroshot.encode_pair(tokenizer, item.context, c) for c in item.continuations()]
    got, = zeroshot.decoder_shared_context_loglikelihoods(dec, [(pairs[0][0], [c for _, c in pairs])])
    want = zeroshot.loglikelihoods(dec.logits, pairs, 128, tokenizer.pad_token_id)
    np.testing.assert_allclose([g[0] for g in got], [w[0] for w in want], atol=1e-4)
    # WikiText: windows start with end-of-text, every token predicted once; bits per byte from the same NLL
    text = TEXT[:2000]
    rows, nbytes = wikitext.windows(tokenizer, text, None, 32)
    assert all(r[0] == tokenizer.eos_token_id and len(r) <= 32 for r in rows)
    assert sum(len(r) - 1 for r in rows) == len(tokenizer(text, add_special_tokens=False)["input_ids"])
    assert nbytes == len(text.encode())
    w = wikitext.wikitext_scores({"decoder": dec}, tokenizer, text, None, 32)
    t = wikitext.wikitext_scores({"model": model}, tokenizer, text, None, 32)
    assert w["perplexity"] == pytest.approx(t["perplexity"], rel=1e-4)
    assert w["bits_per_byte"] == pytest.approx(w["nll"] * w["tokens"] / math.log(2) / nbytes)
    capped, capped_bytes = wikitext.windows(tokenizer, text, 50, 32)
    assert sum(len(r) - 1 for r in capped) == 50 and 0 < capped_bytes < nbytes


def _result(correct: list[int], windows=None) -> dict:
    out = {"sets": {"piqa": {"correct": correct, "correct_norm": correct}}}
    if windows is not None:
        nll = sum(w[0] for w in windows)
        tokens = sum(w[1] for w in windows)
        out["wikitext"] = {"perplexity": math.exp(nll / tokens), "bits_per_byte": 1.0, "tokens": tokens, "windows": windows}
    return out


def test_paired_intervals_and_retention_above_chance():
    assert retention.wilson(0, 10)[0] == pytest.approx(0, abs=1e-12)
    lo, hi = retention.wilson(40, 100)
    assert lo == pytest.approx(0.3094, abs=1e-4) and hi == pytest.approx(0.4980, abs=1e-4)  # the textbook values
    sets = {"piqa": {"metric": "acc", "chance": 0.5}}
    teacher = _result([1] * 80 + [0] * 20, [[30.0, 10], [32.0, 10], [28.0, 10]])
    student = _result([1] * 70 + [0] * 30, [[33.0, 10], [35.0, 10], [30.0, 10]])
    c = retention.compare(student, teacher, sets)
    p = c["sets"]["piqa"]
    assert p["value"] == 0.7 and p["paired"]["difference"] == pytest.approx(-0.1)
    # 10 items the student loses, none it gains: sd of the differences = sqrt(0.1 * 0.9 * 100 / 99)
    se = math.sqrt(0.09 * 100 / 99) / 10
    assert p["paired"]["low"] == pytest.approx(-0.1 - retention.Z * se)
    assert p["retention"] == pytest.approx(0.7 / 0.8) and p["above_chance"] == pytest.approx(0.2 / 0.3)
    assert p["retention_low"] < p["retention"] < p["retention_high"]
    assert c["mean"]["paired"]["difference"] == pytest.approx(-0.1)
    w = c["wikitext"]["ratio"]
    assert w["value"] == pytest.approx(math.exp(8 / 30)) and w["low"] < w["value"] < w["high"] and w["windows"] == 3
    # identical outcomes: a zero difference with a zero-width interval
    same = retention.compare(teacher, teacher, sets)["sets"]["piqa"]["paired"]
    assert same["difference"] == 0 and same["low"] == same["high"] == 0


def test_score_files_are_checked_at_load(tmp_path):
    from compress.errors import CompressError
    from compress.tasks import load_config

    from .conftest import ROOT

    (tmp_path / "piqa.jsonl").write_text(json.dumps({"query": "Question: q", "choices": ["a", "b"], "gold": 0}) + "\n")
    with pytest.raises(CompressError) as err:
        load_config(ROOT / "pipelines" / "tiny-lm.yaml", ["scores.enabled=true", f"scores.folder={tmp_path}",
                                                          "scores.sets={piqa: 1, lambada: 1}"])
    lines = err.value.problems
    assert any(line.startswith("scores.sets.lambada:") and "lambada_openai.jsonl not found" in line for line in lines)
    assert any(line.startswith("scores.wikitext:") for line in lines)
    assert not any("piqa" in line for line in lines)
    with pytest.raises(CompressError, match="scores.enabled: the zero-shot scores"):
        load_config(ROOT / "pipelines" / "tiny.yaml", ["scores.enabled=true"])


def test_token_kd_learns_from_the_cached_top_k_of_a_decoder(tokenizer):
    from compress.data import Encoded
    from compress.distill.cache import compute_teacher_outputs, fidelity_check
    from compress.tasks.causal_lm.objectives import TokenKD, kd_loss_fn

    class D:
        temperature, alpha, divergence, beta = 1.0, 0.0, "forward_kl", 0.5

    teacher, student = tiny("llama", len(tokenizer), seed=0), tiny("llama", len(tokenizer), layers=2, seed=1)
    rows = _rows(tokenizer, n=4)
    rows[3] = rows[3][:10]  # a short row: its padding is masked
    data = Encoded(rows, [0] * len(rows))
    cached = compute_teacher_outputs(teacher, data, tokenizer.pad_token_id, 2, "cpu", top_k=16, temperature=1.0)
    assert cached.format == "topk" and cached.per_token and tuple(cached.topk_values.shape) == (4, 24, 16)
    assert fidelity_check(teacher, data, cached, tokenizer.pad_token_id, sample=4)["ok"]
    ids = torch.full((4, 24), tokenizer.pad_token_id)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), 1
    batch = {"input_ids": ids, "attention_mask": mask, "index": torch.arange(4)}
    model = TokenKD(student, D())
    loss, parts = kd_loss_fn(teacher, None, cached)(model, batch)
    # the same loss from the live teacher's top-16, computed here by hand
    with torch.no_grad():
        t_logits = teacher(input_ids=ids, attention_mask=mask).logits
    values, idx, rest = _topk(t_logits, 16, 1.0)
    probs = torch.softmax(values, -1) * (1 - rest).unsqueeze(-1)
    s_logits = student(input_ids=ids, attention_mask=mask).logits
    valid = mask[:, 1:].bool() & mask[:, :-1].bool()
    want = topk_forward_kl(s_logits[:, :-1], probs[:, :-1], rest[:, :-1], idx[:, :-1].long(), 1.0, mask=valid)
    assert loss.item() == pytest.approx(want.item(), rel=1e-4) and parts["kd"] == pytest.approx(want.item(), rel=1e-4)
