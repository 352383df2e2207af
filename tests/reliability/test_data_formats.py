"""Data users really have (issue 27): files without a header row (data.columns), labels written 1.0, every parse
error of every format as one line naming the file and line, labels that look 1-based, a column or file given twice,
and settings that used to be accepted silently (the evaluation split = the training split, the text column = the
label column). `compress validate` and `compress run` print the same line, exit 2 and write nothing."""

from __future__ import annotations

import json
import random

import pytest

from compress.config import DataConfig
from compress.data import load_split
from compress.errors import CompressError

from ..conftest import FAST, ROOT, invoke, read_json

TINY = ROOT / "pipelines" / "tiny.yaml"
ROWS = [("a good warm film", 1), ("a dull flat film", 0), ("great fun", 1), ("awful and boring", 0)] * 10
NAMES = {1: "World", 2: "Sports", 3: "Business", 4: "Sci/Tech"}
WORDS = {1: "treaty summit minister election border", 2: "match goal cup coach season",
         3: "shares profit market bank merger", 4: "software rocket chip internet satellite"}


def tsv(rows, header="sentence\tlabel"):
    return (header + "\n" if header else "") + "".join(f"{t}\t{y}\n" for t, y in rows)


def csv(rows, header="sentence,label"):
    return (header + "\n" if header else "") + "".join(f'"{t}",{y}\n' for t, y in rows)


def jsonl(rows):
    return "".join(json.dumps({"sentence": t, "label": y}) + "\n" for t, y in rows)


