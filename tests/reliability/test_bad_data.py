"""Bad data: refused before the run writes anything, one line naming the file or key and what was found;
doubtful data (duplicates between training and evaluation, unused labels, long sentences) warned with counts."""

from __future__ import annotations

import pytest
from rich.console import Console

from compress.data import count_truncated
from compress.models import train_wordlevel_tokenizer
from compress.preflight import check_data
from compress.tasks import load_config

from ..conftest import ROOT, invoke

TINY = ROOT / "pipelines" / "tiny.yaml"
ROWS = [("a good warm film", 1), ("a dull flat film", 0), ("great fun", 1), ("awful and boring", 0)] * 10


def tsv(rows, header="sentence\tlabel"):
    return header + "\n" + "".join(f"{t}\t{y}\n" for t, y in rows)


def folder(tmp_path, train=None, test=None, name="data"):
    d = tmp_path / name
    d.mkdir()
    for split, text in (("train", train), ("test", test)):
        if text is not None:
            (d / f"{split}.tsv").write_bytes(text if isinstance(text, bytes) else text.encode())
    return d


# (id, train file, test file, overrides, what the error line must contain)
BAD = [
    ("missing-text-column", tsv(ROWS, "text\tlabel"), tsv(ROWS), [],
     "data.text_column: column 'sentence' not in split 'train' ({data}/train.tsv; columns found: text, label)"),
    ("misnamed-label-column", tsv(ROWS, "sentence\ty"), tsv(ROWS), [],
     "data.label_column: column 'label' not in split 'train' ({data}/train.tsv; columns found: sentence, y)"),
    ("column-setting-wrong", tsv(ROWS), tsv(ROWS), ["data.text_column=review"],
     "data.text_column: column 'review' not in split 'train' ({data}/train.tsv; columns found: sentence, label)"),
    ("empty-train-split", "sentence\tlabel\n", tsv(ROWS), [], "split 'train' of"),
    ("zero-byte-eval-split", tsv(ROWS), "", [], "data: split 'test' of"),
    ("missing-eval-file", tsv(ROWS), None, [], "data: no file for split 'test'"),
    ("label-outside-label-set", tsv(ROWS + [("x", 2)]), tsv(ROWS), [],
     "data: 1 label(s) in split 'train' ({data}/train.tsv) are not integers in 0..1 (teacher.num_labels: 2); first: "
     "row 41: '2'"),
    ("label-not-an-integer", tsv(ROWS), tsv(ROWS + [("x", "positive")]), [], "first: row 41: 'positive'"),
    ("label-negative", tsv(ROWS + [("x", -1)]), tsv(ROWS), [], "not integers in 0..1"),
    ("label-missing-in-row", tsv(ROWS) + "no tab here\n", tsv(ROWS), [],
     "{data}/train.tsv:42: 1 field(s), but the header (line 1) has 2 (sentence, label); a field missing?"),
    ("not-utf8-text", tsv(ROWS).encode() + b"caf\xe9 cr\xe8me\t1\n", tsv(ROWS), [], "not UTF-8 text (invalid continuation byte"),
    ("latin1-bom", b"\xff\xfe" + tsv(ROWS).encode("utf-16-le"), tsv(ROWS), [], "not UTF-8 text"),
]


