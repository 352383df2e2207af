"""report.html, `compress report` and `compress compare`: on the shared tiny run, on copies of its report.json
with figures edited, and on hand-made points."""

import json
import re
import shutil

from compress.reports.plots import pareto_front
from compress.tasks.classification.report import recommend

from .conftest import ROOT, copy_run, invoke, read_json

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//|@import|<script|<link""",
                      re.IGNORECASE)




def edit_report(run_dir, change):
    """Apply ``change(report)`` to run_dir/report.json."""
    path = run_dir / "report.json"
    report = json.loads(path.read_text())
    change(report)
    path.write_text(json.dumps(report))


def variant(report, name):
    return next(v for v in report["variants"] if v["name"] == name)


def rebuilt(report, name):
    """Mark a variant of an edited copy as another model (a copy's files have the same sha256 as the original's,
    so compress compare would call them unchanged)."""
    variant(report, name)["sha256"] = "0" * 64
    return variant(report, name)


def steady(p50, m):
    """Rounds of ``p50`` 2% apart in measurement ``m``: a spread far under any change a test makes."""
    m["latency_ms"]["p50"] = p50
    m.update(p50_rounds_ms=[p50 * 0.99, p50, p50 * 1.01], p50_range_ms=[p50 * 0.99, p50 * 1.01])


# ----------------------------------------------------------------------------- units


def test_pareto_front_of_hand_made_points():
    points = [(1.0, 0.80), (2.0, 0.85), (2.0, 0.84), (3.0, 0.85), (4.0, 0.90), (0.5, 0.70), (5.0, 0.89), (0.5, 0.60)]
    # (2, .84): same size, less accurate; (3, .85): larger, no more accurate; (5, .89): larger and worse;
    # (0.5, .60): as small as (0.5, .70) but worse
    assert pareto_front(points) == [5, 0, 1, 4]
    assert pareto_front([(1.0, 0.9), (1.0, 0.9)]) == [0, 1]  # equal points beat neither
    assert pareto_front([(3.0, 0.5), (1.0, 0.9)]) == [1]  # smaller and more accurate: the only one


def _variants(*rows):
    return [{"name": n, "size_bytes": size, "latency_ms": {"p50": p50}, "accuracy": acc, "retention": ret}
            for n, size, p50, acc, ret in rows]


def test_recommendation_is_the_smallest_and_the_fastest_above_the_floor():
    variants = _variants(("teacher", 100, 20.0, 0.90, 1.0), ("student", 50, 10.0, 0.88, 0.97778),
                         ("int8", 13, 4.0, 0.85, 0.94444), ("static", 14, 3.0, 0.876, 0.97333),
                         ("torch-int8", 14, 6.0, 0.879, 0.97667))
    rec = recommend(variants, 0.97)
    assert rec["retention_floor"] == 0.97
    assert rec["size"]["name"] == "torch-int8"  # 14 bytes like static, more accurate; int8 is under the floor
    assert rec["latency"]["name"] == "static"
    assert rec["size"]["retention"] >= 0.97 and rec["latency"]["p50_ms"] == 3.0
    assert recommend(variants, 0.9)["size"]["name"] == "int8"
    assert recommend(variants, 0.9)["latency"]["name"] == "static"
    assert recommend(variants, 1.0)["size"]["name"] == "teacher"  # only the teacher keeps all of itself
    nothing = recommend(_variants(("teacher", 100, 20.0, 0.0, None)), 0.97)
    assert nothing["size"] is None and nothing["latency"] is None


def test_markdown_lines_become_html():
    from compress.reports.html import markdown_html

    page = markdown_html(["", "## Quantization", "", "Made for `avx2` & <co>", "over two lines.", "",
                          "| variant | drop |", "|---|---:|", "| a<b | +0.10 |", "", "- one `x`", "- two"])
    assert page.splitlines() == [
        "<h2>Quantization</h2>",
        "<p>Made for <code>avx2</code> &amp; &lt;co&gt; over two lines.</p>",
        '<div class="scroll"><table><thead><tr><th>variant</th><th class="num">drop</th></tr></thead><tbody><tr><td>'
        '<span class="name">a&lt;b</span></td><td class="num">+0.10</td></tr></tbody></table></div>',
        "<ul><li>one <code>x</code></li><li>two</li></ul>",
    ]


def test_retention_floor_is_validated():
    result = invoke("validate", ROOT / "pipelines" / "tiny.yaml", "report.retention_floor=1.5")
    assert result.exit_code == 2
    assert "report.retention_floor: must be <= 1, got 1.5" in result.stderr
    result = invoke("validate", ROOT / "pipelines" / "tiny.yaml", "report.floor=0.9")
    assert result.exit_code == 2 and "report.floor: unknown key" in result.stderr


