"""What a person sees: the summary table and the parity checklists at 80 columns, the plots' labels placed
without overlap, the recommendation and shipped sentences, and report.html and the comparison page as headless
Chromium draws them at 1200 px (no overlapping text in the plots, nothing wider than the page).

COMPRESS_SCREENSHOTS=DIR keeps the browser's screenshots of both pages in DIR (CI artifacts, a review)."""

import copy
import html
import io
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from compress.cli import app
from compress.records import Report
from compress.reports import labels
from compress.reports.accuracy import recommendation_sentence, shipped_sentence
from compress.reports.compare import folder_names
from compress.tasks.classification import summary as cls_summary

from .conftest import copy_run, read_json


def rendered(width: int, draw) -> list[str]:
    """The lines ``draw(console)`` prints on a console ``width`` columns wide (not a terminal: no colour codes)."""
    console = Console(width=width, file=io.StringIO(), record=True, highlight=False)
    draw(console)
    return console.export_text().splitlines()


# ----------------------------------------------------------------------------- the terminal


def test_summary_fits_80_columns_and_wide_shows_every_column(tiny_shipped):
    run_dir, _, _ = tiny_shipped
    report = Report.model_validate(read_json(run_dir / "report.json"))
    names = [c.name for c in cls_summary.COLUMNS]
    for width in (80, 60):
        lines = rendered(width, lambda c: cls_summary.summary(c, run_dir, report))
        assert max(len(line) for line in lines) <= width, "\n".join(lines)
        assert not any("…" in line for line in lines), "\n".join(lines)
        header = next(line for line in lines if line.startswith("┃"))
        for v in report.variants:  # every name whole, on one line
            assert any(re.search(rf"│ {re.escape(v.name)} +│", line) for line in lines), v.name
        shown = [n for n in names if re.search(rf"[┃ ]{re.escape(n)}[ ┃]", header)]
        dropped = [c for c in cls_summary.COLUMNS if c.name not in shown]
        assert {"variant", "accuracy", "speedup"} <= set(shown)
        assert dropped, f"all ten columns fit {width} columns?"
        ranks = sorted(c.drop for c in cls_summary.COLUMNS if c.drop)
        assert sorted(c.drop for c in dropped) == ranks[:len(dropped)]  # left out in the stated order
        assert any(line.startswith(f"(not shown at {width} columns: ") for line in lines)
    wide = rendered(80, lambda c: cls_summary.summary(c, run_dir, report, wide=True))
    header = next(line for line in wide if line.startswith("┃"))
    assert all(f" {n} " in header for n in names) and not any("…" in line for line in wide)
    roomy = rendered(200, lambda c: cls_summary.summary(c, run_dir, report))
    header = next(line for line in roomy if line.startswith("┃"))
    assert all(f" {n} " in header for n in names) and not any(line.startswith("(not shown") for line in roomy)


def test_compress_report_prints_the_table_fitted_or_wide(tiny_shipped, tmp_path):
    run = copy_run(tiny_shipped, tmp_path / "tiny")
    narrow = CliRunner().invoke(app, ["report", str(run)], env={"COLUMNS": "80"})
    assert narrow.exit_code == 0, narrow.output
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80 and "…" not in narrow.stdout
    header = next(line for line in narrow.stdout.splitlines() if line.startswith("┃"))
    assert "p99 ms" not in header and "(not shown at 80 columns: " in narrow.stdout
    wide = CliRunner().invoke(app, ["report", str(run), "--wide"], env={"COLUMNS": "80"})
    assert wide.exit_code == 0, wide.output
    header = next(line for line in wide.stdout.splitlines() if line.startswith("┃"))
    assert all(f" {c.name} " in header for c in cls_summary.COLUMNS) and "…" not in wide.stdout