def news(n, seed=0):
    """A 4-class news corpus as AG News publishes it: (label 1..4, title, description), no header. Only the
    description tells the class (the titles are alike), so a model that learns reads the right column."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = i % 4 + 1
        words = WORDS[label].split()
        text = " ".join(rng.choice(words) for _ in range(6)) + f", officials said on day {rng.randint(1, 28)}."
        out.append((label, f"Report number {rng.randint(1, 999)} (Reuters)", text))
    return out


def news_csv(rows):  # as published: every field quoted, labels 1..4
    return "".join(f'"{a}","{b}","{c}"\n' for a, b, c in rows)


def news_tsv(rows):  # labels as names
    return "".join(f"{NAMES[a]}\t{b}\t{c}\n" for a, b, c in rows)


NEWS = news(40)
COLUMNS = "data.columns=[label,title,sentence]"
DEEP = '{"sentence": "x", "label": ' + "[" * 100_000 + "]" * 100_000 + "}"

# (kind, id, files {name: text or bytes}, overrides, the line expected on stderr; {data} is the data folder)
REFUSED = [
    ("header-less", "news-csv-as-published", {"train.csv": news_csv(NEWS), "test.csv": news_csv(NEWS[:8])},
     ["teacher.num_labels=4"],
     "error: data: {data}/train.csv has no column 'sentence' or 'label'; its first row looks like data, not a header "
     "('1', 'Report number "),
    ("header-less", "news-tsv-names", {"train.tsv": news_tsv(NEWS), "test.tsv": news_tsv(NEWS[:8])},
     ["teacher.num_labels=4"], "name its 3 columns with data.columns (e.g. data.columns: [label, column2, sentence])"),
    ("header-less", "sentence-then-name", {"train.tsv": "".join(f"{c}\t{NAMES[a]}\n" for a, b, c in NEWS),
                                           "test.tsv": tsv(ROWS)}, ["teacher.num_labels=4"],
     "its first row looks like data, not a header ("),
    ("header-less", "columns-but-a-header", {"train.tsv": "label\ttitle\tsentence\n" + news_tsv(NEWS),
                                             "test.tsv": news_tsv(NEWS[:8])}, ["teacher.num_labels=4", COLUMNS],
     "error: data.columns: {data}/train.tsv has a header row (label, title, sentence), but data.columns is for files "
     "without one"),
    ("header-less", "columns-row-with-4-fields", {"train.tsv": news_tsv(NEWS) + "World\ta\tb\tc\n",
                                                  "test.tsv": news_tsv(NEWS[:8])}, ["teacher.num_labels=4", COLUMNS],
     "error: {data}/train.tsv:41: 4 field(s), but data.columns names 3 (label, title, sentence); a tab inside the text?"),
    ("header-less", "columns-without-the-text", {"train.tsv": news_tsv(NEWS), "test.tsv": news_tsv(NEWS[:8])},
     ["teacher.num_labels=4", "data.columns=[label,title,body]"],
     "error: data.text_column: 'sentence' is not one of data.columns (label, title, body)"),
    ("header-less", "columns-named-twice", {"train.tsv": news_tsv(NEWS), "test.tsv": news_tsv(NEWS[:8])},
     ["teacher.num_labels=4", "data.columns=[label,sentence,sentence]"],
     "error: data.columns: each column once, got sentence more than once"),
    ("header-less", "columns-with-jsonl", {"train.jsonl": jsonl(ROWS), "test.tsv": tsv(ROWS)},
     ["data.columns=[sentence,label]"],
     "error: data.columns: names the columns of .tsv/.csv files without a header row; {data}/train.jsonl is JSON lines"),
    ("header-less", "columns-with-generated", None, ["data.columns=[sentence,label]"],
     "error: data.columns: names the columns of header-less .tsv/.csv files in a local folder; data.source is the "
     "generated task"),
    ("1.0-labels", "tsv-1.5", {"train.tsv": tsv([(t, f"{y}.5") for t, y in ROWS]), "test.tsv": tsv(ROWS)}, [],
     "error: data: 40 label(s) in split 'train' ({data}/train.tsv) are numbers that are not whole; first: row 1: "
     "'1.5', row 2: '0.5', row 3: '1.5'; class labels are integer ids (0, 1, ...; 1.0 reads as 1)"),
    ("1.0-labels", "one-1.5-among-integers", {"train.tsv": tsv(ROWS + [("odd", "1.5")]), "test.tsv": tsv(ROWS)}, [],
     "are numbers that are not whole; first: row 41: '1.5'"),
    ("1.0-labels", "jsonl-0.5", {"train.jsonl": jsonl([(t, y + 0.5) for t, y in ROWS]), "test.tsv": tsv(ROWS)}, [],
     "are numbers that are not whole; first: row 1: 1.5"),
    ("1.0-labels", "1.5-in-eval", {"train.tsv": tsv(ROWS), "test.tsv": tsv(ROWS + [("odd", "1.5")])}, [],
     "error: data: 1 label(s) in split 'test' ({data}/test.tsv) are not integers in 0..1 (teacher.num_labels: 2); "
     "first: row 41: '1.5'"),
    ("parse", "jsonl-nested-100000-deep", {"train.jsonl": jsonl(ROWS) + DEEP + "\n", "test.tsv": tsv(ROWS)}, [],
     "error: {data}/train.jsonl:41: JSON nested deeper than the reader allows"),
    ("parse", "json-nested-100000-deep", {"train.json": "[" + jsonl(ROWS[:1]).strip() + ",\n" + DEEP + "]",
                                          "test.tsv": tsv(ROWS)}, [],
     "error: {data}/train.json:2: JSON nested deeper than the reader allows"),
    ("parse", "csv-quote-inside-a-field", {"train.csv": csv(ROWS) + '"abc"def,1\n', "test.csv": csv(ROWS)}, [],
     "error: {data}/train.csv:42: bad CSV quoting (',' expected after '\"')"),
    ("parse", "csv-quote-never-closed", {"train.csv": csv(ROWS) + '"unterminated,1\nmore,0\n', "test.csv": csv(ROWS)},
     [], "error: {data}/train.csv:42: a quoted field opened on this line is never closed"),
    ("parse", "tsv-row-with-3-fields", {"train.tsv": tsv(ROWS) + "a\tb\t1\n", "test.tsv": tsv(ROWS)}, [],
     "error: {data}/train.tsv:42: 3 field(s), but the header (line 1) has 2 (sentence, label); a tab inside the text?"),
    ("parse", "csv-row-with-3-fields", {"train.csv": csv(ROWS) + "a,b,1\n", "test.csv": csv(ROWS)}, [],
     "error: {data}/train.csv:42: 3 field(s), but the header (line 1) has 2 (sentence, label); a comma inside an "
     "unquoted field?"),
    ("parse", "csv-row-with-1-field", {"train.csv": csv(ROWS), "test.csv": csv(ROWS) + "lonely\n"}, [],
     "error: {data}/test.csv:42: 1 field(s), but the header (line 1) has 2 (sentence, label); a field missing?"),
    ("parse", "tsv-not-utf8", {"train.tsv": tsv(ROWS).encode() + b"caf\xe9\t1\n" + tsv(ROWS[:3], None).encode(),
                               "test.tsv": tsv(ROWS)}, [],
     "error: {data}/train.tsv:42: not UTF-8 text (invalid continuation byte at byte 708)"),
    ("parse", "jsonl-not-utf8", {"train.jsonl": jsonl(ROWS).encode() + b'{"sentence": "caf\xe9", "label": 1}\n',
                                 "test.tsv": tsv(ROWS)}, [], "error: {data}/train.jsonl:41: not UTF-8 text"),
    ("parse", "json-not-utf8", {"train.json": b'[{"sentence": "a", "label": 1},\n{"sentence": "caf\xe9", "label": 1}]',
                                "test.tsv": tsv(ROWS)}, [], "error: {data}/train.json:2: not UTF-8 text"),
    ("parse", "json-invalid", {"train.json": '[{"sentence": "a", "label": 1},\n{"sentence": "b", "label": 0}',
                               "test.tsv": tsv(ROWS)}, [],
     "error: {data}/train.json:2: invalid JSON: Expecting ',' delimiter (column 30)"),
    ("parse", "jsonl-lone-surrogate", {"train.jsonl": jsonl(ROWS) + '{"sentence": "bad \\ud800", "label": 1}\n',
                                       "test.tsv": tsv(ROWS)}, [],
     "error: {data}/train.jsonl:41: 'sentence' holds a lone surrogate escape (\\ud800), which is not Unicode text"),
    ("1-based", "labels-1-2", {"train.tsv": tsv([(t, y + 1) for t, y in ROWS]), "test.tsv": tsv(ROWS)}, [],
     "first: row 1: '2', row 3: '2', row 5: '2'; the labels look 1-based (the training split holds exactly 1..2): "
     "subtract 1 from every label, or set data.labels: [1, 2]"),
    ("1-based", "news-1-4-with-columns", {"train.csv": news_csv(NEWS), "test.csv": news_csv(NEWS[:8])},
     ["teacher.num_labels=4", COLUMNS],
     "are not integers in 0..3 (teacher.num_labels: 4); first: row 4: '4', row 8: '4', row 12: '4'; the labels look "
     "1-based (the training split holds exactly 1..4): subtract 1 from every label, or set data.labels: [1, 2, 3, 4]"),
    ("1-based", "1-4-named-by-data.labels", {"train.csv": news_csv(NEWS), "test.csv": news_csv(NEWS[:8])},
     ["teacher.num_labels=4", COLUMNS, "data.labels=[World,Sports,Business,Sci/Tech]"],
     "the labels look 1-based (the training split holds exactly 1..4)"),
    ("duplicates", "tsv-label-column-twice", {"train.tsv": tsv([(t, f"{y}\t{1 - y}") for t, y in ROWS],
                                                               "sentence\tlabel\tlabel"), "test.tsv": tsv(ROWS)}, [],
     "error: {data}/train.tsv:1: column 'label' appears twice in the header (columns 2 and 3)"),
    ("duplicates", "csv-sentence-column-twice", {"train.csv": "sentence,label,sentence\n" + "".join(
        f"{t},{y},other\n" for t, y in ROWS), "test.csv": csv(ROWS)}, [],
     "error: {data}/train.csv:1: column 'sentence' appears twice in the header (columns 1 and 3)"),
    ("duplicates", "jsonl-key-twice", {"train.jsonl": jsonl(ROWS) + '{"sentence": "a", "label": 1, "label": 0}\n',
                                       "test.tsv": tsv(ROWS)}, [],
     "error: {data}/train.jsonl:41: key 'label' appears twice in one object"),
    ("duplicates", "json-key-twice", {"train.json": '[{"sentence": "a", "sentence": "b", "label": 1}]',
                                      "test.tsv": tsv(ROWS)}, [],
     "error: {data}/train.json: item 0: key 'sentence' appears twice in one object"),
    ("duplicates", "train.tsv-and-train.csv", {"train.tsv": tsv(ROWS), "train.csv": csv(ROWS), "test.tsv": tsv(ROWS)},
     [], "error: data: split 'train' has 2 files in {data}: train.tsv and train.csv; keep one"),
    ("duplicates", "test.jsonl-and-test.json", {"train.tsv": tsv(ROWS), "test.jsonl": jsonl(ROWS),
                                                "test.json": json.dumps([{"sentence": "x", "label": 0}])}, [],
     "error: data: split 'test' has 2 files in {data}: test.jsonl and test.json; keep one"),
    ("silent", "eval-split-is-the-train-split", {"train.tsv": tsv(ROWS), "test.tsv": tsv(ROWS)},
     ["data.eval_split=train"], "error: data.eval_split: 'train' is also data.train_split; a model is judged on rows "
                                "it has not trained on"),
    ("silent", "eval-file-links-to-train-file", {"train.tsv": tsv(ROWS), "test.tsv": "@train.tsv"}, [],
     "error: data: split 'test' is read from {data}/test.tsv, which is the training split's file ({data}/train.tsv)"),
    ("silent", "validation-split-is-the-train-split", {"train.tsv": tsv(ROWS), "test.tsv": tsv(ROWS)},
     ["data.validation_split=train"], "error: data.validation_split: 'train' is also data.train_split"),
    ("silent", "generated-eval-is-train", None, ["data.eval_split=train"],
     "error: data.eval_split: 'train' is also data.train_split"),
    ("silent", "text-column-is-the-label-column", {"train.tsv": tsv(ROWS), "test.tsv": tsv(ROWS)},
     ["data.text_column=label"], "error: data.text_column: 'label' is also data.label_column; the model would read "
                                 "its answer"),
]


def make(tmp_path, files):
    """The data folder of a case (None: the generated task)."""
    if files is None:
        return "generated"
    data = tmp_path / "data"
    data.mkdir()
    for name, content in files.items():
        if isinstance(content, str) and content.startswith("@"):
            (data / name).symlink_to(content[1:])
        elif isinstance(content, bytes):
            (data / name).write_bytes(content)
        else:
            (data / name).write_text(content, encoding="utf-8")
    return data


@pytest.mark.parametrize("files, overrides, expected", [c[2:] for c in REFUSED], ids=[f"{c[0]}:{c[1]}" for c in REFUSED])
def test_validate_and_run_refuse_with_the_same_line(tmp_path, files, overrides, expected):
    data = make(tmp_path, files)
    before = sorted(tmp_path.rglob("*"))
    common = [f"data.source={data}", f"ship.dir={tmp_path / 'exports'}", "quantize.variants.1.calibration.samples=1",
              *overrides]
    outputs = []
    for command in (["validate", TINY], ["run", TINY, "--runs-dir", tmp_path / "runs"]):
        result = invoke(*command, *common)
        assert result.exit_code == 2, result.output + (result.stderr or "")
        assert "Traceback" not in result.output + result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
        assert expected.format(data=data) in lines[0], lines
        outputs.append(lines[0].removeprefix(f"error: {TINY}: "))  # validate of one file prints run's line
        assert sorted(tmp_path.rglob("*")) == before  # no run folder, no bundle, nothing beside the data
    assert outputs[0] == outputs[1]


# ----------------------------------------------------------------------------- read, not refused


def split(tmp_path, files, split_name="train", num_labels=2, **settings):
    data = make(tmp_path, files)
    return load_split(DataConfig(source=str(data), **settings), split_name, num_labels)


def test_header_less_news_csv_is_read_row_for_row(tmp_path):
    """Every line is a row (the first too), the text is the description column, labels 1..4 named by data.labels."""
    rows = news(12)
    got = split(tmp_path, {"train.csv": news_csv(rows)}, num_labels=4, columns=["label", "title", "sentence"],
                labels=["1", "2", "3", "4"])
    assert got.texts == [c for _, _, c in rows]
    assert got.labels == [a - 1 for a, _, _ in rows] and got.names == ("1", "2", "3", "4")


def test_header_less_tsv_with_label_names(tmp_path):
    rows = news(12)
    got = split(tmp_path, {"train.tsv": news_tsv(rows)}, num_labels=4, columns=["label", "title", "text"],
                text_column="title")
    assert got.texts == [b for _, b, _ in rows]
    assert got.names == ("Business", "Sci/Tech", "Sports", "World")  # names sorted
    assert [got.names[i] for i in got.labels] == [NAMES[a] for a, _, _ in rows]


@pytest.mark.parametrize("files, labels", [
    ({"train.tsv": tsv([(t, f"{y}.0") for t, y in ROWS])}, [y for _, y in ROWS]),
    ({"train.tsv": tsv([(t, f"{y}.0" if i % 2 else y) for i, (t, y) in enumerate(ROWS)])}, [y for _, y in ROWS]),
    ({"train.csv": csv([(t, f"{y}.00") for t, y in ROWS])}, [y for _, y in ROWS]),
    ({"train.jsonl": jsonl([(t, f"{y}.0") for t, y in ROWS])}, [y for _, y in ROWS]),
    ({"train.jsonl": jsonl([(t, float(y)) for t, y in ROWS])}, [y for _, y in ROWS]),
], ids=["tsv-1.0", "tsv-1-and-0.0", "csv-1.00", "jsonl-text-1.0", "jsonl-number-1.0"])
def test_whole_number_labels_are_ids(tmp_path, files, labels):
    got = split(tmp_path, files)
    assert got.labels == labels and got.names == ()  # ids, not the names "0.0" and "1.0"


def test_1_0_labels_match_data_labels_names(tmp_path):
    got = split(tmp_path, {"train.tsv": tsv([(t, f"{y + 1}.0") for t, y in ROWS])}, labels=["1", "2"])
    assert got.labels == [y for _, y in ROWS]


def test_the_1_based_hint_is_a_way_out(tmp_path):
    """Following the hint (data.labels: [1, 2]) reads labels 1..2 as classes 0..1 in every split."""
    files = {"train.tsv": tsv([(t, y + 1) for t, y in ROWS]), "test.tsv": tsv([(t, y + 1) for t, y in ROWS[:4]])}
    got = split(tmp_path, files, "test", labels=["1", "2"])
    assert got.labels == [y for _, y in ROWS[:4]] and got.names == ("1", "2")


def test_labels_as_fractions_read_as_names_when_listed(tmp_path):
    got = split(tmp_path, {"train.tsv": tsv([(t, f"{y}.5") for t, y in ROWS])}, labels=["0.5", "1.5"])
    assert got.labels == [y for _, y in ROWS]


def test_a_one_based_warning_when_num_labels_has_room(tmp_path):
    from rich.console import Console

    from compress.preflight import check_data
    from compress.tasks import load_config

    data = make(tmp_path, {"train.tsv": tsv([(t, y + 1) for t, y in ROWS]), "test.tsv": tsv([("x", 1), ("y", 2)])})
    cfg = load_config(TINY, [f"data.source={data}", "teacher.num_labels=3", "quantize.variants.1.calibration.samples=2"])
    console = Console(record=True, width=400)
    check_data(cfg, console)
    assert ("no training row has label 0 (the training split uses 2 of 3 labels); the labels look 1-based (the "
            "training split holds exactly 1..2): set teacher.num_labels: 2, then subtract 1") in console.export_text()


def test_quoted_csv_fields_with_commas_quotes_and_line_breaks_are_read(tmp_path):
    text = 'sentence,label\n"a, b",1\n"say ""hi""",0\n"two\nlines",1\n'
    got = split(tmp_path, {"train.csv": text})
    assert got.texts == ["a, b", 'say "hi"', "two\nlines"] and got.labels == [1, 0, 1]


