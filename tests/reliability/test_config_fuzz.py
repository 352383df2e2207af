"""Fuzzing the config loader (hypothesis): random bytes, and random mutations of every shipped pipeline,
either load or raise ConfigError; never anything else (no KeyError, RecursionError, yaml error, crash)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compress.errors import ConfigError
from compress.tasks import load_config

from ..conftest import ROOT

SHIPPED = sorted((ROOT / "pipelines").glob("*.yaml"))
TEXTS = [p.read_text(encoding="utf-8") for p in SHIPPED]
EXAMPLES = int(os.environ.get("COMPRESS_FUZZ_EXAMPLES", "300"))  # COMPRESS_FUZZ_EXPLORE=1: new random examples each run
# YAML's own punctuation and values that stress types, ranges and nesting
TOKENS = [":", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "!!python/object:os.system", "!!binary", "? ", "|", ">",
          "'", '"', "#", "\t", "\n", "  ", "null", "~", "true", "no", ".inf", "-.inf", ".nan", "-1", "0", "1e400",
          "99999999999999999999", "[]", "{}", "0x1f", "2020-01-01", "<<: ", "\x00", "\u2028", "\ufeff", "é"]
_DIR = Path(tempfile.mkdtemp(prefix="compress-fuzz-"))  # one scratch file, rewritten per example
atexit.register(shutil.rmtree, _DIR, ignore_errors=True)


def _load(data: bytes, overrides: list[str] | None = None) -> None:
    path = _DIR / "fuzz.yaml"
    path.write_bytes(data)
    try:
        load_config(path, overrides or [])
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)


FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize="COMPRESS_FUZZ_EXPLORE" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes(data):
    _load(data)


@FUZZ
@given(st.lists(st.sampled_from(TOKENS + list("abcdefgh_.019 ") + ["name", "data", "teacher", "source"]), max_size=80).map("".join))
def test_random_yaml_punctuation(text):
    _load(text.encode("utf-8"))


@st.composite
def mutated(draw):
    """A shipped pipeline with a few edits: a line deleted, duplicated, re-indented, cut, or a token spliced in."""
    lines = draw(st.sampled_from(TEXTS)).splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "indent", "dedent", "cut", "splice", "value", "swap"]))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "indent":
            lines[i] = "  " + lines[i]
        elif op == "dedent":
            lines[i] = lines[i].lstrip()
        elif op == "cut":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "value" and ":" in lines[i]:
            key = lines[i].split(":", 1)[0]
            lines[i] = f"{key}: {draw(st.sampled_from(TOKENS))}\n"
        else:
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + draw(st.sampled_from(TOKENS)) + lines[i][at:]
    return "".join(lines)


@FUZZ
@given(mutated())
def test_mutated_shipped_pipelines(text):
    _load(text.encode("utf-8"))


@FUZZ
@given(st.sampled_from(SHIPPED), st.lists(st.tuples(
    st.sampled_from(["name", "seed", "data.max_length", "distill.temperature", "student.layers", "student.layers.0",
                     "quantize.variants.0", "quantize.variants.0.budget", "teacher.train", "bench.targets", "sweep",
                     "sweep.grid", "x.y", "data.source", ""]),
    st.sampled_from(TOKENS + ["[0, 1]", "{a: 1}", "a=b", "=", "student-int8"])), max_size=3))
def test_random_overrides(path, pairs):
    _load(path.read_bytes(), [f"{k}={v}" for k, v in pairs])