def test_parity_checklist_is_one_short_line_per_check():
    from compress.parity import print_checklist

    rows = [{"variant": "student-int8-static", "shape": shape, "max_abs_diff": diff, "top1_agreement": top1,
             "cosine": cos, "tolerance": "atol 0.0001, top-1 >= 90%, cosine >= 0.95", "ok": ok, "problems": []}
            for shape, diff, top1, cos, ok in (("batch 128 x length 128", 3.58e-07, 1.0, 1.0, True),
                                               ("batch 1 x length 7", 0.31, 0.5, -0.999999, False))]
    lines = rendered(80, lambda c: print_checklist(c, "student-int8-static (configured) vs PyTorch fp32", rows))
    assert lines[0] == "parity: student-int8-static (configured) vs PyTorch fp32"
    assert lines[1] == "  bounds: atol 0.0001, top-1 >= 90%, cosine >= 0.95"
    assert len(lines) == 4 and all(len(line) <= 80 for line in lines), lines
    assert lines[2].startswith("  [ok  ] batch 128 x length 128 ") and lines[3].startswith("  [FAIL] batch 1 x length 7")


# ----------------------------------------------------------------------------- label placement


def _boxes_clear(placed, obstacles, frame):
    rects = [p.rect for p in placed if p.rect is not None]
    for i, a in enumerate(rects):
        assert labels.inside(a, frame), a
        assert not any(labels.overlap_area(a, o) > 0 for o in obstacles), a
        assert not any(labels.overlap_area(a, b) > 0 for b in rects[i + 1:]), (a, rects)


def test_labels_go_beside_their_points_and_crowded_ones_become_numbers():
    frame = (0.0, 0.0, 400.0, 300.0)
    alone = labels.place([labels.Label("student-int8", 100, 150, 5, (44, 8))], [], frame)
    assert alone[0].text == "student-int8" and alone[0].rect[0] == 100 + 5 + labels.GAP  # right of it, nearest
    # five points on top of one another: some names, the rest numbers, nothing overlapping
    pile = [labels.Label(f"variant-{i}", 200, 150, 5, (40, 8)) for i in range(5)]
    markers = [(195, 145, 205, 155)]
    placed = labels.place(pile, markers, frame)
    _boxes_clear(placed, markers, frame)
    numbers = [p for p in placed if p.text != p.name]
    assert numbers and [p.text for p in numbers] == list(labels.CIRCLED[:len(numbers)])
    assert all(p.rect is not None for p in placed)
    edge = labels.place([labels.Label("teacher-onnx", 398, 298, 5, (48, 8))], [], frame)[0]
    assert edge.ha == "right" and labels.inside(edge.rect, frame)  # at the corner: to the left, below


def test_label_placement_never_overlaps_on_random_crowds():
    rng = np.random.default_rng(0)
    frame = (0.0, 0.0, 300.0, 200.0)
    for n in (3, 12, 70):
        xs, ys = rng.uniform(10, 290, n), rng.uniform(10, 190, n)
        markers = [(x - 5, y - 5, x + 5, y + 5) for x, y in zip(xs, ys)]
        todo = [labels.Label(f"v{i}-{'x' * int(rng.integers(2, 14))}", x, y, 5, (6.0 * (4 + i % 10), 8))
                for i, (x, y) in enumerate(zip(xs, ys))]
        placed = labels.place(todo, markers, frame)
        _boxes_clear(placed, markers, frame)
        assert [p.name for p in placed] == [t.text for t in todo]
    assert any(p.text.startswith("(") for p in placed)  # past ten numbers: (11), (12)...


# ----------------------------------------------------------------------------- what the report says


def test_report_says_what_was_shipped_and_why(tiny_shipped):
    run_dir, _, _ = tiny_shipped
    report = Report.model_validate(read_json(run_dir / "report.json"))
    assert report.get("shipped") == {"enabled": True, "variant": "student-int8"}
    sentence = shipped_sentence(report)
    assert sentence.startswith("Shipped: student-int8, chosen by ship.variant (onnx int8: ")
    assert "of the teacher's accuracy" in sentence and "97%" in sentence
    assert sentence in (run_dir / "report.md").read_text()
    assert html.escape(sentence, quote=True) in (run_dir / "report.html").read_text()
    off = Report.model_validate({**report.dump(), "shipped": {"enabled": False, "variant": "student-int8"}})
    assert shipped_sentence(off) == "Nothing shipped (ship.enabled: false)."


