"""Accuracy and retention with 95% bootstrap intervals, and the paired difference between two variants."""

from __future__ import annotations

import numpy as np


def _resample(n: int, rounds: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(rounds, n))


def accuracy_interval(correct: np.ndarray, rounds: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of a 0/1 vector."""
    means = correct[_resample(len(correct), rounds, seed)].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def paired_difference(correct_a: np.ndarray, correct_b: np.ndarray, rounds: int = 2000, seed: int = 0) -> dict:
    """accuracy(a) - accuracy(b) on the same sentences, with a paired 95% bootstrap interval:
    both variants are resampled with the same sentences, so sentence difficulty cancels out."""
    diff = correct_a.astype(np.float64) - correct_b.astype(np.float64)
    means = diff[_resample(len(diff), rounds, seed)].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"difference": round(float(diff.mean()), 5), "ci95": [round(float(lo), 5), round(float(hi), 5)],
            "wins": int(((correct_a == 1) & (correct_b == 0)).sum()), "losses": int(((correct_a == 0) & (correct_b == 1)).sum())}


def retention_interval(correct: np.ndarray, correct_ref: np.ndarray, rounds: int = 2000,
                       seed: int = 0) -> tuple[float, float] | None:
    """95% paired-bootstrap interval of retention = accuracy / the reference's accuracy: each round
    resamples the same sentences for both, so the ratio's spread is that of one evaluation set.
    None when the reference got nothing right (no ratio)."""
    if not correct_ref.any():
        return None
    idx = _resample(len(correct), rounds, seed)
    ref = correct_ref[idx].mean(axis=1)
    ratios = correct[idx].mean(axis=1)[ref > 0] / ref[ref > 0]
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    return float(lo), float(hi)
