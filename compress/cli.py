"""The ``compress`` command. Heavy libraries are imported inside commands, so ``--help`` is instant."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import List, Optional

import typer

from compress import __version__
from compress.errors import CompressError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Distil a teacher into a small student, quantize it, export it to ONNX, benchmark it "
    "against the teacher, and ship an edge bundle, in one reproducible run.",
)

EXIT_USAGE = 2  # bad config, bad data, bad or tampered files
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT); 143 for SIGTERM: 128 + the signal number, as a shell reports it


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, `kill`), handled like Ctrl-C: temporary folders removed, checkpoints kept."""


def _on_sigterm(signum, frame):
    raise Terminated()


def resume_command() -> str:
    """The command line of this process, as the user can type it again."""
    import shlex
    import sys

    return f"{_program()} {shlex.join(sys.argv[1:])}".strip()


def _program() -> str:
    """How this process was started: ``python -m compress`` or the ``compress`` script (anything else, such as a
    test runner calling the app, is named ``compress``)."""
    import sys

    started = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    return "python -m compress" if started.parts[-2:] == ("compress", "__main__.py") else "compress"


def rerun_command(pipeline: Path, overrides: list[str], runs_dir: Path, stage: str) -> str:
    """The ``compress run`` command that reruns ``stage`` and every stage after it, with this run's settings."""
    import shlex

    where = ["--runs-dir", str(runs_dir)] if runs_dir != Path("runs") else []
    return f"{_program()} run {shlex.join([str(pipeline), *where, *overrides, '--from', stage])}"


def guarded(func):
    """Domain errors become one line each on stderr and exit code 2, without a traceback; Ctrl-C and SIGTERM
    one line saying how to resume, exit code 130 / 143."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        import signal
        import threading

        main_thread = threading.current_thread() is threading.main_thread()  # signals reach only the main thread
        if main_thread:
            previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, _on_sigterm), signal.SIGINT: signal.getsignal(signal.SIGINT)}
        try:
            return func(*args, **kwargs)
        except CompressError as exc:
            for problem in exc.problems:
                typer.echo(f"error: {problem}", err=True)
            raise typer.Exit(EXIT_USAGE) from None
        except KeyboardInterrupt as exc:
            if main_thread:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not break the message in half
            code = 128 + signal.SIGTERM if isinstance(exc, Terminated) else EXIT_INTERRUPTED
            typer.echo(f"interrupted: finished stages and training checkpoints are kept; resume with: "
                       f"{resume_command()}", err=True)
            raise typer.Exit(code) from None
        finally:
            if main_thread:
                for signum, handler in previous.items():
                    if handler is not None:  # None: a handler not set from Python, which cannot be put back
                        signal.signal(signum, handler)

    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"compress {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    pass


OverridesArg = typer.Argument(None, help="key=value settings that win over the YAML, e.g. distill.temperature=2")
WideOption = typer.Option(False, "--wide", help="Every column of the summary table, however narrow the terminal "
                          "(otherwise columns are left out, in a stated order, to fit it).")


def _console(**kwargs):
    """A rich Console for tables: the terminal's width; in logs and CI (not a terminal) COLUMNS when set, else 150."""
    from rich.console import Console

    console = Console(**kwargs)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = max(console.width, 150)
    return console


@app.command()
@guarded
def run(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML, e.g. pipelines/distilbert.yaml"),
    overrides: Optional[List[str]] = OverridesArg,
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Run folders go to RUNS_DIR/<name>/."),
    rerun_from: Optional[str] = typer.Option(None, "--from", metavar="STAGE", help="Rerun this stage and every "
                                             "stage after it, even where finished (in a sweep: in every point)."),
    wide: bool = WideOption,
) -> None:
    """Run a pipeline: teacher, student, distill, refine, baseline, trim, export, quantize, mobile, bench, report, ship.

    Finished stages whose inputs have not changed are skipped, once every file they wrote
    is checked against the sha256 their stage.json records (a changed, missing or added file
    stops the run, naming it and the --from command that reruns its stage); a changed setting
    reruns its stage and every stage after it. A pipeline with a sweep block runs once per point
    (RUNS_DIR/<name>/points/<point>/) and writes sweep.json, sweep.md and sweep.html.
    """
    from compress.tasks import load_config

    _quiet_libraries()  # the checks at load import transformers: its warnings and torch's are not errors
    cfg = load_config(pipeline, overrides or [], runs_dir=runs_dir)
    from compress import pipeline as recipe

    main_process = int(os.environ.get("RANK", "0")) == 0  # under accelerate launch / torchrun only rank 0 speaks
    again = functools.partial(rerun_command, pipeline, overrides or [], runs_dir)
    console = _console(quiet=not main_process)
    if cfg.sweep is not None:
        from compress import sweep

        sweep_dir = sweep.run(pipeline, overrides or [], cfg, runs_dir, console, rerun_from, again)
        if main_process:
            _sweep_summary(console, sweep_dir, wide)
        return
    run_dir = recipe.run(cfg, runs_dir, console, rerun_from=rerun_from, rerun_command=again)
    if main_process:
        _summary(console, run_dir, wide)


