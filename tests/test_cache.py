import os
import random

import pytest
import torch
from safetensors import safe_open
from transformers import BertConfig, BertForSequenceClassification, BertForTokenClassification

from compress import digests
from compress.data import Encoded
from compress.distill.cache import (
    CachedOutputs,
    TeacherCache,
    cache_key,
    compute_teacher_outputs,
    default_top_k,
    fidelity_check,
    get_or_compute,
)
from compress.distill.train import predict_logits

PAD = 0


def tiny(seed=0, num_labels=2, cls=BertForSequenceClassification):
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                     num_labels=num_labels, initializer_range=0.2, pad_token_id=PAD)
    return cls(cfg).eval()


def random_data(n=40, seed=0, num_labels=2):
    rng = random.Random(seed)
    ids = [[rng.randint(1, 98) for _ in range(rng.randint(2, 17))] for _ in range(n)]
    return Encoded(ids, [rng.randrange(num_labels) for _ in range(n)])


@pytest.fixture
def teacher_dir(tmp_path):
    folder = tmp_path / "teacher"
    tiny(0).save_pretrained(folder, safe_serialization=True)
    return folder


def test_key_changes_with_each_input_and_only_then(tmp_path, teacher_dir):
    data = random_data()
    cache = TeacherCache(tmp_path / "cache")
    base = cache.key(teacher_dir, data, 2.0, None)
    assert len(base) == 64
    # the same content, built afresh, gives the same key (also with 2 for 2.0 and without the memo)
    assert cache.key(teacher_dir, Encoded([list(r) for r in data.input_ids], list(data.labels)), 2, None) == base
    assert cache_key(teacher_dir, data, 2.0, None) == base
    # re-saving identical weights (new mtime, memo entry stale) keeps the content hash
    tiny(0).save_pretrained(teacher_dir, safe_serialization=True)
    st = (teacher_dir / "model.safetensors").stat()
    os.utime(teacher_dir / "model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns + 10**10))
    assert cache.key(teacher_dir, data, 2.0, None) == base

    other = tmp_path / "other"
    tiny(1).save_pretrained(other, safe_serialization=True)
    changed_id = Encoded([list(r) for r in data.input_ids], list(data.labels))
    changed_id.input_ids[7][1] = changed_id.input_ids[7][1] % 98 + 1
    changed_label = Encoded(data.input_ids, [1 - y if i == 3 else y for i, y in enumerate(data.labels)])
    regrouped = Encoded([[1, 2], [3]], [0, 0])
    keys = {
        "weights": cache.key(other, data, 2.0, None),
        "ids": cache.key(teacher_dir, changed_id, 2.0, None),
        "labels": cache.key(teacher_dir, changed_label, 2.0, None),
        "temperature": cache.key(teacher_dir, data, 3.0, None),
        "top_k": cache.key(teacher_dir, data, 2.0, 2),
        "extra": cache.key(teacher_dir, data, 2.0, None, {"autocast": "bfloat16"}),
    }
    assert base not in keys.values() and len(set(keys.values())) == len(keys)
    assert cache.key(teacher_dir, data, 2.0, 1) != keys["top_k"]
    assert cache.key(teacher_dir, regrouped, 2.0, None) != cache.key(teacher_dir, Encoded([[1], [2, 3]], [0, 0]), 2.0, None)
    # config.json is part of the teacher
    config = teacher_dir / "config.json"
    config.write_text(config.read_text() + " ")
    assert cache.key(teacher_dir, data, 2.0, None) != base


def test_file_hashes_are_remembered_by_size_and_mtime(tmp_path, teacher_dir, monkeypatch):
    calls = []
    real = digests.sha256_file
    monkeypatch.setattr(digests, "sha256_file", lambda p: calls.append(p.name) or real(p))
    cache = TeacherCache(tmp_path / "cache")
    data = random_data(5)
    first = cache.key(teacher_dir, data, 1.0, None)
    assert sorted(calls) == ["config.json", "model.safetensors"]
    assert (tmp_path / "cache" / "file-hashes.json").is_file()
    calls.clear()
    assert cache.key(teacher_dir, data, 1.0, None) == first and calls == []
    os.utime(teacher_dir / "model.safetensors")  # touched: hashed again
    cache.key(teacher_dir, data, 1.0, None)
    assert calls == ["model.safetensors"]
    (tmp_path / "cache" / "file-hashes.json").write_text("{not json")  # a damaged memo is only a slower key
    assert cache.key(teacher_dir, data, 1.0, None) == first


def test_round_trip_is_bit_exact_and_second_lookup_is_a_hit(tmp_path):
    model, data = tiny(0, num_labels=10), random_data(num_labels=10)
    cache = TeacherCache(tmp_path / "cache")
    for top_k in (None, 3):
        out = compute_teacher_outputs(model, data, PAD, 8, "cpu", top_k, 2.5)
        calls = []
        got, hit = get_or_compute(cache, f"k{top_k}", lambda: calls.append(1) or out)
        assert (hit, calls) == (False, [1]) and got is out
        again, hit = get_or_compute(cache, f"k{top_k}", lambda: calls.append(1) or out)
        assert hit and calls == [1]
        for name, t in out.tensors().items():
            assert torch.equal(again.tensors()[name], t) and again.tensors()[name].dtype == t.dtype, name
        assert (again.format, again.top_k, again.temperature, again.num_classes) == (out.format, top_k, 2.5, 10)
        with safe_open(str(cache.path(f"k{top_k}")), framework="pt") as fh:
            meta = fh.metadata()
        assert meta["format"] == ("full" if top_k is None else "topk") and meta["num_rows"] == str(len(data))
        assert meta["temperature"] == "2.5" and meta["created"]
    assert cache.get("absent") is None


def test_cached_logits_equal_live_predict_logits_in_row_order():
    model, data = tiny(0), random_data(37)
    out = compute_teacher_outputs(model, data, PAD, 8, "cpu", None, 1.0)
    live = predict_logits(model, data, PAD, 8, "cpu")
    assert out.logits.dtype == torch.float32 and torch.equal(out.logits, live)
    with torch.no_grad():  # row i is row i of the data, not of the length-sorted batches
        for i in (0, 5, 36):
            one = model(input_ids=torch.tensor([data.input_ids[i]])).logits[0]
            assert torch.allclose(out.logits[i], one, atol=1e-5)
    rows = torch.tensor([4, 0, 9])
    assert torch.equal(out.soft_targets(rows, 2.0), live[rows])
    with pytest.raises(ValueError, match="topk_distribution"):
        compute_teacher_outputs(model, data, PAD, 8, "cpu", 1, 1.0).soft_targets(rows)


def test_topk_distribution_sums_to_one_and_is_the_softmax_when_k_is_all_classes():
    model, data = tiny(0, num_labels=10), random_data(num_labels=10)
    full = compute_teacher_outputs(model, data, PAD, 8, "cpu", None, 2.0).logits
    rows = torch.arange(len(data))
    for k in (1, 3, 10):
        out = compute_teacher_outputs(model, data, PAD, 8, "cpu", k, 2.0)
        probs, rest, idx = out.topk_distribution(rows)
        assert probs.shape == (len(data), k) and rest.shape == (len(data),) and idx.dtype == torch.int64
        assert torch.allclose(probs.sum(-1) + rest, torch.ones(len(data)), atol=1e-6)
        reference = torch.softmax(full / 2.0, dim=-1)
        assert torch.allclose(probs, reference.gather(-1, idx), atol=1e-6)
        assert torch.allclose(rest, 1 - reference.gather(-1, idx).sum(-1), atol=1e-6)
        assert torch.equal(out.topk_values, full.gather(-1, idx))
        if k == 3:
            assert rest.min() > 0.05  # a real rest bucket
    assert rest.abs().max() < 1e-6  # k == C
    with pytest.raises(ValueError, match="stored at T=2.0"):
        out.topk_distribution(rows, temperature=1.0)


def test_damaged_cache_files_are_misses_not_crashes(tmp_path):
    model, data = tiny(0), random_data(12)
    cache = TeacherCache(tmp_path / "cache")
    out = compute_teacher_outputs(model, data, PAD, 4, "cpu", None, 1.0)
    path = cache.put("k", out)
    good = path.read_bytes()
    damaged = {
        "truncated": good[: len(good) - 20],
        "header only": good[:40],
        "empty": b"",
        "bit flip": good[:-5] + bytes([good[-5] ^ 0x40]) + good[-4:],
    }
    for what, blob in damaged.items():
        path.write_bytes(blob)
        with pytest.warns(UserWarning, match="unreadable"):
            assert cache.get("k") is None, what
    calls = []
    with pytest.warns(UserWarning, match="bit flip|checksum"):
        got, hit = get_or_compute(cache, "k", lambda: calls.append(1) or out)
    assert not hit and calls == [1] and torch.equal(cache.get("k").logits, out.logits)


def test_fidelity_check_passes_on_an_honest_cache_and_fails_on_another_teacher():
    teacher, data = tiny(0), random_data(50)
    honest = compute_teacher_outputs(teacher, data, PAD, 8, "cpu", None, 1.0)
    report = fidelity_check(teacher, data, honest, PAD, sample=16, seed=3)
    assert report["ok"] and report["rows"] == 16 and report["max_abs_diff"] < 1e-4 and report["top1_agreement"] == 1.0
    wrong = compute_teacher_outputs(tiny(1), data, PAD, 8, "cpu", None, 1.0)
    report = fidelity_check(teacher, data, wrong, PAD, sample=16, seed=3)
    assert not report["ok"] and report["max_abs_diff"] > 0.1
    topk = compute_teacher_outputs(teacher, data, PAD, 8, "cpu", 1, 2.0)
    assert fidelity_check(teacher, data, topk, PAD, sample=100)["rows"] == 50
    assert fidelity_check(teacher, data, topk, PAD)["ok"]
    assert not fidelity_check(tiny(1), data, topk, PAD)["ok"]


def test_put_is_atomic(tmp_path, monkeypatch):
    model, data = tiny(0), random_data(10)
    cache = TeacherCache(tmp_path / "cache")
    out = compute_teacher_outputs(model, data, PAD, 4, "cpu", None, 1.0)
    cache.put("k", out)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["k.safetensors"]
    import safetensors.torch

    def half_written(tensors, filename, metadata=None):
        open(filename, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", half_written)
    other = compute_teacher_outputs(tiny(1), data, PAD, 4, "cpu", None, 1.0)
    with pytest.raises(OSError, match="disk full"):
        cache.put("k", other)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["k.safetensors"]
    assert torch.equal(cache.get("k").logits, out.logits)  # the old entry is whole
    with pytest.warns(UserWarning, match="could not store"):  # a failed store does not lose the outputs
        got, hit = get_or_compute(cache, "new", lambda: other)
    assert got is other and not hit and not cache.path("new").exists()


def test_token_level_outputs_are_padded_per_row_and_checked_on_real_positions(tmp_path):
    model, data = tiny(0, num_labels=12, cls=BertForTokenClassification), random_data(20)
    longest = max(len(r) for r in data.input_ids)
    full = compute_teacher_outputs(model, data, PAD, 6, "cpu", None, 1.0)
    topk = compute_teacher_outputs(model, data, PAD, 6, "cpu", 4, 2.0)
    assert full.per_token and full.logits.shape == (20, longest, 12)
    assert topk.topk_values.shape == (20, longest, 4) and topk.rest_mass.shape == (20, longest)
    with torch.no_grad():
        for i in (0, 7, 19):
            n = len(data.input_ids[i])
            one = model(input_ids=torch.tensor([data.input_ids[i]])).logits[0]
            assert torch.allclose(full.logits[i, :n], one, atol=1e-5)
            assert full.logits[i, n:].abs().sum() == 0 and topk.rest_mass[i, n:].abs().sum() == 0
    probs, rest, _ = topk.topk_distribution(torch.tensor([3]))
    n = len(data.input_ids[3])
    assert torch.allclose(probs[0, :n].sum(-1) + rest[0, :n], torch.ones(n), atol=1e-6)
    cache = TeacherCache(tmp_path)
    assert torch.equal(cache.get(cache.put("t", topk).stem).topk_indices, topk.topk_indices)
    assert fidelity_check(model, data, full, PAD)["ok"] and fidelity_check(model, data, topk, PAD)["ok"]


def test_bf16_autocast_outputs_are_float32_and_need_a_looser_atol():
    model, data = tiny(0, num_labels=10), random_data(16)
    out = compute_teacher_outputs(model, data, PAD, 8, "cpu", None, 1.0, autocast_dtype=torch.bfloat16)
    assert out.logits.dtype == torch.float32 and out.autocast == "bfloat16"
    strict = fidelity_check(model, data, out, PAD)
    assert not strict["ok"] and strict["max_abs_diff"] < 0.5
    assert fidelity_check(model, data, out, PAD, atol=0.5)["ok"]


def test_default_top_k_and_argument_checks():
    assert default_top_k(2) is None and default_top_k(1024) is None and default_top_k(30522) == 64
    with pytest.raises(ValueError):
        CachedOutputs()
    with pytest.raises(ValueError):
        CachedOutputs(topk_values=torch.zeros(3, 2), topk_indices=torch.zeros(3, 2, dtype=torch.int32), rest_mass=torch.zeros(2))
    model, data = tiny(0), random_data(4)
    with pytest.raises(Exception, match="top_k must be in 1..2"):
        compute_teacher_outputs(model, data, PAD, 4, "cpu", 3, 1.0)
    with pytest.raises(Exception, match="temperature must be > 0"):
        compute_teacher_outputs(model, data, PAD, 4, "cpu", None, 0.0)
    with pytest.raises(Exception, match="no rows"):
        compute_teacher_outputs(model, Encoded([], []), PAD, 4, "cpu", None, 1.0)
