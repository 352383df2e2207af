"""The distillation transfer set: perturbed copies of the training text."""

from compress.distill.augment import IGNORE, augment, inherited_labels, training_split
from compress.tasks import load_config
from tests.conftest import ROOT

TEXTS = ["a gripping and deeply moving film", "dull", "the plot never quite holds together", ""]


def test_copies_are_seeded_perturbed_and_point_at_their_sentence():
    a = augment(TEXTS, 3, "[MASK]", seed=1)
    b = augment(TEXTS, 3, "[MASK]", seed=1)
    assert a == b
    assert a != augment(TEXTS, 3, "[MASK]", seed=2)
    for text, src in zip(a.texts, a.sources):
        assert text != TEXTS[src] and text.split()
        vocab = {w for t in TEXTS for w in t.split()} | {"[MASK]"}
        assert set(text.split()) <= vocab  # masks, swaps from the training words, spans: nothing new
    assert 3 not in a.sources  # an empty sentence has no copy
    assert len(a.texts) <= 3 * 3


def test_each_operation_alone():
    long = ["one two three four five six seven eight nine ten"]
    masked = augment(long, 1, "[MASK]", mask_prob=1.0, swap_prob=0.0, ngram_prob=0.0)
    assert masked.texts == [" ".join(["[MASK]"] * 10)]
    span = augment(long, 1, "[MASK]", mask_prob=0.0, swap_prob=0.0, ngram_prob=1.0, max_ngram=3)
    words = span.texts[0].split()
    assert 1 <= len(words) <= 3 and span.texts[0] in long[0]
    no_mask = augment(long, 5, None, mask_prob=1.0, swap_prob=0.0, ngram_prob=1.0)  # no mask token: spans only
    assert all("[MASK]" not in t for t in no_mask.texts)


def test_labels_ignored_for_distillation_inherited_for_the_baseline():
    cfg = load_config(ROOT / "pipelines" / "tiny.yaml", ["distill.augment.copies=1", "data.generated_size=300"])

    class Tok:
        mask_token = "[MASK]"

    kd, ce = training_split(cfg, Tok(), False), training_split(cfg, Tok(), True)
    assert kd.texts == ce.texts
    n = cfg.data.generated_size
    assert kd.labels[:n] == ce.labels[:n]  # the training rows keep their labels in both
    assert set(kd.labels[n:]) == {IGNORE} and IGNORE not in ce.labels
    a = augment(["x y"], 1, "[MASK]", mask_prob=1.0)
    assert inherited_labels([1], a) == [1]