@app.command()
@guarded
def validate(
    arguments: List[str] = typer.Argument(..., metavar="PIPELINE|KEY=VALUE",
                                          help="Pipeline YAML files (pipelines/*.yaml), and key=value overrides "
                                          "applied to each of them."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where compress run will put the run folders "
                                  "(checked as compress run checks them)."),
) -> None:
    """Check pipeline files without running anything: every problem at once, each file on its own lines.

    An argument that names an existing file or ends in .yaml/.yml is a pipeline file; any other is a
    key=value override applied to every file. Each file's config and overrides are checked (with every check
    compress run makes at load: model shapes against the teacher, opset, output folders and name lengths,
    sources; docs/configuration.md), then its local model folders
    (pickle-only weights, remote code, damaged files, head size, position table), then its data, read as
    compress run reads it (columns, labels, splits; a hub dataset is left to compress run, which
    downloads it). Nothing is written. Exit 0 when every file is ok, 2 when any is not.
    """
    from compress.validate import check_file, split_arguments

    _quiet_libraries()
    files, overrides = split_arguments(arguments)
    failed = 0
    for pipeline in files:
        where = f"{pipeline}: " if len(files) > 1 else ""  # one file: the lines compress run would print
        checked = check_file(pipeline, overrides, runs_dir)
        if checked.ok:
            typer.echo(checked.ok)
        failed += bool(checked.problems)
        for problem in checked.problems:
            typer.echo(f"error: {where}{problem}", err=True)
        for line in checked.warnings:
            typer.echo(f"warning: {where}{line}", err=True)
    if len(files) > 1:
        typer.echo(f"validate: {len(files) - failed} of {len(files)} files ok", err=bool(failed))
    if failed:
        raise typer.Exit(EXIT_USAGE)


@app.command()
@guarded
def verify(
    bundle: Path = typer.Argument(..., help="A bundle folder written by compress run, e.g. exports/distilbert"),
    key: Optional[Path] = typer.Option(None, "--key", help="A PEM public key: the bundle's signature (model.sig) "
                                       "must verify with it (pip install 'compress[sign]')."),
) -> None:
    """Check an edge bundle: every file against manifest.json, then the golden sentences replayed.

    The manifest may list only files inside the bundle (no absolute path, no '..', no symbolic link),
    and every file in the folder must be listed. The golden texts are tokenized with the bundle's
    tokenizer.json (tokenizers library) and run through model.onnx and model.ort with ONNX Runtime;
    the logits must match golden.json within the tolerance compress fixes for the task (never one
    written in the bundle). With --key, the signature (model.sig, OpenSSF model-signing) is checked
    too; without it, a signed bundle is said to be signed but unchecked. Exit 0 when every check
    passes, 2 otherwise. Needs neither torch nor transformers.
    """
    from rich.console import Console

    from compress.verify import verify_bundle

    # one line per check, however narrow the terminal
    verify_bundle(bundle, Console(highlight=False, soft_wrap=True), public_key=key)


@app.command()
@guarded
def sign(
    bundle: Path = typer.Argument(..., help="A bundle folder written by compress run, e.g. exports/distilbert"),
    key: Path = typer.Option(..., "--key", help="A PEM elliptic-curve private key (P-256, P-384 or P-521)."),
) -> None:
    """Sign a bundle with a private key: model.sig, in the OpenSSF model-signing format.

    The bundle is verified first (files, golden replay): only an intact bundle is signed. The
    signature covers every file but itself; check it with compress verify BUNDLE --key PUBLIC.pem.
    The ship stage signs the bundles it writes when ship.sign_key is set. Needs pip install
    'compress[sign]'.
    """
    from rich.console import Console

    from compress.verify import sign_bundle

    sign_bundle(bundle, key, Console(highlight=False, soft_wrap=True))


