"""Sweeps (compress/sweep.py, compress/reports/sweep.py): points expanded from a grid and named entries, bad
keys refused at load, a tiny sweep through the real CLI with the teacher trained once, the budget, resume."""

import re

import pytest

from compress.config.sweep import expand
from compress.errors import ConfigError
from compress.tasks import load_config

from .conftest import FAST, ROOT, invoke, read_json

SWEEP = ROOT / "pipelines" / "distilbert-sweep.yaml"
# The tiny pipeline, as short as it goes: the loop is the point, not the figures.
TINY_FAST = [*FAST, "teacher.train.epochs=1", "distill.train.epochs=1", "data.generated_size=300", "baselines.enabled=false",
             "mobile.enabled=false", "ship.enabled=false", "quantize.variants=[{name: student-int8, method: onnx_dynamic}]",
             "quantize.accuracy_samples=50", "quantize.latency_runs=5"]


def tiny_sweep(tmp_path, block: str):
    """pipelines/tiny.yaml renamed tiny-sweep, with ``block`` (the sweep section) appended."""
    text = (ROOT / "pipelines" / "tiny.yaml").read_text().replace("name: tiny", "name: tiny-sweep")
    path = tmp_path / "tiny-sweep.yaml"
    path.write_text(text + "\n" + block)
    return path


def test_points_of_the_shipped_sweep():
    cfg = load_config(SWEEP)
    points = expand(cfg.sweep)
    assert len(points) == 18  # hard: 1 per student; soft and combined: 4 temperatures x 2 students
    by = {p.name: p for p in points}
    assert [n for n in by if n.startswith("hard")] == ["hard_layers0-2-4", "hard_layers0-3"]
    assert by["hard_layers0-3"].settings == {"distill.alpha": 1.0, "distill.temperature": 1, "student.layers": [0, 3]}
    assert by["soft_temperature8_layers0-2-4"].overrides == ["distill.alpha=0.0", "distill.temperature=8",
                                                           "student.layers=[0, 2, 4]"]
    assert sum(n.startswith("combined_") for n in by) == 8
    assert len(set(by)) == 18
    # each point is the base config with its overrides: the same as compress run ... key=value
    from compress.config import load_raw
    from compress.config.sweep import point_config, point_raw
    from compress.tasks import validate_config

    raw = load_raw(SWEEP)
    pcfg = point_config(raw, by["soft_temperature8_layers0-2-4"], validate_config)
    assert (pcfg.distill.temperature, pcfg.distill.alpha, pcfg.student.layers) == (8.0, 0.0, [0, 2, 4])
    assert pcfg.name == "distilbert-sweep-soft_temperature8_layers0-2-4" and pcfg.sweep is None
    assert "sweep" not in point_raw(raw, by["hard_layers0-3"])


def test_grid_alone_and_entries_alone(tmp_path):
    cfg = load_config(tiny_sweep(tmp_path, "sweep:\n  grid: {distill.temperature: [1, 2.5], distill.alpha: [0, 1]}\n"))
    assert [p.name for p in expand(cfg.sweep)] == ["temperature1_alpha0", "temperature1_alpha1",
                                                   "temperature2.5_alpha0", "temperature2.5_alpha1"]
    cfg = load_config(tiny_sweep(tmp_path, "sweep:\n  points: [{name: a, distill.alpha: 0.2}, {name: b}]\n"))
    assert [(p.name, p.settings) for p in expand(cfg.sweep)] == [("a", {"distill.alpha": 0.2}), ("b", {})]


