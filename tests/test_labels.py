"""Labels with names: string labels become ids in a recorded order, and the names reach the teacher's config, the
report and the bundle, whose ``predict`` takes one text or a list and answers with the names."""

import numpy as np
import pytest

from compress import data as data_module
from compress.config import DataConfig
from compress.data import generate_sentiment, load_split
from compress.errors import CompressError
from compress.labels import LabelSet, decide
from compress.tasks import load_config
from compress.verify import Prediction, load_bundle

from .conftest import FAST, ROOT, invoke, read_json

TINY = ROOT / "pipelines" / "tiny.yaml"


def write(folder, split, rows, header="sentence\tlabel"):
    folder.mkdir(exist_ok=True)
    (folder / f"{split}.tsv").write_text(header + "\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    return folder


NEWS = [("goal in the final", "Sports"), ("shares fall", "Business"), ("talks resume", "World"), ("a late winner", "Sports")]


def test_names_become_ids_in_sorted_order_for_every_split(tmp_path):
    folder = write(tmp_path / "news", "train", NEWS)
    write(folder, "test", [("markets rally", "Business"), ("cup draw", " Sports ")])  # whitespace is not a new name
    train = load_split(DataConfig(source=str(folder)), "train", 3)
    assert train.names == ("Business", "Sports", "World")
    assert train.labels == [1, 0, 2, 1]
    test = load_split(DataConfig(source=str(folder)), "test", 3)
    assert test.labels == [0, 1] and test.names == train.names
    assert train.label_set.to_dict() == {"values": "names", "names": ["Business", "Sports", "World"],
                                         "from": "training split 'train'"}


def test_jsonl_names_and_the_order_of_data_labels(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"sentence": "fine", "label": "pos"}\n{"sentence": "dull", "label": "neg"}\n')
    assert load_split(DataConfig(source=str(tmp_path)), "train", 2).labels == [1, 0]  # sorted: neg, pos
    split = load_split(DataConfig(source=str(tmp_path), labels=["pos", "neg"]), "train", 2)
    assert split.labels == [0, 1] and split.names == ("pos", "neg")


def test_integer_labels_keep_their_ids_and_data_labels_names_them(tmp_path):
    folder = write(tmp_path / "d", "train", [("fine", 1), ("dull", 0)])
    plain = load_split(DataConfig(source=str(folder)), "train", 2)
    assert plain.labels == [1, 0] and plain.names == ()
    named = load_split(DataConfig(source=str(folder), labels=["negative", "positive"]), "train", 2)
    assert named.labels == [1, 0] and named.names == ("negative", "positive")
    assert named.label_set.by_name is False


def test_digit_names_listed_in_data_labels_are_names(tmp_path):
    """Ratings 1..3 listed as data.labels: "1" is the first class, not id 1."""
    folder = write(tmp_path / "d", "train", [("meh", 1), ("ok", 2), ("great", 3)])
    split = load_split(DataConfig(source=str(folder), labels=["1", "2", "3"]), "train", 3)
    assert split.labels == [0, 1, 2]


def test_a_test_label_not_among_the_training_names_is_one_line(tmp_path):
    folder = write(tmp_path / "news", "train", NEWS)
    write(folder, "test", [("markets rally", "Business"), ("cup draw", "Sports"), ("rain", "Weather"), ("x", "Sprots")])
    with pytest.raises(CompressError) as info:
        load_split(DataConfig(source=str(folder)), "test", 3)
    assert info.value.problems == [
        f"data: 2 label(s) in split 'test' ({folder / 'test.tsv'}) are not one of the 3 label names of training "
        "split 'train' (Business, Sports, World); first: row 3: 'Weather', row 4: 'Sprots'"]


def test_a_label_outside_data_labels_names_them(tmp_path):
    folder = write(tmp_path / "d", "train", [("fine", "pos"), ("dull", "neg"), ("odd", "neutral")])
    with pytest.raises(CompressError, match=r"1 label\(s\) in split 'train' \(.*train.tsv\) are not one of the 2 label "
                                            r"names of data.labels \(neg, pos\); first: row 3: 'neutral'"):
        load_split(DataConfig(source=str(folder), labels=["neg", "pos"]), "train", 2)


def test_more_names_than_teacher_num_labels_says_what_to_set(tmp_path):
    folder = write(tmp_path / "news", "train", NEWS)
    with pytest.raises(CompressError, match=r"teacher.num_labels: 2, but the training split 'train' \(.*train.tsv\) "
                                            r"has 3 label names \(Business, Sports, World\); set teacher.num_labels: 3"):
        load_split(DataConfig(source=str(folder)), "train", 2)


def test_integers_mixed_with_names_are_read_as_ids_and_the_error_says_why(tmp_path):
    folder = write(tmp_path / "d", "train", [("fine", 1), ("dull", 0), ("odd", "pos")])
    with pytest.raises(CompressError) as info:
        load_split(DataConfig(source=str(folder)), "train", 2)
    line, = info.value.problems
    assert "are not integers in 0..1 (teacher.num_labels: 2); first: row 3: 'pos'" in line
    assert "names only when no label of the training split is an integer" in line


def test_decide_is_stable_whatever_the_row_order():
    rows = ["b", "a", "c", "a"]
    assert decide(rows, 3) == decide(reversed(rows), 3) == LabelSet(("a", "b", "c"), True, "training split 'train'")
    assert decide([0, 1, "1", 1.0], 2) == LabelSet()  # integers, whole floats, digits: ids as before
    assert decide(["0.0", "1.0", " 1 ", "1e0"], 2) == LabelSet()  # whole numbers written as text: ids, not names


@pytest.mark.parametrize("value, ident, name, fraction", [
    ("1.0", 1, "1", False), ("+2", 2, "2", False), ("1e1", 10, "10", False), (3.0, 3, "3", False),
    ("1.5", None, "1.5", True), (0.5, None, None, True), ("1e400", None, "1e400", True), (float("nan"), None, None, True),
    ("nan", None, "nan", False), ("Sci/Tech", None, "Sci/Tech", False), ("1_0", None, "1_0", False),
    (True, None, None, False), ("", None, None, False),
])
def test_whole_numbers_fractions_and_names(value, ident, name, fraction):
    from compress.labels import as_id, as_name, is_fraction

    assert (as_id(value), as_name(value), is_fraction(value)) == (ident, name, fraction)


def test_1_based_labels_get_a_hint_only_when_exactly_1_to_n():
    from compress.labels import one_based_hint

    assert "look 1-based (the training split holds exactly 1..4)" in one_based_hint({1, 2, 3, 4}, 4)
    assert "set teacher.num_labels: 4, then" in one_based_hint({1, 2, 3, 4}, 5)
    assert one_based_hint({0, 1, 2, 3}, 4) == one_based_hint({1, 2, 4}, 4) == one_based_hint({1, 2, 3}, 5) == ""


def test_hub_class_label_names_its_ids(monkeypatch):
    import datasets

    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "positive"])})
    monkeypatch.setattr(datasets, "load_dataset", lambda path, name=None, split=None: datasets.Dataset.from_dict(
        {"sentence": ["fine", "dull"], "label": [1, 0]}, features=features))
    monkeypatch.setattr(data_module, "_LABEL_SETS", {})
    split = load_split(DataConfig(source="glue", subset="sst2"), "validation", 2)
    assert split.labels == [1, 0] and split.names == ("negative", "positive")


