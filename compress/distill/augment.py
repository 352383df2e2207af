"""A transfer set for distillation: perturbed copies of the training sentences, labelled by the teacher.

Tang et al. (2019), "Distilling Task-Specific Knowledge from BERT into Simple Neural Networks",
section 3.3: a student learns more from a teacher when it sees the teacher's outputs on text
around the training set, not only on the training set itself. Each copy of a sentence is made by

- masking: each word, with probability ``mask_prob``, becomes the tokenizer's mask token;
- swapping: each word not masked, with probability ``swap_prob``, becomes a word drawn from the
  training text's unigram distribution (Tang et al. swap within a part of speech; drawing by
  frequency needs no tagger and keeps common words common);
- n-gram sampling: with probability ``ngram_prob``, only a random span of 1..``max_ngram`` words
  is kept.

A copy has no hard label of its own: distillation learns it from the teacher's soft targets alone
(its label is ``IGNORE``), while the hard-label baseline, trained on the same rows, gives it the
label of the sentence it came from (``inherited_labels``), so the baseline sees the same data and
the comparison isolates what the teacher's labels add. Copies identical to their sentence are
drawn again (up to a few times), so a short sentence does not simply repeat.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from compress.data import Split, train_split

IGNORE = -100  # the label of a copy in distillation: no hard-label loss, teacher soft targets only
_ATTEMPTS = 5


@dataclass
class Augmented:
    texts: list[str]
    sources: list[int]  # the index of the training sentence each copy was made from


def augment(texts: list[str], copies: int, mask_token: str | None, *, mask_prob: float = 0.1, swap_prob: float = 0.1,
            ngram_prob: float = 0.25, max_ngram: int = 5, seed: int = 0) -> Augmented:
    """``copies`` perturbed copies of every sentence (fewer for a sentence that cannot change), seeded."""
    if copies < 0:
        raise ValueError(f"copies must be >= 0, got {copies}")
    if mask_token is None:
        mask_prob = 0.0  # a tokenizer without a mask token: swaps and spans only
    rng = random.Random(seed)
    words = [t.split() for t in texts]
    unigram = [w for ws in words for w in ws]
    out, sources = [], []
    for _ in range(copies):
        for i, ws in enumerate(words):
            if not ws:
                continue
            for _attempt in range(_ATTEMPTS):
                new = _perturb(ws, rng, mask_token, mask_prob, swap_prob, ngram_prob, max_ngram, unigram)
                if new != ws:
                    out.append(" ".join(new))
                    sources.append(i)
                    break
    return Augmented(out, sources)


def _perturb(ws, rng, mask_token, mask_prob, swap_prob, ngram_prob, max_ngram, unigram) -> list[str]:
    new = []
    for w in ws:
        u = rng.random()
        if u < mask_prob:
            new.append(mask_token)
        elif u < mask_prob + swap_prob:
            new.append(rng.choice(unigram))
        else:
            new.append(w)
    if len(new) > 1 and rng.random() < ngram_prob:
        n = rng.randint(1, min(max_ngram, len(new) - 1))
        start = rng.randrange(len(new) - n + 1)
        new = new[start:start + n]
    return new


def inherited_labels(labels: list[int], augmented: Augmented) -> list[int]:
    """Each copy labelled like the sentence it came from: what a hard-label student can do with the copies."""
    return [labels[i] for i in augmented.sources]


def training_split(cfg, tokenizer, hard_labels_for_copies: bool):
    """The rows distillation (and its hard-label baseline) train on: the training split, then
    ``distill.augment.copies`` perturbed copies of it. Copies carry ``IGNORE`` for distillation, or
    their sentence's label when ``hard_labels_for_copies`` (the baseline)."""
    train = train_split(cfg)
    a = cfg.distill.augment
    if a.copies == 0:
        return train
    extra = augment(train.texts, a.copies, getattr(tokenizer, "mask_token", None), mask_prob=a.mask_prob,
                    swap_prob=a.swap_prob, ngram_prob=a.ngram_prob, max_ngram=a.max_ngram, seed=cfg.seed)
    labels = inherited_labels(train.labels, extra) if hard_labels_for_copies else [IGNORE] * len(extra.texts)
    return Split(train.name, train.texts + extra.texts, train.labels + labels)
