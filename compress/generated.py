"""The generated sentiment task (``data.source: generated``): a two-class task with a rule, hard enough that a
teacher, a distilled student and a student trained on hard labels alone end up visibly apart.

The rule: every sentiment word has a strength (``superb`` +3 ... ``lifeless`` -3); a sentence is positive when the
strengths of its sentiment words sum to more than 0. Sentences mix two to five sentiment words of both signs with
neutral filler, so many are close calls (a sum of +1 or -1), and the rule must be learned word by word: counting
positive and negative words is not enough.

The training split's labels are noisy as a crowd's would be (``label_noise`` > 0): a close call is labelled
against the rule often (with probability ``1 / (1 + exp(|sum| / 2))``: 38% at a sum of 1, 18% at 3), and a share
``label_noise`` of all labels is flipped at random on top. The evaluation and validation splits keep the rule's own
labels: they measure how well a model learned the rule. This is where soft targets help: a teacher that has
learned the rule from many noisy labels passes on a cleaner signal than the labels themselves, so a student
distilled from it beats the same student trained on the labels alone, with the same data and steps.

Deterministic: the same size, seed and noise give the same rows on every machine (``random.Random`` only).
"""

from __future__ import annotations

import math
import random
from typing import Any

STRENGTH = {
    "superb": 3, "brilliant": 3, "delightful": 3, "great": 2, "lovely": 2, "charming": 2, "moving": 2,
    "good": 1, "fine": 1, "funny": 1, "sharp": 1, "warm": 1,
    "awful": -3, "lifeless": -3, "dreadful": -3, "bad": -2, "boring": -2, "tedious": -2, "clumsy": -2,
    "dull": -1, "weak": -1, "messy": -1, "flat": -1, "bland": -1,
}
NEUTRAL = ("the a film movie story plot cast director scene script actor it this was is and but with "
           "of in an its very rather quite somewhat end start music score pace ending").split()
CLOSE_CALL_SCALE = 2.0  # how fast the crowd's doubt fades with |sum|: P(against the rule) = sigmoid(-|sum| / 2)


def generate_sentiment(size: int, seed: int, label_noise: float = 0.0) -> list[dict[str, Any]]:
    """``size`` rows ``{"sentence", "label"}``; labels noisy as described above when ``label_noise`` > 0 (the
    training split), the rule's own when it is 0 (evaluation)."""
    rng = random.Random(seed)
    words = list(STRENGTH)
    rows = []
    while len(rows) < size:
        sentiment = [rng.choice(words) for _ in range(rng.randint(2, 5))]
        total = sum(STRENGTH[w] for w in sentiment)
        if total == 0:  # no rule-given label: drawn again
            continue
        sentence = sentiment + [rng.choice(NEUTRAL) for _ in range(rng.randint(2, 8))]
        rng.shuffle(sentence)
        label = int(total > 0)
        if label_noise > 0:
            if rng.random() < 1 / (1 + math.exp(abs(total) / CLOSE_CALL_SCALE)):
                label = 1 - label
            if rng.random() < label_noise:
                label = 1 - label
        rows.append({"sentence": " ".join(sentence), "label": label})
    return rows