def test_a_line_number_counts_quoted_line_breaks(tmp_path):
    text = 'sentence,label\n"two\nlines",1\n"x"y,0\n'
    with pytest.raises(CompressError, match=r"train.csv:4: bad CSV quoting"):
        split(tmp_path, {"train.csv": text})


def test_empty_header_names_from_trailing_separators_are_not_duplicates(tmp_path):
    got = split(tmp_path, {"train.csv": "sentence,label,,\ngood,1,,\nbad,0,,\n"})
    assert got.texts == ["good", "bad"]


def test_causal_lm_refuses_the_columns_and_the_same_split(tmp_path):
    result = invoke("validate", ROOT / "pipelines" / "tiny-lm.yaml", "data.columns=[a,b]", "data.eval_split=train")
    assert result.exit_code == 2
    assert "data.columns: names the columns of header-less .tsv/.csv files for classifiers" in result.stderr
    assert "data.eval_split: 'train' is also data.train_split" in result.stderr


def test_read_jsonl_of_deep_json_is_one_line(tmp_path):
    from compress.io import read_jsonl

    path = tmp_path / "docs.jsonl"
    path.write_text('{"text": "a"}\n' + DEEP + "\n")
    with pytest.raises(CompressError, match=r"docs.jsonl: line 2 is JSON nested deeper than the reader allows"):
        read_jsonl(path)