# ----------------------------------------------------------------------------- report.html of a real run


def test_report_html_is_self_contained_with_two_plots_and_the_recommendation(tiny_shipped):
    run_dir, _, _ = tiny_shipped
    report = read_json(run_dir / "report.json")
    rec = report["recommended"]
    assert rec["retention_floor"] == 0.97
    keep = [v for v in report["variants"] if v["retention"] >= 0.97]
    assert rec["size"]["name"] in {v["name"] for v in keep if v["size_bytes"] == min(k["size_bytes"] for k in keep)}
    fastest = min(v["latency_ms"]["p50"] for v in keep)
    assert rec["latency"]["name"] in {v["name"] for v in keep if v["latency_ms"]["p50"] == fastest}

    page = (run_dir / "report.html").read_text()
    cases = [c for t in report["targets"] for c in t["cases"]]  # size, and latency on each target case
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 1 + len(cases) >= 4
    assert not EXTERNAL.search(page), EXTERNAL.search(page).group(0)
    assert "data:" not in page.replace("metadata", "")  # no embedded fonts or images: the SVG text is paths
    for v in report["variants"]:  # the table names every variant
        assert f"<td><span class=\"name\">{v['name']}</span>" in page
    assert 'class="recommended"' in page and rec["size"]["name"] in page
    assert page.count("<figcaption>") == 1 + len(cases)
    assert f"{report['eval']['sentences']} sentences of the {report['eval']['split']} split" in page
    assert "## Quantization" not in page and "<h2>Quantization</h2>" in page  # report.md's section, as HTML
    md = (run_dir / "report.md").read_text()
    assert "Recommended" in md and rec["size"]["name"] in md.split("Recommended", 1)[1].split("\n", 1)[0]


def test_report_html_escapes_text(tiny_shipped):
    from compress.records import Report
    from compress.reports.html import render_run

    run_dir, _, _ = tiny_shipped
    report = read_json(run_dir / "report.json")
    # renamed everywhere it appears (variants, recommendations, per-target cases), so the run stays consistent
    evil = json.loads(json.dumps(report).replace('"student-int8"', json.dumps("<img src=x onerror=alert(1)>")))
    assert variant(evil, "<img src=x onerror=alert(1)>")
    evil["eval"]["split"] = "a&b<script>"
    page = render_run(Report.model_validate(evil))
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script>" not in page and "a&amp;b&lt;script&gt;" in page


def test_retention_floor_change_reruns_only_report_and_ship(tiny_shipped, tmp_path):
    run_dir, _, overrides = tiny_shipped
    shutil.copytree(run_dir.parent, tmp_path / "runs")
    changed = [o for o in overrides if not o.startswith("ship.dir=")]
    result = invoke("run", ROOT / "pipelines" / "tiny.yaml", "--runs-dir", tmp_path / "runs",
                    f"ship.dir={tmp_path / 'exports'}", "report.retention_floor=1.0", *changed)
    assert result.exit_code == 0, result.output + (result.stderr or "")
    ran = {line.split()[1] for line in result.output.splitlines() if line.startswith("done ")}
    assert ran == {"report", "ship"}
    rec = read_json(tmp_path / "runs" / "tiny" / "report.json")["recommended"]
    assert rec["retention_floor"] == 1.0 and rec["size"]["retention"] >= 1.0 and rec["latency"]["retention"] >= 1.0
    assert "at least 100% of the teacher's accuracy" in (tmp_path / "runs" / "tiny" / "report.md").read_text()
    assert "at least 100% of the teacher&#x27;s accuracy" in (tmp_path / "runs" / "tiny" / "report.html").read_text()


# ----------------------------------------------------------------------------- compress report


def test_report_rerenders_one_run_from_report_json_alone(tiny_shipped, tmp_path):
    run_dir, _, _ = tiny_shipped
    folder = copy_run(tiny_shipped, tmp_path / "tiny")
    (folder / "report.md").unlink()
    (folder / "report.html").unlink()
    result = invoke("report", folder)
    assert result.exit_code == 0, result.output
    assert (folder / "report.md").read_text() == (run_dir / "report.md").read_text()
    assert (folder / "report.html").read_text() == (run_dir / "report.html").read_text()  # deterministic SVG too
    out = tmp_path / "elsewhere" / "page.html"
    assert invoke("report", folder / "report.json", "--out", out).exit_code == 0
    assert out.read_text() == (run_dir / "report.html").read_text()