@pytest.mark.parametrize("overrides, expected", [
    (["data.labels=[neg, neg]"], "data.labels: each class name once, got neg more than once"),
    (["data.labels=[pos]"], "data.labels: at least two class names"),
    (["data.labels=[yes, no]"], "data.labels: [True, False]: YAML reads yes/no, true/false and on/off as booleans"),
    (["data.labels=[a, b, c]"], "data.labels: 3 names (a, b, c), but teacher.num_labels is 2; give one name per class"),
])
def test_data_labels_is_checked_at_load(overrides, expected):
    result = invoke("validate", TINY, *overrides)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert any(line.startswith(f"error: {expected}") for line in result.stderr.splitlines()), result.stderr


def test_causal_lm_refuses_class_names():
    with pytest.raises(CompressError, match="data.labels: class names are for classifiers"):
        load_config(ROOT / "pipelines" / "tiny-lm.yaml", ["data.labels=[a, b]"])


# ----------------------------------------------------------------------------- the bundle loader


def test_predict_takes_one_text_or_a_list(tiny_shipped):
    _, bundle_dir, _ = tiny_shipped
    bundle = load_bundle(bundle_dir)
    one = bundle.predict("great film")  # one string is one text, never its characters
    assert len(one) == 1 and isinstance(one[0], Prediction)
    row = one[0]
    assert row.label == bundle.labels[row.index] and 0.5 <= row.score <= 1  # the likelier of two classes
    probs = np.exp(row.logits) / np.exp(row.logits).sum()
    assert row.score == pytest.approx(probs.max()) and row.index == int(np.argmax(row.logits))
    many = bundle.predict(["great film", "a dull and tired plot", "great film"])
    assert len(many) == 3 and many[0] == many[2] and many[0].logits == row.logits
    assert bundle.predict(("great film",)) == one and bundle.predict([]) == []
    assert bundle.logits("great film").shape == (1, 2)
    for wrong in (123, ["fine", 3], {"text": "fine"}):
        with pytest.raises(TypeError, match="texts: a string or a list of strings"):
            bundle.predict(wrong)