# ----------------------------------------------------------------------------- a header-less corpus end to end

NEWS_RUN = [COLUMNS, "data.labels=[1,2,3,4]", "teacher.num_labels=4"]


def news_folder(tmp_path):
    return make(tmp_path, {"train.csv": news_csv(news(200, seed=1)), "test.csv": news_csv(news(80, seed=2))})


def test_a_header_less_news_corpus_is_read_as_the_stages_read_it(tmp_path):
    """compress validate says ok; the splits the stages read (compress.data.train_split / eval_split, a seeded
    shuffle of the training rows) hold every line of each file, the first included, with the description as text
    and labels 1..4 as classes 0..3."""
    from compress.data import eval_split, train_split
    from compress.tasks import load_config

    data = news_folder(tmp_path)
    settings = [f"data.source={data}", *NEWS_RUN]
    result = invoke("validate", TINY, *settings)
    assert result.exit_code == 0, result.output + (result.stderr or "")
    assert "ok (run 'tiny'" in result.stdout and "data checked" in result.stdout
    cfg = load_config(TINY, settings)
    train, test = train_split(cfg), eval_split(cfg)
    expected = {(c, a - 1) for a, _, c in news(200, seed=1)}
    assert len(train) == 200 and set(zip(train.texts, train.labels)) == expected
    assert list(zip(test.texts, test.labels)) == [(c, a - 1) for a, _, c in news(80, seed=2)]  # file order
    assert train.names == ("1", "2", "3", "4")


@pytest.mark.slow
def test_a_header_less_news_corpus_trains_end_to_end(tmp_path):
    """AG News as published (no header, labels 1..4, title and description) runs with data.columns and data.labels:
    the teacher reads every row, the first line included, and learns the classes from the description (the titles
    carry no class), so its accuracy says the right column and labels were read."""
    data = news_folder(tmp_path)
    result = invoke("run", TINY, "--runs-dir", tmp_path / "runs", f"data.source={data}", *NEWS_RUN,
                    "teacher.train.epochs=8", "teacher.train.batch_size=8", "distill.train.epochs=1",
                    "baselines.enabled=false", "quantize.enabled=false", "mobile.enabled=false", "ship.enabled=false",
                    "bench.targets=[cpu]", *FAST)
    assert result.exit_code == 0, result.output + (result.stderr or "")
    report = read_json(tmp_path / "runs" / "tiny" / "report.json")
    assert report["data"]["train"]["rows"] == 200 and report["data"]["eval"]["rows"] == 80
    teacher = next(v for v in report["variants"] if v["name"] == "teacher")
    assert teacher["accuracy"] > 0.9  # chance is 0.25
