"""Zero-shot scoring as lm-evaluation-harness does it (compress/tasks/causal_lm/zeroshot.py): the pair encoding,
log-likelihoods against a brute-force computation on tiny GPT-2 and Llama decoders (padded batches and the shared
context alike), acc against acc_norm, the sets' formats, and GGUF sources found without importing a package."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from compress.errors import CompressError
from compress.tasks.causal_lm import lm, zeroshot
from compress.tasks.causal_lm.text import generate_text, train_bpe_tokenizer

from .test_llm import tiny

TEXT = generate_text(300, seed=1)


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer(TEXT, 300, 64)


def brute_force(model, ctx: list[int], cont: list[int]) -> tuple[float, bool]:
    """One unpadded sequence, every position's log-softmax: the definition the batched paths must match."""
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
    rows = logp[len(ctx) - 1: len(ctx) + len(cont) - 1]
    return float(rows[torch.arange(len(cont)), torch.tensor(cont)].sum()), bool((rows.argmax(-1) == torch.tensor(cont)).all())


def test_encode_pair_moves_trailing_spaces_to_the_continuation(tokenizer):
    ctx, cont = zeroshot.encode_pair(tokenizer, "The king ", "follows")
    assert ctx == tokenizer("The king", add_special_tokens=False)["input_ids"]
    assert ctx + cont == tokenizer("The king follows", add_special_tokens=False)["input_ids"]
    assert zeroshot.encode_pair(tokenizer, "", " the")[0] == [tokenizer.eos_token_id]


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_loglikelihoods_match_the_brute_force_ones_padded_and_shared(kind, tokenizer):
    model = tiny(kind, len(tokenizer))
    item = zeroshot.Item("FOOL: The queen mocks the", ["king.", "old man fears", "duke", "people forgives their friend"], 0)
    pairs = [zeroshot.encode_pair(tokenizer, item.context, c) for c in item.continuations()]
    want = [brute_force(model, ctx, cont) for ctx, cont in pairs]
    padded = zeroshot.loglikelihoods(zeroshot.torch_logits_fn(model), pairs, 128, tokenizer.pad_token_id, batch_size=3)
    shared, = zeroshot.shared_context_loglikelihoods(model, [(pairs[0][0], [cont for _, cont in pairs])])
    for got in (padded, shared):
        assert [g[1] for g in got] == [w[1] for w in want]
        np.testing.assert_allclose([g[0] for g in got], [w[0] for w in want], rtol=1e-5, atol=1e-4)
    # score() takes the shared path with a model and the padded one with a logits function: the same outcome
    by_model = zeroshot.score("hellaswag", [item], tokenizer, model=model, max_length=128)
    by_fn = zeroshot.score("hellaswag", [item], tokenizer, zeroshot.torch_logits_fn(model), max_length=128)
    assert by_model["correct"] == by_fn["correct"] and by_model["correct_norm"] == by_fn["correct_norm"]


def test_a_long_pair_is_cut_from_the_left_as_the_harness_cuts_it(tokenizer):
    model = tiny("llama", len(tokenizer))
    ctx = tokenizer(TEXT[:400], add_special_tokens=False)["input_ids"]
    cont = tokenizer(" the king", add_special_tokens=False)["input_ids"]
    got, = zeroshot.loglikelihoods(zeroshot.torch_logits_fn(model), [(ctx, cont)], 20, tokenizer.pad_token_id)
    kept = (ctx + cont)[-21:]
    want = brute_force(model, kept[: -len(cont)], cont)
    assert got[0] == pytest.approx(want[0], abs=1e-4)


def test_acc_norm_divides_by_the_length_in_characters(monkeypatch, tokenizer):
    item = zeroshot.Item("ctx", ["a", "a much longer ending"], gold=1)
    # log-likelihoods -2 (1 character) and -10 (20 characters): acc picks the first, acc_norm (-0.5 a character) the second
    monkeypatch.setattr(zeroshot, "loglikelihoods", lambda fn, pairs, *a, **k: [(-2.0, False), (-10.0, False)])
    r = zeroshot.score("hellaswag", [item], tokenizer, logits_fn=lambda ids, mask: None)
    assert (r["acc"], r["acc_norm"]) == (0.0, 1.0) and r["chance"] == 0.25


