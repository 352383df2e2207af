"""Latency measured in interleaved rounds, as a benchmark tool measures it, and what the rounds say about noise.

The bench measures every (variant, target case) ``bench.rounds`` times: round r measures every variant once, in
order, before round r+1 starts, each measurement in a fresh process. A burst of load on a shared machine then lands
on one round of several variants, which the median over rounds sets aside and the spread shows, not on all of
whichever variant was being measured at the time.
Per measurement:

- ``latency_ms``: each figure (p50, p90, p99, mean) the median over the rounds of that round's figure;
- ``p50_rounds_ms``: the rounds' p50s, in round order; ``p50_range_ms``: their min and max (the spread shown
  beside the p50); ``relative_spread``: (max - min) / median;
- ``flags``: ``noisy`` when the relative spread exceeds ``bench.noise_tolerance``; ``below-resolution`` when the
  p50 is under the timer floor (:func:`timer`): at tens of microseconds per query the timer, the Python call around
  the model and a scheduler tick weigh as much as the model does.

A speedup is the median of the per-round ratios (the reference's round-r p50 over the variant's round-r p50: the two
were measured side by side), with their min..max as its interval, so the point always lies inside it (none for the
reference itself, 1x by definition; a measurement from before rounds: the ratio of the p50s). A speedup carries
the variant's own flags and the reference's (as ``reference noisy``...): one whose reference is flagged is never
shown without it.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

NOISY = "noisy"
BELOW_RESOLUTION = "below-resolution"
FLOOR_MS = 0.05  # 50 us per query: under it a p50 is flagged below-resolution (see timer())
REFERENCE = "reference "  # prefix of a speedup's flags that come from its reference
LABELS = {NOISY: "noisy", BELOW_RESOLUTION: "below timer resolution"}
CPUFREQ = Path("/sys/devices/system/cpu")


def spread(values: list[float]) -> tuple[float, float, float]:
    """(min, max, (max - min) / median) of the rounds' values; the relative spread is 0 for one round."""
    mid = statistics.median(values)
    lo, hi = min(values), max(values)
    return lo, hi, ((hi - lo) / mid if mid > 0 else 0.0)


def flags(p50s_ms: list[float], tolerance: float, floor_ms: float) -> list[str]:
    """What makes a measurement's p50 untrustworthy: rounds apart by more than ``tolerance`` of their median
    (noisy), a median under ``floor_ms`` (below-resolution)."""
    _, _, rel = spread(p50s_ms)
    out = [NOISY] if rel > tolerance else []
    return out + ([BELOW_RESOLUTION] if statistics.median(p50s_ms) < floor_ms else [])


def combine(per_round: list[dict], tolerance: float, floor_ms: float) -> dict:
    """One measurement from its rounds: ``per_round`` is each round's latency in ms ({"p50", "p90", "p99",
    "mean"}, or what else every round has beside p50), in round order."""
    p50s = [r["p50"] for r in per_round]
    lo, hi, rel = spread(p50s)
    return {
        "latency_ms": {k: round(statistics.median(r[k] for r in per_round), 3) for k in per_round[0]
                       if all(k in r for r in per_round)},
        "rounds": len(per_round),
        "p50_rounds_ms": [round(x, 3) for x in p50s],
        "p50_range_ms": [round(lo, 3), round(hi, 3)],
        "relative_spread": round(rel, 4),
        "flags": flags(p50s, tolerance, floor_ms),
    }


def speedup(ref: dict, m: dict, same: bool = False) -> dict:
    """The median over rounds of the reference's p50 over ``m``'s, its interval over rounds and its flags.
    ``ref`` and ``m`` are measurements as combine() gives them (``latency_ms``, ``p50_rounds_ms``, ``flags``);
    ``same``: ``m`` is the reference itself (its own flags only). A measurement from before rounds (no
    ``p50_rounds_ms``) gets no interval."""
    a, b = ref.get("p50_rounds_ms") or [], m.get("p50_rounds_ms") or []
    ratios = [x / y for x, y in zip(a, b) if y > 0] if len(a) == len(b) else []
    point = ref["latency_ms"]["p50"] / m["latency_ms"]["p50"] if not ratios else statistics.median(ratios)
    point = 1.0 if same else point
    own = list(m.get("flags") or [])
    theirs = [] if same else [REFERENCE + f for f in ref.get("flags") or []]
    return {"speedup": round(point, 3),
            "speedup_range": [round(min(ratios), 3), round(max(ratios), 3)] if ratios and not same else None,
            "speedup_flags": own + theirs}