def test_report_compares_two_runs_on_the_same_plots(tiny_shipped, tmp_path, monkeypatch):
    base = copy_run(tiny_shipped, tmp_path / "a" / "tiny")
    new = copy_run(tiny_shipped, tmp_path / "b" / "tiny")
    edit_report(new, lambda r: r.update(name="tiny-fast"))
    monkeypatch.chdir(tmp_path)
    result = invoke("report", base, new)
    assert result.exit_code == 0, result.output
    page = (tmp_path / "compare.html").read_text()
    cases = [c for t in read_json(base / "report.json")["targets"] for c in t["cases"]]
    assert page.count("<svg") == 1 + len(cases) and not EXTERNAL.search(page)  # size, and latency per target case
    assert "compress comparison: tiny vs tiny-fast" in page
    rows = read_json(base / "report.json")["variants"]
    assert page.count('<span class="swatch"') == 2 + 2 * len(rows)  # a run table row and a row per variant, each run
    assert not list(tmp_path.glob(".compare.html.tmp*"))  # written through a temporary file

    same = invoke("report", base, base, "--out", tmp_path / "same.html")  # one folder twice: told apart
    assert same.exit_code == 0, same.output
    assert "compress comparison: tiny #1 vs tiny #2" in (tmp_path / "same.html").read_text()


def test_report_names_a_missing_or_unfinished_run(tiny_shipped, tmp_path):
    good = copy_run(tiny_shipped, tmp_path / "good")
    unfinished = tmp_path / "runs" / "half"
    (unfinished / "teacher").mkdir(parents=True)
    (unfinished / "teacher" / "stage.json").write_text("{}")
    result = invoke("report", good, unfinished, tmp_path / "gone")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: {unfinished}: no report.json: not a finished run (finished stages: teacher; the report stage "
        "writes it: run compress run again to finish the run)",
        f"error: {tmp_path / 'gone'}: not found (give a run folder, runs/<name>, or its report.json)",
    ]
    assert "Traceback" not in result.output
    (good / "report.json").write_text('{"name": "x"}')
    bad = invoke("report", good)
    assert bad.exit_code == 2 and bad.stderr.strip() == \
        f"error: {good / 'report.json'}: not a compress report.json: no 'target' key"


# ----------------------------------------------------------------------------- compress compare


def test_compare_passes_on_itself_and_lists_variants_of_one_run(tiny_shipped, tmp_path):
    run_dir, _, _ = tiny_shipped
    result = invoke("compare", run_dir, run_dir / "report.json")
    assert result.exit_code == 0, result.output
    assert "ok: " in result.stdout and "student-int8" in result.stdout and not result.stderr
    table = result.stdout.split("\nonly in")[0].split("\nunchanged")[0]  # the table and the note under it
    assert max(map(len, table.splitlines())) <= 80 and "…" not in table  # CliRunner's console: 80 columns
    assert ("(not shown at 80 columns: accuracy base -> new, retention base -> new, p50 ms base -> new, size MB "
            "base -> new, peak MiB base -> new; --wide shows all)") in " ".join(table.split())  # the changes stay
    wide = invoke("compare", run_dir, run_dir / "report.json", "--wide")
    assert "peak MiB" in wide.stdout and "not shown" not in wide.stdout

    new = copy_run(tiny_shipped, tmp_path / "new")
    edit_report(new, lambda r: r.update(variants=[v for v in r["variants"] if v["name"] != "student-int8-static"]))
    result = invoke("compare", run_dir, new)
    assert result.exit_code == 0, result.output
    assert "only in base (not compared): student-int8-static" in result.stdout


def test_compare_fails_on_a_retention_drop(tiny_shipped, tmp_path):
    run_dir, _, _ = tiny_shipped
    new = copy_run(tiny_shipped, tmp_path / "new")
    base_acc = variant(read_json(run_dir / "report.json"), "student-int8")["accuracy"]
    teacher = variant(read_json(run_dir / "report.json"), "teacher")["accuracy"]
    edit_report(new, lambda r: rebuilt(r, "student-int8").update(accuracy=round(base_acc - 0.05, 5)))
    result = invoke("compare", run_dir, new)
    assert result.exit_code == 1
    failures = result.stderr.strip().splitlines()
    drop = 5 / teacher
    assert failures == [f"regression: student-int8: retention fell {drop:.2f} points ({base_acc / teacher:.2%} -> "
                        f"{(base_acc - 0.05) / teacher:.2%}; accuracy {base_acc:.4f} -> {base_acc - 0.05:.4f}), more "
                        "than the 0.5 allowed by --max-retention-drop"]
    assert invoke("compare", run_dir, new, "--max-retention-drop", f"{drop + 1:.0f}").exit_code == 0