def test_a_size_pick_slower_than_the_teacher_says_so(tiny_shipped):
    run_dir, _, _ = tiny_shipped
    data = read_json(run_dir / "report.json")
    teacher = next(v for v in data["variants"] if v["name"] == "teacher")
    # a PyTorch int8 variant smaller than the shipped one (the demo's tiny.yaml leaves torch_dynamic out)
    shipped_row = next(v for v in data["variants"] if v["name"] == "student-int8")
    slow = {**copy.deepcopy(shipped_row), "name": "student-torch-int8", "format": "pytorch",
            "size_bytes": shipped_row["size_bytes"] // 2}
    data["variants"].append(slow)
    slow["speedup"], slow["latency_ms"]["p50"] = 0.05, teacher["latency_ms"]["p50"] * 20
    fast = next(v for v in data["variants"] if v["name"] == "student-onnx")
    fast["speedup"] = 3.0
    next(v for v in data["variants"] if v["name"] == "student-int8")["retention"] = 1.0  # shipped, above the floor
    data["recommended"]["size"] = {"name": "student-torch-int8", "size_bytes": slow["size_bytes"],
                                   "p50_ms": slow["latency_ms"]["p50"], "accuracy": slow["accuracy"], "retention": 1.0}
    data["recommended"]["latency"] = {"name": "student-onnx", "size_bytes": fast["size_bytes"], "p50_ms": 0.1,
                                      "accuracy": fast["accuracy"], "retention": 1.0}
    report = Report.model_validate(data)
    sentence = recommendation_sentence(report)
    size_part, latency_part = sentence.split(" where size matters most ")
    assert "student-torch-int8" in size_part and latency_part.split(";")[1] == " but 20x slower than the teacher)"
    assert "slower" not in latency_part.split("student-onnx where latency does")[1]
    shipped = shipped_sentence(report)
    assert "student-torch-int8 is smaller but runs only in PyTorch (a bundle holds an ONNX model)" in shipped


def test_runs_with_one_name_are_named_by_their_folders(tmp_path):
    a, b = tmp_path / "a" / "runs" / "tiny", tmp_path / "b" / "runs" / "tiny"
    assert folder_names([a, b]) == ["a/runs/tiny", "b/runs/tiny"]
    assert folder_names([tmp_path / "x" / "tiny", tmp_path / "y" / "tiny"]) == ["x/tiny", "y/tiny"]
    assert folder_names([a, a]) == ["tiny", "tiny"]  # one folder twice: told apart by a number later


# ----------------------------------------------------------------------------- the pages in a browser

MEASURE = """<pre id="measured"></pre>
<svg id="canary" width="60" height="20" style="position:absolute; left:0; top:0; visibility:hidden">
<g id="text_a"><rect x="0" y="0" width="40" height="10"/></g><g id="text_b"><rect x="30" y="5" width="20" height="10"/></g>
</svg><script>
const out = {pageWidth: document.documentElement.scrollWidth, viewport: window.innerWidth, overlaps: [],
             texts: 0, tables: []};
document.querySelectorAll("svg").forEach((svg, n) => {
  if (svg.id === "canary") n = "canary";  // two overlapping texts: the check must find them
  const boxes = [...svg.querySelectorAll('g[id^="text_"]')].map(g => [g.id, g.getBoundingClientRect()])
    .filter(([, r]) => r.width > 0 && r.height > 0);
  out.texts += boxes.length;
  boxes.forEach(([ida, a], i) => boxes.slice(i + 1).forEach(([idb, b]) => {
    const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
    const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
    if (w > 0.5 && h > 0.5) out.overlaps.push([n, ida, idb, Math.round(w * 10) / 10, Math.round(h * 10) / 10]);
  }));
});
document.querySelectorAll(".scroll").forEach(d => out.tables.push([d.scrollWidth, d.clientWidth]));
document.getElementById("measured").textContent = JSON.stringify(out);
</script>"""


def browser():
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install chromium); .ci/run installs it")
    return found


