"""What a variant keeps of the teacher's zero-shot scores, with 95% intervals.

A score's own interval is Wilson's for a proportion. Differences between two models are paired: both answered
the same items, so the interval is that of the mean of per-item differences (normal approximation), which
resolves far smaller differences than two independent intervals would on a small subset. The mean of the
accuracy tasks pairs each set and adds their variances (the sets are independent). WikiText-2 pairs the
windows: the ratio of perplexities is exp(the mean NLL difference per token), its interval from the spread of
the per-window differences. Retention = variant / reference; above chance = (variant - chance) / (reference -
chance); their intervals take the reference's score as fixed and move the paired difference through its interval.
"""

from __future__ import annotations

import math

import numpy as np

Z = 1.959963984540054  # two-sided 95%


def wilson(successes: int, n: int) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return (centre - half, centre + half)


def paired(x: np.ndarray, y: np.ndarray) -> dict:
    """Mean of x - y over the same items, its standard error and 95% interval."""
    d = np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")
    m = float(d.mean())
    return {"difference": m, "se": se, "low": m - Z * se, "high": m + Z * se}


def outcomes(result: dict, name: str, metric: str) -> np.ndarray:
    return np.asarray(result["sets"][name]["correct_norm" if metric == "acc_norm" else "correct"], dtype=np.float64)


def compare(variant: dict, reference: dict, sets: dict) -> dict:
    """Each set's score of ``variant`` with its interval, the paired difference against ``reference``, retention
    raw and above chance; the mean of the sets; WikiText-2 perplexity, bits per byte and the paired ratio."""
    out: dict = {"sets": {}}
    diffs = []
    for name, meta in sets.items():
        if name not in variant["sets"] or name not in reference["sets"]:
            continue
        x, y = outcomes(variant, name, meta["metric"]), outcomes(reference, name, meta["metric"])
        value, ref, chance = float(x.mean()), float(y.mean()), meta["chance"]
        d = paired(x, y)
        diffs.append(d)
        lo, hi = wilson(int(x.sum()), len(x))
        out["sets"][name] = {"metric": meta["metric"], "value": value, "low": lo, "high": hi, "items": len(x),
                             "reference": ref, "paired": d, **_retention(value, ref, chance, d)}
    if out["sets"]:
        k = len(out["sets"])
        value = sum(s["value"] for s in out["sets"].values()) / k
        ref = sum(s["reference"] for s in out["sets"].values()) / k
        chance = sum(sets[n]["chance"] for n in out["sets"]) / k
        m = sum(d["difference"] for d in diffs) / k
        se = math.sqrt(sum(d["se"] ** 2 for d in diffs)) / k
        d = {"difference": m, "se": se, "low": m - Z * se, "high": m + Z * se}
        out["mean"] = {"sets": list(out["sets"]), "value": value, "reference": ref, "paired": d,
                       **_retention(value, ref, chance, d)}
    if variant.get("wikitext") and reference.get("wikitext"):
        out["wikitext"] = _wikitext(variant["wikitext"], reference["wikitext"])
    return out


def _retention(value: float, ref: float, chance: float, d: dict) -> dict:
    raw = {"retention": value / ref if ref > 0 else None,
           "retention_low": (ref + d["low"]) / ref if ref > 0 else None,
           "retention_high": (ref + d["high"]) / ref if ref > 0 else None}
    above = ref - chance
    raw.update({"above_chance": (value - chance) / above if above > 0 else None,
                "above_chance_low": (ref + d["low"] - chance) / above if above > 0 else None,
                "above_chance_high": (ref + d["high"] - chance) / above if above > 0 else None})
    return raw


def _wikitext(w: dict, ref: dict) -> dict:
    out = {"perplexity": w["perplexity"], "bits_per_byte": w["bits_per_byte"], "tokens": w["tokens"],
           "reference_perplexity": ref["perplexity"], "reference_bits_per_byte": ref["bits_per_byte"]}
    a, b = np.asarray(w["windows"], dtype=np.float64), np.asarray(ref["windows"], dtype=np.float64)
    if a.shape == b.shape and (a[:, 1] == b[:, 1]).all():  # the same tokens in the same windows: pair them
        tokens = a[:, 1].sum()
        d = a[:, 0] - b[:, 0]
        m = d.sum() / tokens
        se = d.std(ddof=1) * math.sqrt(len(d)) / tokens if len(d) > 1 else float("nan")
        out["ratio"] = {"value": math.exp(m), "low": math.exp(m - Z * se), "high": math.exp(m + Z * se),
                        "windows": len(d)}
    return out


def table(scores: dict, reference: str = "teacher") -> dict:
    """compare() of every scored variant against ``reference``."""
    ref = scores["variants"][reference]
    return {name: compare(v, ref, scores["sets"]) for name, v in scores["variants"].items()}