def test_lambada_accuracy_is_greedy_and_perplexity_is_per_item(monkeypatch, tokenizer):
    items = [zeroshot.Item("a passage", ["word"], 0), zeroshot.Item("another", ["one"], 0)]
    monkeypatch.setattr(zeroshot, "loglikelihoods", lambda fn, pairs, *a, **k: [(-1.0, True), (-3.0, False)])
    r = zeroshot.score("lambada", items, tokenizer, logits_fn=lambda ids, mask: None)
    assert r["acc"] == 0.5 and r["perplexity"] == pytest.approx(np.exp(2.0))


def test_the_sets_are_read_in_the_harness_format(tmp_path):
    rows = {
        "hellaswag_val.jsonl": {"ctx": "Home: How to tidy [title] Sort your things. then", "endings": [" put [step] away. ", "b"],
                                "label": 1},
        "piqa.jsonl": {"query": "Question: How do I open a jar?\n", "choices": ["Twist.", "Shout."], "gold": 0},
        "arc_easy.jsonl": {"query": "Question: What is ice?", "choices": ["frozen water", "hot air"], "gold": 0},
        "lambada_openai.jsonl": {"context": "He looked at the ", "continuation": "sky"},
    }
    for name, row in rows.items():
        (tmp_path / name).write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    h, = zeroshot.load("hellaswag", tmp_path, limit=1)
    assert h.context == "Home: How to tidy. Sort your things. then" and h.choices == ["put away.", "b"] and h.gold == 1
    p = zeroshot.load("piqa", tmp_path)[0]
    assert p.context == "Question: How do I open a jar?\nAnswer:" and p.continuations()[0] == " Twist."
    assert zeroshot.load("arc_easy", tmp_path)[0].context == "Question: What is ice?\nAnswer:"
    lam = zeroshot.load("lambada", tmp_path)[0]
    assert (lam.context, lam.continuations()) == ("He looked at the", [" sky"])
    (tmp_path / "piqa.jsonl").write_text("{not json\n")
    with pytest.raises(CompressError, match=r"piqa.jsonl: line 1 is not JSON"):
        zeroshot.load("piqa", tmp_path)
    with pytest.raises(CompressError, match="unknown; known: hellaswag, piqa, arc_easy, lambada"):
        zeroshot.load("mmlu", tmp_path)


def test_a_seeded_subset_is_the_same_every_time(tmp_path):
    (tmp_path / "arc_easy.jsonl").write_text("".join(json.dumps({"query": f"Question: q{i}", "choices": ["a", "b"],
                                                                "gold": 0}) + "\n" for i in range(50)))
    first = [i.context for i in zeroshot.load("arc_easy", tmp_path, limit=10, seed=3)]
    assert first == [i.context for i in zeroshot.load("arc_easy", tmp_path, limit=10, seed=3)]
    assert first != [i.context for i in zeroshot.load("arc_easy", tmp_path, limit=10, seed=4)] and len(set(first)) == 10


def test_a_gguf_file_is_found_in_a_package_without_importing_it(tmp_path, monkeypatch):
    package = tmp_path / "weights_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("raise ImportError('importing this package is not allowed')\n")
    (package / "tiny.Q4_1.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert lm.gguf_file("package:weights_pkg") == package / "tiny.Q4_1.gguf"
    assert "weights_pkg" not in sys.modules
    assert lm.gguf_file(str(package / "tiny.Q4_1.gguf")) == package / "tiny.Q4_1.gguf"
    assert lm.gguf_file(str(tmp_path)) is None and lm.gguf_file("HuggingFaceTB/SmolLM2-135M") is None


def test_the_benchmark_scores_a_saved_model_and_writes_json(tokenizer, tmp_path, capsys):
    from benchmarks import zeroshot as script

    folder = tmp_path / "model"
    tiny("llama", len(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (tmp_path / "piqa.jsonl").write_text("".join(json.dumps({"query": f"Question: how {i}?", "choices": ["the king", "a duke"],
                                                             "gold": i % 2}) + "\n" for i in range(6)))
    out = tmp_path / "zs.json"
    assert script.main(["--model", str(folder), "--sets", "piqa:all", "--data", str(tmp_path), "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["sets"]["piqa"]["items"] == 6 and 0 <= r["sets"]["piqa"]["acc_norm"] <= 1 and r["published_check"] is None
    assert "piqa" in capsys.readouterr().out
    assert script.main(["--model", "package:no_such_package_here", "--sets", "piqa:2", "--data", str(tmp_path),
                        "--out", str(tmp_path / "x.json")]) == 2
    assert "Python package 'no_such_package_here' is not installed" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