# ----------------------------------------------------------------------------- the machine, the timer


def governor(root: Path = CPUFREQ) -> str:
    """The CPU frequency governor of every core (``performance``; ``performance, powersave`` when cores differ);
    ``unknown`` where cpufreq is not exposed (containers, VMs, macOS)."""
    found = set()
    for path in root.glob("cpu[0-9]*/cpufreq/scaling_governor"):
        try:
            found.add(path.read_text(encoding="ascii").strip())
        except OSError:
            continue
    return ", ".join(sorted(g for g in found if g)) or "unknown"


def machine() -> dict:
    """The machine's state now: load average (1, 5, 15 minutes; other work competing for the cores), the CPU
    frequency governor, the cores."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # not on every platform
        load = None
    return {"load_average": load, "governor": governor(), "cpus": os.cpu_count()}


def timer(floor_ms: float = FLOOR_MS) -> dict:
    """time.perf_counter, the clock every latency is taken with: its stated resolution, the smallest step seen
    between two reads on this machine, and the floor under which a p50 is flagged below-resolution: FLOOR_MS, or
    100 steps of the clock where the clock is coarser than half a microsecond."""
    stated = time.get_clock_info("perf_counter").resolution
    steps = []
    for _ in range(2000):
        a = time.perf_counter()
        b = time.perf_counter()
        while b == a:
            b = time.perf_counter()
        steps.append(b - a)
    step = min(steps)
    return {"clock": "time.perf_counter", "resolution_s": stated, "smallest_step_s": step,
            "floor_ms": round(max(floor_ms, 100 * max(step, stated) * 1e3), 6)}


# ----------------------------------------------------------------------------- rendering


def label(flag: str) -> str:
    """How a flag reads: ``noisy``, ``below timer resolution``, ``noisy reference``."""
    if flag.startswith(REFERENCE):
        inner = LABELS.get(flag[len(REFERENCE):], flag[len(REFERENCE):])
        return f"{inner} reference" if inner == LABELS[NOISY] else f"reference {inner}"
    return LABELS.get(flag, flag)


def tag(flags_: list[str] | None) -> str:
    """`` [noisy, noisy reference]`` after a figure, or nothing when it is not flagged."""
    return f" [{', '.join(label(f) for f in flags_)}]" if flags_ else ""


def speedup_text(value: float | None, interval: list[float] | None, flags_: list[str] | None) -> str:
    """``2.31x (2.10-2.52)``, and its flags: how every place writes a speedup."""
    if value is None:
        return "-"
    text = f"{value:.2f}x"
    if interval:
        text += f" ({interval[0]:.2f}-{interval[1]:.2f})"
    return text + tag(flags_)


def p50_text(p50: float, flags_: list[str] | None) -> str:
    """``1.26``, and its own flags: ``460.74 [noisy]``."""
    return f"{p50:.2f}" + tag(flags_)


def flagged_lines(variants, tolerance: float | None = None, reference: str | None = None) -> list[str]:
    """One line per variant whose own measurement (home target) is flagged, with the rounds that say so; then one
    line naming the speedups that rest on a flagged reference (``every speedup`` when that is all of them but the
    ``reference``'s own)."""
    out, borrowed = [], {}
    for v in variants:
        own = v.get("flags") or []
        rng = v.get("p50_range_ms")
        if own:
            why = []
            if NOISY in own and rng:
                limit = f" (tolerance {tolerance:.0%})" if tolerance is not None else ""
                why.append(f"p50 {rng[0]:.2f}-{rng[1]:.2f} ms over {len(v.get('p50_rounds_ms'))} rounds, "
                           f"{v.get('relative_spread'):.0%} of the median apart{limit}")
            if BELOW_RESOLUTION in own:
                why.append(f"p50 {v.latency_ms.p50:.3f} ms per query, under the timer's floor")
            out.append(f"{v.name}: {', '.join(label(f) for f in own)}: {'; '.join(why)}")
        for f in v.get("speedup_flags") or []:
            if f.startswith(REFERENCE):
                borrowed.setdefault(f, []).append(v.name)
    others = [v.name for v in variants if v.name != reference]
    for f, names in borrowed.items():
        many = len(names) > 1
        which = (f"every speedup against {reference}" if reference and many and names == others else
                 f"the speedup{'s' if many else ''} of {', '.join(names)}")
        out.append(f"{which} rest{'' if many and which.startswith('the') else 's'} on a {label(f)}: read each with its "
                   "interval")
    return out