@pytest.mark.parametrize("block, expected", [
    ("sweep:\n  points: [{name: a, distill.alpha: 0.5}, {name: b, distill.alpah: 0.1}]\n",
     "sweep.points.1 (b): distill.alpah: unknown key; did you mean 'alpha'?"),
    ("sweep:\n  grid: {distill.temperature: [1, -2]}\n",
     "sweep.grid: distill.temperature: must be > 0, got -2"),
    ("sweep:\n  points: [{name: a, distill.alpha: 3}]\n",
     "sweep.points.0 (a): distill.alpha: must be <= 1, got 3"),
    ("sweep:\n  points: [{name: a}, {name: a, distill.alpha: 0.1}]\n",
     "sweep.points.1.name: a is used twice"),
    ("sweep:\n  points: [{distill.alpha: 0.1}]\n",
     "sweep.points.0.name: every point needs a name"),
    ("sweep:\n  grid: {distill.temperature: []}\n",
     "sweep.grid.distill.temperature: needs at least one value"),
    ("sweep:\n  budget_minutes: 10\n",
     "sweep: give grid"),
    ("sweep:\n  points: [{name: a, sweep.budget_minutes: 3}]\n",
     "sweep.points.0 (a): sweep.budget_minutes: a point sets pipeline settings"),
])
def test_a_bad_point_is_one_line_at_load(tmp_path, block, expected):
    with pytest.raises(ConfigError) as info:
        load_config(tiny_sweep(tmp_path, block))
    assert len(info.value.problems) == 1, info.value.problems
    assert info.value.problems[0].startswith(expected), info.value.problems


