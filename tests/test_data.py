import pytest

from compress import data
from compress.config import DataConfig
from compress.data import LengthGroupedBatches, generate_sentiment, load_split
from compress.errors import CompressError


def test_tsv_folder_is_read_with_quotes_kept(tmp_path):
    (tmp_path / "train.tsv").write_text('sentence\tlabel\na "quoted" film\t1\nbad\t0\n')
    split = load_split(DataConfig(source=str(tmp_path)), "train", num_labels=2)
    assert split.texts == ['a "quoted" film', "bad"] and split.labels == [1, 0]


def test_jsonl_and_csv(tmp_path):
    (tmp_path / "test.jsonl").write_text('{"text": "x", "y": 1}\n{"text": "z", "y": 0}\n')
    (tmp_path / "train.jsonl").write_text('{"text": "a", "y": 0}\n')  # every split's labels are read as the training split's
    split = load_split(DataConfig(source=str(tmp_path), text_column="text", label_column="y"), "test", 2)
    assert split.labels == [1, 0]
    (tmp_path / "dev.csv").write_text("sentence,label\nhello,1\n")
    (tmp_path / "train.jsonl").write_text('{"sentence": "a", "label": 0}\n')
    assert load_split(DataConfig(source=str(tmp_path)), "dev", 2).texts == ["hello"]


def test_missing_column_lists_the_columns_found(tmp_path):
    (tmp_path / "train.tsv").write_text("text\tlabel\nx\t1\n")
    with pytest.raises(CompressError, match=r"column 'sentence' not in split 'train' \(.*train.tsv; columns found: text, label\)"):
        load_split(DataConfig(source=str(tmp_path)), "train", 2)


def test_labels_outside_the_label_set(tmp_path):
    (tmp_path / "train.tsv").write_text("sentence\tlabel\nx\t1\ny\t3\nz\tpos\n")
    with pytest.raises(CompressError, match=r"2 label\(s\) in split 'train' \(.*train.tsv\) are not integers in 0..1"):
        load_split(DataConfig(source=str(tmp_path)), "train", 2)


def test_missing_split_file_says_what_is_there(tmp_path):
    (tmp_path / "train.tsv").write_text("sentence\tlabel\nx\t1\n")
    with pytest.raises(CompressError, match=r"no file for split 'test'.*found: train.tsv"):
        load_split(DataConfig(source=str(tmp_path)), "test", 2)


def test_limit_after_seeded_shuffle_is_reproducible(tmp_path):
    rows = "".join(f"s{i}\t{i % 2}\n" for i in range(100))
    (tmp_path / "train.tsv").write_text("sentence\tlabel\n" + rows)
    cfg = DataConfig(source=str(tmp_path))
    a = load_split(cfg, "train", 2, seed=3, limit=10, shuffle=True)
    b = load_split(cfg, "train", 2, seed=3, limit=10, shuffle=True)
    c = load_split(cfg, "train", 2, seed=4, limit=10, shuffle=True)
    assert a.texts == b.texts and a.texts != c.texts and len(a) == 10


def test_generated_task_is_balanced_and_deterministic():
    rows = generate_sentiment(1000, seed=1)
    assert rows == generate_sentiment(1000, seed=1)
    share = sum(r["label"] for r in rows) / len(rows)
    assert 0.4 < share < 0.6


def test_length_grouped_batches_cover_every_row_once():
    lengths = [(i * 7) % 23 + 1 for i in range(1000)]
    sampler = LengthGroupedBatches(lengths, batch_size=32, seed=0)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert len(batches) == len(sampler)
    # padding waste is far below random batching
    waste = sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)
    assert waste < 0.1 * sum(lengths)
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_hub_dataset_id_goes_through_datasets(monkeypatch):
    """No hub here: check that a hub id reaches datasets.load_dataset with subset and split."""
    import datasets

    calls = []

    def fake_load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        return datasets.Dataset.from_dict({"idx": [0, 1], "sentence": ["fine", "dull"], "label": [1, 0]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(data, "_LABEL_SETS", {})  # decided once per training split and process
    split = load_split(DataConfig(source="glue", subset="sst2"), "validation", 2)
    assert calls == [("glue", "sst2", "validation"), ("glue", "sst2", "train")]  # the labels: as the training split's
    assert split.texts == ["fine", "dull"] and split.labels == [1, 0]


def test_unreachable_hub_is_one_sentence(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(CompressError, match=r"data.source: could not load hub dataset 'glue'.*Couldn't reach"):
        load_split(DataConfig(source="glue", subset="sst2"), "train", 2)


def test_shards_split_every_global_batch_and_skip_resumes():
    lengths = [(i * 7) % 23 + 1 for i in range(101)]
    whole = list(LengthGroupedBatches(lengths, batch_size=8, seed=0))
    halves = [list(LengthGroupedBatches(lengths, batch_size=8, seed=0, num_shards=2, shard=s)) for s in (0, 1)]
    assert len(halves[0]) == len(halves[1]) == len(whole)
    for full, a, b in zip(whole, *halves):
        assert sorted(a + b) == sorted(full)
    sampler = LengthGroupedBatches(lengths, batch_size=8, seed=0)
    sampler.skip = 3
    assert list(sampler) == whole[3:]
    assert list(sampler) == whole  # skip applies once
