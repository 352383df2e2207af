"""Golden figures of the tiny pipelines: what a redesign must not change.

``figures(report)`` keeps the accuracies, perplexities and parity results of a report.json; the files in
tests/golden/ hold them as the code before the issue-24 redesign produced them (tiny.json: pipelines/tiny.yaml
with the SHIPPED settings of conftest, regenerated for issue 26's harder generated task and trimmed demo;
tiny-lm.json: pipelines/tiny-lm.yaml as it is). ``compare`` allows what a
different CPU may move (one or two evaluation rows, a small relative change of a perplexity), nothing more.
Regenerate only for an intended change of behaviour: ``python -m tests.goldens RUN_DIR NAME``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"
ACCURACY_ABS = 0.011  # two rows of the tiny test split (200 rows)
PERPLEXITY_REL = 0.02


def _parity(rows: list[dict]) -> list[dict]:
    return [{"variant": r.get("variant"), "shape": r["shape"], "ok": r["ok"], "top1": r["top1_agreement"]} for r in rows]


def figures(report: dict) -> dict:
    variants = {}
    for v in report["variants"]:
        keep = {k: v[k] for k in ("accuracy", "perplexity", "parameters") if v.get(k) is not None}
        variants[v["name"]] = keep
    parity = {name: _parity(rows) for name, rows in (report.get("export_parity") or {}).items()}
    quant = {q["name"]: {"status": q["status"], **({"kept_rung": q["kept_rung"]} if "kept_rung" in q else {}),
                         "parity": _parity(q.get("parity") or [])}
             for q in (report.get("quantize") or {}).get("variants", [])}
    out = {"variants": variants, "export_parity": parity, "quantize": quant}
    if "greedy_parity" in report:
        out["greedy_parity"] = {name: [g["equal"] for g in rows] for name, rows in report["greedy_parity"].items()}
    return out


def compare(got: dict, want: dict) -> list[str]:
    """One line per figure that differs beyond what another CPU may move."""
    problems = []
    if list(got["variants"]) != list(want["variants"]):
        problems.append(f"variants: {list(got['variants'])} != {list(want['variants'])}")
    for name, w in want["variants"].items():
        g = got["variants"].get(name, {})
        for key, value in w.items():
            have = g.get(key)
            if have is None:
                problems.append(f"{name}.{key}: missing (golden {value})")
            elif key == "accuracy" and abs(have - value) > ACCURACY_ABS:
                problems.append(f"{name}.accuracy: {have} != golden {value}")
            elif key == "perplexity" and abs(have - value) > PERPLEXITY_REL * value:
                problems.append(f"{name}.perplexity: {have} != golden {value}")
            elif key == "parameters" and have != value:
                problems.append(f"{name}.parameters: {have} != golden {value}")
    for section in ("export_parity", "quantize", "greedy_parity"):
        if section in want and _coarse(got.get(section)) != _coarse(want[section]):
            problems.append(f"{section}: {json.dumps(got.get(section))[:300]} != golden {json.dumps(want[section])[:300]}")
    return problems


def _coarse(tree):
    """Top-1 agreement to a tenth (a row may flip on another CPU); every other value exactly."""
    if isinstance(tree, dict):
        return {k: (round(v, 1) if k == "top1" else _coarse(v)) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_coarse(v) for v in tree]
    return tree


def load(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.json").read_text())


if __name__ == "__main__":
    run_dir, name = Path(sys.argv[1]), sys.argv[2]
    report = json.loads((run_dir / "report.json").read_text())
    (GOLDEN / f"{name}.json").write_text(json.dumps(figures(report), indent=1) + "\n")