def test_cli_refuses_a_bad_point_before_running_anything(tmp_path):
    path = tiny_sweep(tmp_path, "sweep:\n  grid: {distill.temperature: [1, 2]}\n"
                                "  points: [{name: hard, distill.alpha: 1.0}, {name: soft, distill.alpah: 0.0}]\n")
    result = invoke("run", path, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [l for l in lines if l.startswith("error: sweep.points.1 (soft): distill.alpah: unknown key")]
    assert len(lines) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


def test_tiny_sweep_shares_the_teacher_keeps_finished_points_and_keeps_to_its_budget(tmp_path):
    runs = tmp_path / "runs"
    block = "sweep:\n  grid: {distill.temperature: [1, 4]}\n  points: [{name: soft, distill.alpha: 0.0}]\n"
    path = tiny_sweep(tmp_path, block)
    result = invoke("run", path, "--runs-dir", runs, *TINY_FAST)
    assert result.exit_code == 0, result.output + (result.stderr or "")
    sweep_dir = runs / "tiny-sweep"
    first, second = (sweep_dir / "points" / n for n in ("soft_temperature1", "soft_temperature4"))
    t1, t2 = read_json(first / "teacher" / "stage.json"), read_json(second / "teacher" / "stage.json")
    assert "shared_from" not in t1 and t2["shared_from"] == str(first)  # fine-tuned once, in the first point
    assert t2["finished"] == t1["finished"] and t2["inputs_hash"] == t1["inputs_hash"]
    assert (first / "teacher" / "model" / "model.safetensors").stat().st_ino == \
        (second / "teacher" / "model" / "model.safetensors").stat().st_ino  # a hard link, not a copy
    assert f"skip teacher shared: the same inputs finished in {first}" in " ".join(result.output.split())
    d1, d2 = read_json(first / "distill" / "stage.json"), read_json(second / "distill" / "stage.json")
    assert d1["metrics"]["cache"]["hit"] is False and d2["metrics"]["cache"]["hit"] is True  # one teacher pass
    assert d1["metrics"]["cache"]["dir"] == str(runs / ".cache" / "teacher-outputs")
    assert (d1["metrics"]["temperature"], d2["metrics"]["temperature"]) == (1.0, 4.0)

    summary = read_json(sweep_dir / "sweep.json")
    assert [p["name"] for p in summary["points"]] == ["soft_temperature1", "soft_temperature4"]
    for p in summary["points"]:
        assert p["status"] == "done" and p["overrides"][0] == "distill.alpha=0.0"
        assert p["variant"] == "student-int8" and p["size_bytes"] > 0 and p["p50_ms"] > 0
        assert 0 < p["accuracy"] <= 1 and p["retention"] == pytest.approx(p["accuracy"] / summary["teacher"]["accuracy"], abs=1e-3)
        assert p["parameters"] < summary["teacher"]["parameters"]
    assert summary["frontier"] and summary["teacher"]["parameters"] > 0  # the tiny teacher barely trains: figures vary
    md = (sweep_dir / "sweep.md").read_text()
    assert md.count("| soft_temperature") == 2 and "| soft_temperature4 | 4 | 0 | 2 layers (0, 2) |" in md
    assert "## Accuracy by temperature" in md and "| soft, 2 layers (0, 2) | 0." in md  # one curve: T=1 and T=4
    page = (sweep_dir / "sweep.html").read_text()
    assert page.count("<svg") == 2 and "Retention against size" in page and "Accuracy against temperature" in page
    assert not re.search(r"<script|<link|https?://(?!www\.w3\.org)", page)  # self-contained

    # run again with a third point and a budget already spent: the two finished points are kept, the new one skipped
    stamps = {d: read_json(d / "distill" / "stage.json")["finished"] for d in (first, second)}
    path = tiny_sweep(tmp_path, block.replace("[1, 4]", "[1, 4, 8]") + "  budget_minutes: 0.000001\n")
    again = invoke("run", path, "--runs-dir", runs, *TINY_FAST)
    assert again.exit_code == 0, again.output + (again.stderr or "")
    statuses = {p["name"]: p["status"] for p in read_json(sweep_dir / "sweep.json")["points"]}
    assert statuses == {"soft_temperature1": "kept", "soft_temperature4": "kept", "soft_temperature8": "skipped"}
    assert "budget" in read_json(sweep_dir / "sweep.json")["points"][2]["reason"]
    assert not (sweep_dir / "points" / "soft_temperature8").exists()
    assert {d: read_json(d / "distill" / "stage.json")["finished"] for d in (first, second)} == stamps

    # without the budget the missing point runs, sharing the teacher and the student; the others stay as they were
    path = tiny_sweep(tmp_path, block.replace("[1, 4]", "[1, 4, 8]"))
    third = invoke("run", path, "--runs-dir", runs, *TINY_FAST)
    assert third.exit_code == 0, third.output + (third.stderr or "")
    statuses = {p["name"]: p["status"] for p in read_json(sweep_dir / "sweep.json")["points"]}
    assert statuses == {"soft_temperature1": "kept", "soft_temperature4": "kept", "soft_temperature8": "done"}
    new = sweep_dir / "points" / "soft_temperature8"
    assert read_json(new / "teacher" / "stage.json")["finished"] == t1["finished"]
    assert "shared_from" in read_json(new / "student" / "stage.json")
    assert {d: read_json(d / "distill" / "stage.json")["finished"] for d in (first, second)} == stamps

    # a kept point is checked as a rerun checks a run: a file changed since fails that point, naming the file and
    # the --from command; the other points are kept
    weights = first / "distill" / "model" / "model.safetensors"  # the point's own (the teacher is a shared hard link)
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    fourth = invoke("run", path, "--runs-dir", runs, *TINY_FAST)
    assert fourth.exit_code == 2 and "Traceback" not in fourth.output
    statuses = {p["name"]: p["status"] for p in read_json(sweep_dir / "sweep.json")["points"]}
    assert statuses == {"soft_temperature1": "failed", "soft_temperature4": "kept", "soft_temperature8": "kept"}
    error = fourth.stderr.splitlines()[0]
    assert error.startswith(f"error: sweep point soft_temperature1 failed: {weights}: sha256 differs"), error
    assert error.endswith(" --from distill"), error


def _point(name, entry, t, alpha, student, acc, sizes=((40e6, "fp32"), (10e6, "int8")), teacher=0.9):
    variants = [{"name": f"student-{p}", "precision": p, "size_bytes": s, "accuracy": acc, "accuracy_ci95": [acc - .02, acc + .02],
                 "retention": acc / teacher, "p50_ms": 2.0} for s, p in sizes]
    return {"name": name, "entry": entry, "grid": {"distill.temperature": t}, "status": "done", "temperature": t,
            "alpha": alpha, "student": student, "parameters": 1e6, "accuracy": acc, "accuracy_ci95": [acc - .02, acc + .02],
            "retention": acc / teacher, "variant": "student-int8", "size_bytes": sizes[-1][0], "variant_accuracy": acc,
            "variant_retention": acc / teacher, "p50_ms": 2.0, "variants": variants}


def test_sweep_summary_frontier_curves_table_and_page():
    from compress.reports.sweep import curves, frontier, markdown, render
    from compress.tasks.classification.sweep import METRIC

    teacher = {"accuracy": 0.9, "accuracy_ci95": [0.88, 0.92], "parameters": 2e7, "size_bytes": 9e7, "p50_ms": 20.0,
               "onnx_size_bytes": 9e7, "onnx_p50_ms": 9.0, "text": "Teacher: accuracy 0.9000."}
    points = [_point("hard_big", "hard", 1, 1.0, "3 layers", 0.85),
              *(_point(f"soft_T{t}_big", "soft", t, 0.0, "3 layers", acc) for t, acc in ((1, 0.84), (2, 0.86), (4, 0.87))),
              *(_point(f"soft_T{t}_small", "soft", t, 0.0, "2 layers", acc, sizes=((30e6, "fp32"), (8e6, "int8")))
                for t, acc in ((1, 0.80), (2, 0.82), (4, 0.81))),
              {"name": "soft_T8_big", "entry": "soft", "grid": {}, "status": "skipped", "reason": "budget: 5.0 of 4 spent"}]
    front = frontier(points, teacher)
    # smallest first, accuracy rising: the best small int8, the best big int8, then the teacher
    assert [(f["point"], f["variant"]) for f in front] == [("soft_T2_small", "student-int8"), ("soft_T4_big", "student-int8"),
                                                          ("teacher", "teacher-onnx")]
    lines, references = curves(points)
    assert list(lines) == ["soft, 3 layers", "soft, 2 layers"]
    assert [p["temperature"] for p in lines["soft, 2 layers"]] == [1, 2, 4]
    assert [p["name"] for p in references] == ["hard_big"]
    summary = {"name": "s", "created": "now", "pipeline": "p.yaml", "command_overrides": [], "budget_minutes": 4,
               "wall_seconds": 300.0, "eval": {"split": "test", "sentences": 872}, "teacher": teacher, "points": points,
               "frontier": front, "metric": METRIC}
    md = "\n".join(markdown(summary))
    assert "| soft_T4_big | 4 | 0 | 3 layers | 1.0M | 0.8700 | 96.7% | student-int8 | 10.0 | 0.8700 | 2.00 | done |" in md
    assert "| soft, 2 layers | 0.8000 | 0.8200 | 0.8100 | - |" in md
    assert "| hard, 3 layers | - | - | - | 0.8500 |" in md
    assert "Skipped: soft_T8_big: budget: 5.0 of 4 spent." in md
    assert "7 of 8 points finished" in md and "Teacher: accuracy 0.9000." in md
    assert "| soft_T8_big | - | - | - | - | - | - | - | - | - | - | skipped |" in md
    page = render(summary)
    assert "Accuracy against temperature" in page and "retention (accuracy / teacher&#x27;s)" in page
    assert page.count("<svg") == 2 and "<script" not in page
    assert "soft_T2_small int8" not in md and page.count("<table") == 2


def test_a_sweep_point_names_its_student_and_what_refine_made_of_it():
    from compress.reports.sweep import describe_student

    layers = {"method": "layers", "layers": [0, 2, 4]}
    assert describe_student(layers) == "3 layers (0, 2, 4)"
    assert describe_student({"method": "config", "count": 4, "width": 256}) == "4 layers x 256"
    refine = {"num_attention_heads": [12, 6], "intermediate_size": [1536, 768], "taught_by": "student"}
    assert describe_student(layers, refine) == "3 layers (0, 2, 4), refined to 6 heads, 768 feed-forward"
    assert describe_student(layers, {"intermediate_size": [1536, 512]}) == "3 layers (0, 2, 4), refined to 512 feed-forward"
    ranked = {"method": "layers", "layers": [0, 1, 2, 3, 5, 7, 8], "ffn": {"intermediate_size": 1024}}  # a causal LM's
    assert describe_student(ranked) == "7 layers (0-3, 5, 7, 8), 1024 feed-forward"