@app.command()
@guarded
def generate(
    bundle: Path = typer.Argument(..., help="A causal-lm bundle written by compress run, e.g. exports/tiny-lm"),
    prompt: str = typer.Argument(..., help="The text to continue, or the user's message when the model has a chat template."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", min=1, help="Stop after this many new tokens."),
    temperature: float = typer.Option(0.0, "--temperature", min=0, help="0: greedy; above 0: sample from "
                                      "softmax(logits / temperature)."),
    top_k: int = typer.Option(0, "--top-k", min=0, help="Sample from the K likeliest tokens only (with --temperature; 0: all)."),
    seed: int = typer.Option(0, "--seed", help="Of the sampling."),
    no_chat_template: bool = typer.Option(False, "--no-chat-template", help="Send the prompt as it is, even when the "
                                          "bundle has a chat template."),
) -> None:
    """Try a causal-lm bundle: its reply to PROMPT, streamed token by token.

    The files are checked against manifest.json first. An instruct model's chat template (in the bundle's
    tokenizer files) turns PROMPT into one user message, as transformers' apply_chat_template does. Greedy
    unless --temperature is above 0; stops at the end-of-sequence token or after --max-new-tokens. Needs
    neither torch nor transformers: tokenizers, jinja2, numpy and onnxruntime.
    """
    import sys

    from compress.verify import generate as reply

    if top_k and not temperature:
        raise CompressError(f"--top-k: {top_k} with greedy decoding; give --temperature above 0 to sample")
    written = 0
    for piece in reply(bundle, prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, seed=seed,
                       chat=not no_chat_template):
        sys.stdout.write(piece)
        sys.stdout.flush()
        written += len(piece)
    sys.stdout.write("\n")
    if not written:  # an empty reply is the model's answer, but say so rather than print a blank line alone
        typer.echo("note: the model ended its reply at once (end-of-sequence first)"
                   + ("" if no_chat_template else "; a student distilled on plain text may have lost the teacher's "
                      "chat turns: try --no-chat-template"), err=True)


@app.command("report")
@guarded
def report_command(
    run_dirs: List[Path] = typer.Argument(..., help="Finished run folders (runs/<name>) or their report.json files."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where the HTML goes: with one run, instead of "
                                       "RUN_DIR/report.html; with several, default compare.html here."),
    wide: bool = WideOption,
) -> None:
    """Render reports again from report.json, without recomputing anything.

    With one run: report.md and report.html in its folder (after a compress upgrade, say), and the
    summary table compress run ends with. With several: one comparison page, every run's variants on
    the same plots (a colour per run) and in one table; runs with the same name are named by their
    folders.
    """
    from compress import stagefiles, tasks
    from compress.io import write_text
    from compress.layout import RunLayout
    from compress.reports.compare import load_runs
    from compress.reports.html import render_comparison

    runs = load_runs(run_dirs, _readable)
    if len(runs) == 1:
        run_, = runs
        report, where = run_.record, RunLayout(run_.path)
        task, target = tasks.get(report.task), out or where.report_html
        write_text(where.report_md, task.hook("markdown")(report))
        write_text(target, task.hook("html")(report))
        # the report stage's record lists these files: keep it true, or the next run would refuse them as changed
        stagefiles.rerecord(where.record("report"), [where.report_md, target], run_.path)
        if task.has("summary"):  # the table, then where report.md, report.html and report.json are
            task.hook("summary")(_console(highlight=False), run_.path, report, wide=wide)
        if target != where.report_html or not task.has("summary"):
            typer.echo(f"report: {where.report_md}, {target}")
        return
    target = out or Path("compare.html")
    write_text(target, render_comparison([(r.label, r.record) for r in runs]))
    typer.echo(f"comparison of {len(runs)} runs: {target}")


@app.command()
@guarded
def compare(
    base: Path = typer.Argument(..., help="The reference run: runs/<name> or its report.json."),
    new: Path = typer.Argument(..., help="The run to check against it."),
    max_retention_drop: float = typer.Option(0.5, "--max-retention-drop", min=0,
                                             help="Fail when a variant's retention falls by more points than this."),
    max_latency_increase: float = typer.Option(10.0, "--max-latency-increase", min=0,
                                               help="Fail when a variant's p50 latency grows by more percent than this."),
    wide: bool = typer.Option(False, "--wide", help="Show every column of the table, however narrow the terminal."),
) -> None:
    """Gate a run against a base run (for CI): exit 1 on a regression, 0 otherwise.

    Every variant present in both runs is compared: accuracy, retention, p50 latency, size and peak
    memory; p50 latency also on every target case (cpu, mobile at each length, gpu) both runs measured.
    A variant whose retention fell by more than --max-retention-drop points, or whose p50 latency grew
    by more than --max-latency-increase percent and by more than both runs' spread over their latency
    rounds on any of them, is a regression, one line each. A variant whose model files have the same
    sha256 in both runs is unchanged, never a regression. Variants present in only one run are listed,
    never a failure.
    """
    from rich.console import Console

    from compress.reports import terminal
    from compress.reports.compare import changes, load_runs, regressions, table, target_differences, within_noise

    base_run, new_run = load_runs([base, new], _readable)
    common, only_base, only_new = changes(base_run.record, new_run.record)
    if not common:
        raise CompressError(f"{new}: no variant in common with {base} (base has "
                            f"{', '.join(only_base)}; new has {', '.join(only_new)}): nothing to compare")
    console = Console(highlight=False)
    terminal.table(console, *table(base_run, new_run, common), wide=wide)
    for label, names in (("only in base", only_base), ("only in new", only_new)):
        if names:
            console.print(f"{label} (not compared): {', '.join(names)}", soft_wrap=True)
    same = [c.name for c in common if c.unchanged]
    if same:
        console.print(f"unchanged (the same model file sha256 in both runs; never a regression): {', '.join(same)}",
                      soft_wrap=True)  # one line each: CI logs and scripts read them
    for line in within_noise(common, max_latency_increase):
        console.print(f"noise, not a regression: {line}", soft_wrap=True)
    differ = target_differences(base_run.record, new_run.record)
    if differ:
        console.print(f"note: measured on different targets ({'; '.join(differ)}): latencies may not compare",
                      soft_wrap=True)
    failures = regressions(common, max_retention_drop, max_latency_increase)
    for line in failures:
        typer.echo(f"regression: {line}", err=True)
    if failures:
        raise typer.Exit(1)
    changed = len(common) - len(same)
    console.print(f"ok: {changed} changed variant{'' if changed == 1 else 's'} within limits (retention drop <= "
                  f"{max_retention_drop:g} points, p50 latency increase <= {max_latency_increase:g}% or within the "
                  f"runs' spread), {len(same)} unchanged")


def _summary(console, run_dir: Path, wide: bool = False) -> None:
    """The task's table of every variant, at the end of a run, then where the bundle went (when one was shipped)."""
    from compress import tasks
    from compress.layout import RunLayout
    from compress.records import read_report, read_stage

    where = RunLayout(run_dir)
    report = read_report(where.report_json)
    tasks.get(report.task).hook("summary")(console, run_dir, report, wide=wide)
    ship = where.record("ship")
    bundle = read_stage(ship).metrics.get("bundle") if ship.is_file() else None
    if bundle:
        console.print(f"bundle: {bundle}/")


def _readable(report: dict, path: Path) -> str | None:
    """compress report and compress compare read the reports of tasks that say they can be compared."""
    from compress import tasks

    task = tasks.of_report(report)
    if task.comparable:
        return None
    readers = ", ".join(n for n in tasks.names() if tasks.get(n).comparable)
    return (f"{path}: a {task.name} report: compress report and compress compare read {readers} reports only so far; "
            "its tables are in report.md")


def _sweep_summary(console, sweep_dir: Path, wide: bool = False) -> None:
    """The sweep's table; on a narrow terminal T and alpha (in the point's name) go first, then size and the
    student; --wide keeps every column."""
    from compress.io import read_json
    from compress.layout import SWEEP_JSON
    from compress.reports.terminal import Column, table

    summary = read_json(sweep_dir / SWEEP_JSON)
    columns = [Column("point", right=False), Column("T", drop=1), Column("alpha", drop=2),
               Column("student", right=False, drop=4), Column("accuracy"), Column("retention", drop=5),
               Column("variant", right=False, drop=6), Column("size MB", drop=3), Column("p50 ms", drop=7),
               Column("status", right=False)]
    rows = []
    for p in summary["points"]:
        if "accuracy" in p:
            rows.append([p["name"], f"{p['temperature']:g}", f"{p['alpha']:g}", p["student"], f"{p['accuracy']:.4f}",
                         f"{p['retention']:.1%}" if p["retention"] is not None else "-", p["variant"],
                         f"{p['size_bytes'] / 1e6:.1f}", f"{p['p50_ms']:.2f}", p["status"]])
        else:
            rows.append([p["name"], *["-"] * 8, p["status"]])
    table(console, f"{summary['name']}: every point of the sweep (accuracy: the fp32 student; size, p50: its "
          "deployed variant)", columns, rows, wide)
    console.print(f"sweep: {sweep_dir / 'sweep.md'}, {sweep_dir / 'sweep.html'} (data: {sweep_dir / 'sweep.json'})")


def _quiet_libraries() -> None:
    """Logging is configured once, here: libraries speak only of errors."""
    import logging
    import sys
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # torchao, when installed, is imported by transformers and optimum: it logs every CUDA extension a CPU
    # build cannot load, and registers enums with torch's pytree, which warns about it.
    for name in ("torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # read when transformers is first imported
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()


def main() -> None:
    """Console entry point."""
    app()
