"""Latency statistics, and the launcher that measures one variant in a fresh process.

The worker (``compress.bench.worker``) loads the variant, warms up, times queries with
``perf_counter`` and reports its own peak RSS; a fresh process per variant keeps one
variant's memory and caches out of the next one's figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from compress.errors import CompressError


@dataclass
class LatencyStats:
    """Per-query wall times of one variant, in milliseconds."""

    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    throughput: float  # sequences per second at this batch size

    @classmethod
    def from_seconds(cls, times: list[float], batch_size: int) -> LatencyStats:
        ordered = sorted(times)

        def pct(q: float) -> float:  # linear interpolation between closest ranks
            pos = q * (len(ordered) - 1)
            lo = int(pos)
            hi = min(lo + 1, len(ordered) - 1)
            return (ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)) * 1e3

        mean = sum(ordered) / len(ordered)
        return cls(len(ordered), round(mean * 1e3, 3), round(pct(0.5), 3), round(pct(0.9), 3), round(pct(0.99), 3),
                   round(batch_size / mean, 2))

    def __str__(self) -> str:
        return (f"p50 {self.p50_ms:.2f} ms, p90 {self.p90_ms:.2f} ms, p99 {self.p99_ms:.2f} ms "
                f"({self.count} queries, {self.throughput:.1f} seq/s)")

    def to_dict(self) -> dict:
        return asdict(self)


def measure(fmt: str, path: Path, input_ids: list[list[int]], warmup: int, queries: int, threads: int | None,
            device: str = "cpu", loader: str = "saved", providers: list[str] | None = None,
            min_seconds: float = 0.0) -> dict:
    """Run the worker on one variant in a fresh Python process and return what it measured: at least
    ``queries`` timed queries, and more until ``min_seconds`` have passed. ``path`` is an .onnx or .ort
    file, or a PyTorch model folder."""
    spec = {"format": fmt, "path": str(path), "input_ids": input_ids, "warmup": warmup, "queries": queries,
            "min_seconds": min_seconds, "threads": threads or os.cpu_count(), "device": device, "loader": loader,
            "providers": providers}
    with tempfile.TemporaryDirectory() as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps(spec))
        # Ctrl-C reaches the whole process group: the worker ignores it, and this process stops it (subprocess.run
        # kills it on KeyboardInterrupt), so the run ends with the interrupted message, not a failed worker.
        proc = subprocess.run([sys.executable, "-m", "compress.bench.worker", str(spec_path), str(out_path)],
                              capture_output=True, text=True, preexec_fn=_ignore_sigint if os.name == "posix" else None)
        if proc.returncode != 0 or not out_path.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise CompressError(f"bench: the worker measuring {path} failed (exit {proc.returncode}): {tail[0]}")
        return json.loads(out_path.read_text())


def _ignore_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def latency_input(tokenizer, texts: list[str], length: int, batch: int) -> list[list[int]]:
    """``batch`` rows of exactly ``length`` real tokens: evaluation sentences joined until long enough, with the
    special tokens the tokenizer adds (none for a bare word-level tokenizer) counted in."""
    specials = len(tokenizer.build_inputs_with_special_tokens([]))
    ids: list[int] = []
    for text in texts:
        ids += tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) >= length:
            break
    while len(ids) < length - specials:  # a tiny evaluation set: repeat it
        ids += ids or [tokenizer.unk_token_id]
    row = tokenizer.build_inputs_with_special_tokens(ids[: length - specials])
    return [row] * batch