# ----------------------------------------------------------------------------- end to end


def test_a_tsv_with_string_labels_runs_end_to_end_and_predict_names_the_class(tmp_path):
    """Acceptance (issue 26): a folder of TSVs whose labels are names runs through compress run; the names are in
    the teacher's and the student's configs, the report and the bundle; predict answers one row with a name."""
    folder = tmp_path / "reviews"
    names = ["negative", "positive"]
    for split, size, seed in (("train", 400, 1), ("test", 100, 2)):
        write(folder, split, [(r["sentence"], names[r["label"]]) for r in generate_sentiment(size, seed)])
    runs, exports = tmp_path / "runs", tmp_path / "exports"
    result = invoke("run", TINY, "--runs-dir", runs, f"data.source={folder}", f"ship.dir={exports}", *FAST,
                    "baselines.enabled=false", "teacher.train.epochs=1", "distill.train.epochs=1", "bench.targets=[cpu]",
                    "mobile.enabled=false", "quantize.variants=[{name: student-int8, method: onnx_dynamic}]")
    assert result.exit_code == 0, result.output + (result.stderr or "")
    run_dir, bundle_dir = runs / "tiny", exports / "tiny"
    for model in ("teacher/model", "student/model", "distill/model", "export/student"):
        config = read_json(run_dir / model / "config.json")
        assert config["id2label"] == {"0": "negative", "1": "positive"}, model
        assert config["label2id"] == {"negative": 0, "positive": 1}, model
    report = read_json(run_dir / "report.json")
    assert report["data"]["labels"] == {"values": "names", "names": names, "from": "training split 'train'"}
    line = "Labels (the data's names, sorted, as found in the training split): 0 = `negative`, 1 = `positive`."
    assert line in (run_dir / "report.md").read_text()
    assert "0 = <code>negative</code>, 1 = <code>positive</code>" in (run_dir / "report.html").read_text()
    assert read_json(run_dir / "preflight.json")["data"]["labels"] == names
    manifest = read_json(bundle_dir / "manifest.json")
    assert manifest["labels"] == {"0": "negative", "1": "positive"}
    assert read_json(bundle_dir / "config.json")["id2label"] == {"0": "negative", "1": "positive"}
    assert "Labels: 0 = negative, 1 = positive." in (bundle_dir / "README.md").read_text()
    golden = read_json(bundle_dir / "golden.json")
    assert {s["predicted"] for s in golden["samples"]} <= set(names)
    assert all(s["label_name"] == names[s["label"]] for s in golden["samples"])  # the true class, by id and by name
    bundle = load_bundle(bundle_dir)
    rows = bundle.predict("a fine film")
    assert len(rows) == 1 and rows[0].label in names
    assert [r.label for r in bundle.predict([s["text"] for s in golden["samples"]])] == \
        [s["predicted"] for s in golden["samples"]]