def in_browser(page, tmp_path, name):
    """(measurements of ``page`` at 1200 px: see MEASURE; the screenshot's path), from headless Chromium."""
    chromium = browser()
    common = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600"]
    measuring = tmp_path / f"{name}-measured.html"
    measuring.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    dom = subprocess.run([*common, "--dump-dom", measuring.resolve().as_uri()], check=True, capture_output=True,
                         text=True, timeout=180).stdout
    measured = json.loads(html.unescape(re.search(r'<pre id="measured">(.*?)</pre>', dom, re.DOTALL).group(1)))
    shot = tmp_path / f"{name}.png"
    subprocess.run([*common, f"--screenshot={shot}", page.resolve().as_uri()], check=True, capture_output=True,
                   timeout=180)
    if os.environ.get("COMPRESS_SCREENSHOTS"):
        os.makedirs(os.environ["COMPRESS_SCREENSHOTS"], exist_ok=True)
        shutil.copyfile(shot, os.path.join(os.environ["COMPRESS_SCREENSHOTS"], f"{name}.png"))
    return measured, shot


def assert_reads_at_a_glance(measured, shot, plots: int):
    canary = [o for o in measured["overlaps"] if o[0] == "canary"]
    assert canary == [["canary", "text_a", "text_b", 10, 5]], measured["overlaps"]  # the check sees an overlap
    overlaps = [o for o in measured["overlaps"] if o[0] != "canary"]
    assert overlaps == [], f"text over text in the plots (svg, ids, overlap w x h px): {overlaps}"
    assert measured["texts"] > 20 * plots + 2  # the plots' text was found: ticks, axis labels, titles, names
    assert measured["pageWidth"] <= measured["viewport"] == 1200, measured  # no horizontal scrolling of the page
    assert all(scroll <= width for scroll, width in measured["tables"]), measured["tables"]  # tables fit as they are
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(np.int16)
    assert pixels.shape[:2] == (1600, 1200)
    ink = (pixels.min(axis=2) < 230).mean()
    coloured = ((pixels.max(axis=2) - pixels.min(axis=2)) > 80).sum()  # saturated: markers, lines, highlights
    assert ink > 0.03, f"only {ink:.1%} of the page is not white"
    assert coloured > 500, f"only {coloured} saturated pixels: the plots' markers are missing"


def test_report_html_in_a_browser_has_no_overlapping_text_and_fits_the_page(tiny_shipped, tmp_path):
    run_dir, _, _ = tiny_shipped
    page = run_dir / "report.html"
    text = page.read_text()
    plots = text.count("<svg")
    assert "Accuracy against p50 latency\ntiny on cpu, batch 1, sequence length 32" in text  # each plot's title
    assert '<span class="tag shipped">shipped</span>' in text
    measured, shot = in_browser(page, tmp_path, "report")
    assert_reads_at_a_glance(measured, shot, plots)


def test_compare_page_in_a_browser_names_runs_by_folder_and_fits_the_page(tiny_shipped, tmp_path):
    base = copy_run(tiny_shipped, tmp_path / "a" / "tiny")
    new = copy_run(tiny_shipped, tmp_path / "b" / "tiny")
    data = read_json(new / "report.json")
    for v in data["variants"]:  # a second run a little apart, so the plots hold two clouds of points
        v["accuracy"] = round(v["accuracy"] * 0.98, 4)
        v["size_bytes"] = int(v["size_bytes"] * 1.3)
    (new / "report.json").write_text(json.dumps(data))
    out = tmp_path / "compare.html"
    result = CliRunner().invoke(app, ["report", str(base), str(new), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "compress comparison: a/tiny vs b/tiny" in text
    cases = [c for t in data["targets"] for c in t["cases"]]
    assert text.count("<svg") == 1 + len(cases)  # size, and latency on each target case both runs measured
    for c in cases:
        assert f"Accuracy against p50 latency\n{c['target']}, batch {c['batch_size']}, sequence length " \
               f"{c['sequence_length']}" in text
    measured, shot = in_browser(out, tmp_path, "compare")
    assert_reads_at_a_glance(measured, shot, 1 + len(cases))