def test_compare_fails_on_a_latency_increase(tiny_shipped, tmp_path):
    run_dir, _, _ = tiny_shipped
    base, new = copy_run(tiny_shipped, tmp_path / "base"), copy_run(tiny_shipped, tmp_path / "new")
    p50 = variant(read_json(run_dir / "report.json"), "student-onnx")["latency_ms"]["p50"]
    edit_report(base, lambda r: steady(p50, variant(r, "student-onnx")))
    edit_report(new, lambda r: steady(p50 * 1.5, rebuilt(r, "student-onnx")))
    result = invoke("compare", base, new)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"regression: student-onnx: p50 latency grew 50.0% ({p50:.2f} ms -> {p50 * 1.5:.2f} ms), more than the 10% "
        f"allowed by --max-latency-increase and than the runs' spread over rounds ({p50 * 0.99:.2f}-{p50 * 1.01:.2f} "
        f"ms; {p50 * 1.5 * 0.99:.2f}-{p50 * 1.5 * 1.01:.2f} ms)"]
    assert invoke("compare", base, new, "--max-latency-increase", "60").exit_code == 0
    faster = invoke("compare", new, base)  # a faster new run is no regression
    assert faster.exit_code == 0, faster.output
    # the same 50% inside the runs' own spread over rounds: noise, said so, exit 0
    edit_report(new, lambda r: variant(r, "student-onnx").update(p50_range_ms=[p50 * 0.5, p50 * 2.2]))
    noise = invoke("compare", base, new)
    assert noise.exit_code == 0, noise.output
    assert "noise, not a regression: student-onnx: p50 " in noise.stdout and "within the runs' spread" in noise.stdout
    # the same model file in both runs: unchanged, whatever its figures did
    edit_report(new, lambda r: variant(r, "student-onnx").update(sha256=variant(r, "student-int8")["sha256"],
                                                                 p50_range_ms=[p50 * 1.49, p50 * 1.51]))
    edit_report(base, lambda r: variant(r, "student-onnx").update(sha256=variant(r, "student-int8")["sha256"]))
    same = invoke("compare", base, new)
    assert same.exit_code == 0, same.output
    assert "unchanged (the same model file sha256 in both runs; never a regression): " in same.stdout


def test_compare_fails_on_a_latency_increase_on_one_target_case(tiny_shipped, tmp_path):
    run_dir, _, _ = tiny_shipped
    base, new = copy_run(tiny_shipped, tmp_path / "base"), copy_run(tiny_shipped, tmp_path / "new")
    p50 = variant(read_json(run_dir / "report.json"), "student-int8")["measurements"]["mobile@16"]["latency_ms"]["p50"]
    edit_report(base, lambda r: steady(p50, variant(r, "student-int8")["measurements"]["mobile@16"]))
    edit_report(new, lambda r: steady(p50 * 2, rebuilt(r, "student-int8")["measurements"]["mobile@16"]))
    result = invoke("compare", base, new)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"regression: student-int8: p50 latency on mobile@16 grew 100.0% ({p50:.2f} ms -> {p50 * 2:.2f} ms), more than "
        f"the 10% allowed by --max-latency-increase and than the runs' spread over rounds ({p50 * 0.99:.2f}-"
        f"{p50 * 1.01:.2f} ms; {p50 * 2 * 0.99:.2f}-{p50 * 2 * 1.01:.2f} ms)"]
    old = copy_run(tiny_shipped, tmp_path / "old")  # a report.json from before targets: top-level figures only

    def before_targets(report):
        del report["targets"]
        for v in report["variants"]:
            del v["measurements"]

    edit_report(old, before_targets)
    assert invoke("compare", old, new).exit_code == 0
    assert invoke("report", old).exit_code == 0 and "<svg" in (old / "report.html").read_text()


def test_compare_refuses_what_it_cannot_compare(tiny_shipped, tmp_path):
    run_dir, _, _ = tiny_shipped
    result = invoke("compare", run_dir, tmp_path / "nope")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nope'}: not found (give a run folder, runs/<name>, or its report.json)"
    other = copy_run(tiny_shipped, tmp_path / "other")
    edit_report(other, lambda r: [v.update(name=v["name"] + "-x") for v in r["variants"]])
    result = invoke("compare", run_dir, other)
    assert result.exit_code == 2 and "no variant in common" in result.stderr


# The pages as a browser draws them, the terminal's tables: tests/test_screens.py