@pytest.mark.parametrize("train, test, overrides, expected", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_data_is_one_line_exit_2_before_anything_is_written(tmp_path, train, test, overrides, expected):
    """compress validate finds it as compress run does, with the same line; neither writes anything."""
    data = folder(tmp_path, train, test)
    before = sorted(tmp_path.rglob("*"))
    runs = tmp_path / "runs"
    for command in (["validate"], ["run", "--runs-dir", runs]):
        result = invoke(*command, TINY, f"data.source={data}", f"ship.dir={tmp_path / 'exports'}", *overrides)
        assert result.exit_code == 2, result.output + (result.stderr or "")
        lines = result.stderr.strip().splitlines()
        assert all(line.startswith("error: ") for line in lines), lines
        assert any(expected.format(data=data) in line for line in lines), lines
        assert "Traceback" not in result.output + result.stderr
        assert sorted(tmp_path.rglob("*")) == before  # no run folder, no bundle, nothing beside the data


def test_non_utf8_names_the_file_and_byte(tmp_path):
    data = folder(tmp_path, tsv(ROWS).encode() + b"caf\xe9\t1\n", tsv(ROWS))
    result = invoke("run", TINY, f"data.source={data}", "--runs-dir", tmp_path / "runs")
    assert f"error: {data / 'train.tsv'}:42: not UTF-8 text (invalid continuation byte at byte 708)" in result.stderr


def test_invalid_jsonl_line_is_named(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text('{"sentence": "good", "label": 1}\n{"sentence": "bad", "label": 0\n')
    (data / "test.tsv").write_text(tsv(ROWS))
    result = invoke("run", TINY, f"data.source={data}", "quantize.variants.1.calibration.samples=1", "--runs-dir",
                    tmp_path / "runs")
    assert result.exit_code == 2
    assert f"error: {data / 'train.jsonl'}:2: invalid JSON" in result.stderr


def check(cfg_overrides, data_dir):
    console = Console(record=True, width=400)
    cfg = load_config(TINY, [f"data.source={data_dir}", "quantize.variants.1.calibration.samples=2", *cfg_overrides])
    summary = check_data(cfg, console)
    return summary, console.export_text()


def test_duplicates_between_train_and_eval_are_warned_with_the_count(tmp_path):
    train = [(f"sentence number {i} is fine", i % 2) for i in range(100)]
    test = [(f"sentence number {i} is fine", i % 2) for i in range(90, 110)] + [("  sentence number 5 is fine ", 1)]
    summary, out = check([], folder(tmp_path, tsv(train), tsv(test)))
    assert summary["eval_duplicates"] == 11
    assert "warning data: 11 of 21 evaluation sentences (52.4%) also appear in the training split 'train'" in out


def test_duplicates_with_the_validation_split_too(tmp_path):
    d = folder(tmp_path, tsv(ROWS[:4]), tsv([("unseen", 1), ("words", 0)]))
    (d / "dev.tsv").write_text(tsv(ROWS[:2] + [("new", 0)]))
    summary, out = check(["data.validation_split=dev"], d)
    assert summary["eval_duplicates"] == 0 and summary["validation_duplicates"] == 2
    assert "2 of 3 validation sentences also appear in the training split" in out
    assert "evaluation sentences" not in out


def test_a_label_count_that_differs_from_the_head_is_warned(tmp_path):
    summary, out = check(["teacher.num_labels=3"], folder(tmp_path, tsv(ROWS), tsv(ROWS)))
    assert summary["labels_in_train"] == 2
    assert "teacher.num_labels is 3, but no training row has label 2 (the training split uses 2 of 3 labels)" in out


def test_clean_data_gives_no_warning(tmp_path):
    summary, out = check([], folder(tmp_path, tsv(ROWS[:4]), tsv([("unseen", 1), ("words", 0)])))
    assert summary == {"train_rows": 4, "eval_rows": 2, "eval_duplicates": 0, "labels_in_train": 2}
    assert "warning" not in out


def test_sentences_longer_than_the_limit_are_counted():
    texts = ["short one", " ".join(["word"] * 50), " ".join(["word"] * 9)]
    tok = train_wordlevel_tokenizer(texts, max_length=512)
    counts = count_truncated(tok, texts, 10)  # [CLS] + words + [SEP]: 4, 52 and 11 tokens
    assert counts == {"rows": 3, "truncated": 2, "longest_tokens": 52}
    assert count_truncated(tok, [], 10) == {"rows": 0, "truncated": 0, "longest_tokens": 0}


def test_truncation_is_in_the_teacher_stage_and_the_report():
    from compress.reports.accuracy import data_lines
    from compress.tasks.classification.teacher import data_summary

    cfg = load_config(TINY, ["data.max_length=8", "data.generated_size=200"])
    from compress.data import eval_split, train_split

    train = train_split(cfg)
    tok = train_wordlevel_tokenizer(train.texts, max_length=8)
    console = Console(record=True, width=400)
    data = data_summary(cfg, tok, train, console)
    assert data["max_length"] == 8 and data["train"]["rows"] == 200
    assert 0 < data["train"]["truncated"] < 200 and data["train"]["longest_tokens"] > 8
    seen = {s.strip() for s in train.texts}
    assert data["eval"]["train_duplicates"] == sum(s.strip() in seen for s in eval_split(cfg).texts)
    out = console.export_text()
    assert f"warning data: {data['train']['truncated']} of 200 train sentences are longer than data.max_length (8" in out
    line = data_lines(data)[1]
    assert line.startswith("Data (data.max_length 8 tokens): train 200 sentences, ") and "truncated" in line


# ----------------------------------------------------------------------------- the loader on odd files

ODD = [  # (file name, content, None when it loads, else what the error line contains)
    ("train.tsv", "sentence\tlabel\n" + "x" * 200_000 + "\t1\n", None),  # a field past csv's 128 KiB default limit
    ("train.tsv", "\ufeffsentence\tlabel\na\t1\n", None),  # a byte-order mark is not part of the first column's name
    ("train.tsv", "sentence\tlabel\r\na\t1\r\n", None),
    ("train.csv", 'sentence,label\n"unterminated,1\n', "train.csv:2: a quoted field opened on this line is never closed"),
    ("train.jsonl", "[1, 2]\n", "train.jsonl: line 1 is a JSON list; expected an object"),
    ("train.jsonl", '{"sentence": "a", "label": 1}\n3\n', "train.jsonl: line 2 is a JSON int"),
    ("train.jsonl", '{"sentence": "a", "label": 1}\n\n{"sentence": "b", "label": 0\n', "train.jsonl:3: invalid JSON"),
    ("train.jsonl", '{"sentence": "a", "label": 1}\n{"label": 0}\n', None),  # a missing text is an empty sentence
    ("train.jsonl", '{"sentence": "a", "label": 1}\n{"sentence": "b"}\n', "first: row 2: None"),
    ("train.jsonl", '{"sentence": "a", "label": true}\n', "first: row 1: True"),
    ("train.jsonl", '{"sentence": "a", "label": 1.5}\n', "first: row 1: 1.5"),
    ("train.jsonl", '{"sentence": "a", "label": 1e400}\n', "first: row 1: inf"),
    ("train.jsonl", '{"sentence": "a", "label": NaN}\n', "first: row 1: nan"),
    ("train.jsonl", '{"sentence": ["a"], "label": 1}\n', "data.text_column: 1 value(s) of column 'sentence' in split "
                                                         "'train' ("),
    ("train.json", "3", "train.json: expected a JSON list of objects"),
    ("train.json", "[1, 2]", "train.json: item 0 is a JSON int"),
    ("train.json", '{"data": [{"sentence": "a", "label": 0}]}', None),
]


@pytest.mark.parametrize("name, content, expected", ODD, ids=[f"{i}-{o[0]}" for i, o in enumerate(ODD)])
def test_odd_files_load_or_are_one_line_naming_the_file(tmp_path, name, content, expected):
    from compress.config import DataConfig
    from compress.data import load_split
    from compress.errors import CompressError

    (tmp_path / name).write_text(content, encoding="utf-8")
    if expected is None:
        split = load_split(DataConfig(source=str(tmp_path)), "train", 2)
        assert len(split) >= 1 and all(isinstance(t, str) for t in split.texts)
        return
    with pytest.raises(CompressError) as info:
        load_split(DataConfig(source=str(tmp_path)), "train", 2)
    assert any(expected in p for p in info.value.problems), info.value.problems
    if "value(s) of column" in expected:  # the file, then what is wrong with it
        assert info.value.problems == [f"{expected}{tmp_path / name}) are not text; first: row 1: list"]


def test_random_split_files_give_only_compress_errors(tmp_path_factory):
    """hypothesis: random bytes and random rows in a .tsv / .csv / .jsonl / .json split either load or raise
    CompressError, never anything else."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from compress.config import DataConfig
    from compress.data import load_split
    from compress.errors import CompressError

    root = tmp_path_factory.mktemp("datafuzz")
    cells = st.one_of(st.text(max_size=20), st.sampled_from(["0", "1", "2", "-1", "1.0", "", "\t", ",", '"', "\n",
                                                              "\x00", "\ufeff", "null", "[1]", "{}", "1e400", "NaN"]))

    @settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from([".tsv", ".csv", ".jsonl", ".json"]),
           st.one_of(st.binary(max_size=300),
                     st.lists(st.lists(cells, min_size=0, max_size=4), max_size=6).map(
                         lambda rows: "\n".join("\t".join(r) for r in [["sentence", "label"], *rows]).encode())))
    def check(suffix, data):
        for old in root.iterdir():
            old.unlink()
        (root / f"train{suffix}").write_bytes(data)
        try:
            load_split(DataConfig(source=str(root)), "train", 2)
        except CompressError as exc:
            assert exc.problems

    check()
