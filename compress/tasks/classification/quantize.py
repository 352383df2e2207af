"""Quantize: every variant listed in ``quantize.variants``, each held to an accuracy budget.

A variant's accuracy is measured against its fp32 parent (``student-onnx``, the fused graph, for
ONNX variants; the PyTorch ``student`` for torch ones) on held-out rows that are never the
evaluation split, so that the figures in the report are not the ones a setting was picked on; both
score the rows one sentence at a time, unpadded, as a device runs them (compress.bench.deployed). An
ONNX int8 variant over its budget walks the fallback ladder (``compress.quant.ladder``). Every
produced variant also passes a parity checklist against the fp32 PyTorch student at the shapes
the export saved. GPU-only methods are skipped, with the reason, where there is no CUDA.

Writes ``quantize/<variant>/`` (the model and its tokenizer) and ``quantize/variants.json``, the list
the bench measures.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compress import models, onnxrun, parity
from compress.bench import deployed
from compress.bench.latency import latency_input
from compress.bench.torch_model import median_ms, torch_forward, torch_latency
from compress.config import ONNX_INT8
from compress.data import train_split
from compress.envinfo import int8_isa
from compress.io import write_json
from compress.layout import ENCODER_TOKENIZER_FILES, ONNX_FILE, PARITY_FILE, VARIANTS_FILE
from compress.onnxgraph import optimize
from compress.parity import load_reference
from compress.quant import gpu, ladder, onnx_int8, samples, torch_int8
from compress.quant.ladder import Rung
from compress.quant.onnx_int8 import Settings

NAME = "quantize"
VERSION = 8  # 3: parity cosine on centred logits; 4: over the whole batch, not the smallest row; 5: static
# int8 from the unfused graph when the fused one has Attention (QDQ would leave its projections fp32); 6: int4
# embeddings asymmetric, with zero points and a clipping search; 7: first-token last layer (optimize.first_token_only);
# 8: accuracy one sentence at a time, unpadded (dynamic int8 ranges no longer see other rows' padding)
DEPENDS = ("export", "trim")
CONFIG = ("quantize", "optimize", "targets", "seed", "data", "bench.sequence_length", "bench.threads")
SENSITIVITY_ROWS = 64  # held-out rows the one-node-at-a-time measurement runs on
WARMUP = 5


@dataclass
class Job:
    """What every variant is measured with: the graphs, the held-out rows, the parity inputs."""

    cfg: object
    ctx: object
    isa: str
    fused: Path
    unfused: Path
    student_dir: Path  # export/student: tokenizer and config of the exported student
    torch_student: Path  # the fp32 PyTorch student the export came from
    tokenizer: object
    held: samples.Held
    held_ids: list[list[int]]
    labels: np.ndarray
    parity_inputs: list
    reference: list
    latency_ids: np.ndarray
    _train: object = None
    _calibration: dict = field(default_factory=dict)
    _parents: dict = field(default_factory=dict)

    @property
    def reduce_range(self) -> bool:
        return onnx_int8.reduce_range_for(self.isa)

    @property
    def tolerance(self) -> parity.Tolerance:
        p = self.cfg.quantize.parity
        return parity.Tolerance(min_top1=p.min_top1, min_cosine=p.min_cosine)

    # -- rows

    def train(self):
        if self._train is None:
            self._train = train_split(self.cfg)
        return self._train

    def calibration(self, count: int, method: str) -> tuple[list[dict], dict]:
        """Feeds for ``count`` calibration sentences, and the record that names them."""
        if count not in self._calibration:
            split = samples.calibration_split(self.train(), count, self.cfg.seed)
            rows = self.tokenizer(split.texts, truncation=True, max_length=self.cfg.data.max_length)["input_ids"]
            feeds = samples.fixed_width_feeds(rows, self.tokenizer.pad_token_id, samples.input_names(self.unfused))
            self._calibration[count] = (feeds, {
                "samples": count, "from": f"training split '{self.cfg.data.train_split}', seeded permutation "
                f"(seed {self.cfg.seed})", "sha256": samples.token_hash(rows), "width": len(feeds[0]["input_ids"][0])})
        feeds, record = self._calibration[count]
        return feeds, {**record, "method": method}

    # -- ONNX measurements

    def onnx_accuracy(self, path: Path, providers: list[str] | None = None) -> float:
        sess = onnxrun.session(path, threads=self.cfg.bench.threads, providers=providers)
        return float((deployed.onnx_logits(sess, self.held_ids).argmax(-1) == self.labels).mean())

    def onnx_latency(self, path: Path, providers: list[str] | None = None) -> float:
        sess = onnxrun.session(path, threads=self.cfg.bench.threads, providers=providers)
        feeds = onnxrun.feeds(sess, self.latency_ids, np.ones_like(self.latency_ids))
        return median_ms(lambda: sess.run(["logits"], feeds), self.cfg.quantize.latency_runs)

    def parent_accuracy(self, parent: str) -> float:
        """student-onnx (fused fp32) or student (PyTorch fp32) on the held-out rows, once."""
        if parent not in self._parents:
            if parent == "student-onnx":
                self._parents[parent] = self.onnx_accuracy(self.fused)
            else:
                model, _ = models.load_saved(self.torch_student)
                self._parents[parent] = self.torch_accuracy(model, "cpu")
        return self._parents[parent]

    def measure_onnx(self, rung: Rung, label: str, parent: str, providers: list[str] | None = None) -> Rung:
        rung.size_bytes = rung.path.stat().st_size
        got = parity.onnx_outputs(rung.path, self.parity_inputs, providers=providers)
        self._judge(rung, label, parent, got, self.onnx_accuracy(rung.path, providers))
        rung.latency_ms = self.onnx_latency(rung.path, providers)
        return rung

    # -- PyTorch measurements

    def torch_accuracy(self, model, device: str) -> float:
        return float((deployed.torch_logits(model, self.held_ids, device).argmax(-1) == self.labels).mean())

    def measure_torch(self, rung: Rung, label: str, model, device: str) -> Rung:
        got = [torch_forward(model, s.input_ids, s.attention_mask, device) for s in self.parity_inputs]
        self._judge(rung, label, "student", got, self.torch_accuracy(model, device))
        rung.latency_ms = torch_latency(model, self.latency_ids, device, self.cfg.quantize.latency_runs)
        return rung

    def _judge(self, rung: Rung, label: str, parent: str, got: list[np.ndarray], accuracy: float) -> None:
        rows = parity.check(label, self.parity_inputs, self.reference, got, self.tolerance)
        rung.parity_ok = all(r["ok"] for r in rows)
        rung.problems += [f"parity at {r['shape']}: {'; '.join(r['problems'])}" for r in rows if not r["ok"]]
        rung.extra["parity"] = rows
        rung.accuracy = round(accuracy, 5)
        rung.drop = round((self.parent_accuracy(parent) - accuracy) * 100, 3)


def run(cfg, ctx) -> dict:
    qcfg = cfg.quantize
    if not qcfg.enabled:
        ctx.console.print("quantize: disabled (quantize.enabled: false)")
        write_json(ctx.out / VARIANTS_FILE, [])
        return {"enabled": False}
    job = prepare(cfg, ctx)
    ctx.console.print(f"quantize: int8 settings for {job.isa} ({'VNNI' if job.isa in ('avx512_vnni', 'arm64') else 'no VNNI'}"
                      f"{', 7-bit weights' if job.reduce_range else ''}); accuracy judged on {job.held.source}")
    records = []
    for i, variant in enumerate(qcfg.variants):
        make = METHODS[variant.method]
        records.append(make(job, variant, f"quantize.variants.{i}"))
    write_json(ctx.out / VARIANTS_FILE, [r.pop("manifest") for r in records if r["status"] == "produced"])
    return {"enabled": True, "isa": job.isa, "vnni": job.isa in ("avx512_vnni", "arm64"),
            "reduce_range": job.reduce_range,
            "held_out": {"source": job.held.source, "rows": len(job.held_ids), "batch": "one sentence at a time, unpadded"},
            "parity_tolerance": job.tolerance.describe(), "targets": cfg.targets, "variants": records}


def prepare(cfg, ctx) -> Job:
    from transformers import AutoTokenizer

    isa = int8_isa() if cfg.quantize.isa == "auto" else cfg.quantize.isa
    student_dir = ctx.layout.export_dir("student")
    tokenizer = AutoTokenizer.from_pretrained(student_dir)
    reserved = max((v.calibration.samples for v in cfg.quantize.variants if v.method == "onnx_static"), default=0)
    train = None
    if not cfg.data.validation_split:
        train = train_split(cfg)
    held = samples.held_out(cfg, train, reserved)
    limit = min(tokenizer.model_max_length, 512)
    ids = tokenizer(held.split.texts, truncation=True, max_length=limit)["input_ids"]
    inputs, reference = load_reference(student_dir / PARITY_FILE)
    query = latency_input(tokenizer, held.split.texts, cfg.bench.sequence_length, 1)
    return Job(cfg, ctx, isa, ctx.layout.export_onnx("student"), student_dir / ONNX_FILE, student_dir,
               ctx.layout.final_student(), tokenizer, held, ids, np.asarray(held.split.labels), inputs, reference,
               np.asarray(query, dtype=np.int64), _train=train)


# ----------------------------------------------------------------------------- ONNX int8 (the ladder)


def onnx_int8_variant(job: Job, v, key: str) -> dict:
    static = v.method == "onnx_static"
    int4 = {"embeddings": "int4", "embedding_block": v.embedding_block} if v.embeddings == "int4" else {}
    base = Settings("static" if static else "dynamic", v.per_channel, job.reduce_range,
                    v.calibration.method if static else None, **int4)
    folder = job.ctx.out / v.name
    work = folder / "rungs"
    work.mkdir(parents=True)
    tried: dict[str, Rung] = {}
    graph: dict[str, str | None] = {"static": None}
    feeds, calibration = job.calibration(v.calibration.samples, v.calibration.method) if static else (None, None)
    dynamic_source = job.fused
    if int4:  # int4 tables need plain Gathers: the fused EmbedLayerNormalization reads int8 tables at best
        dynamic_source = work / "fused-embeddings-unfused.onnx"
        optimize(job.unfused, dynamic_source, embed_layer_norm=False, skip_layer_norm=job.cfg.optimize.skip_layer_norm,
                 first_token=job.cfg.optimize.first_token_only)

    def quantize(s: Settings, target: Path, graph_used: str | None = None) -> tuple[str, str | None]:
        if s.mode == "dynamic":
            onnx_int8.quantize_dynamic(dynamic_source, target, s)
            return ("fused, embeddings unfused" if s.embeddings == "int4" else "fused"), None
        return onnx_int8.static_with_fallback(job.fused, job.unfused, target, s, feeds, job.isa, work,
                                              graph_used or graph["static"])

    def attempt(rung_name: str, s: Settings) -> Rung:
        rung = Rung(rung_name, {"describe": s.describe(), **s.to_dict()}, path=work / f"{rung_name}.onnx")
        tried[rung_name] = rung
        with job.ctx.console.status(f"quantizing {v.name}: {rung_name} ({s.describe()})"):
            try:
                used, why = quantize(s, rung.path)
            except Exception as exc:  # the quantizers raise many kinds; the rung records it and the ladder goes on
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                rung.problems.append(f"quantization failed: {type(exc).__name__}: {first}")
                return rung
            rung.extra["graph"] = used
            if s.mode == "static":
                graph["static"] = used
            if why:
                rung.extra["fused_graph_not_used"] = why
            job.measure_onnx(rung, f"{v.name} ({rung_name})", "student-onnx")
        _print_rung(job, v, rung)
        return rung

    def per_channel() -> Rung | None:
        return None if base.per_channel else attempt("per_channel", base.but(per_channel=True))

    def exclude_sensitive() -> Rung:
        measured = tried.get("per_channel") or tried["configured"]
        s = base.but(per_channel=True)
        if measured.drop is None:
            rung = Rung("exclude_sensitive", {"describe": s.describe(), **s.to_dict()})
            rung.problems.append(f"no per-channel model to measure node sensitivity on ({measured.name} failed)")
            return rung
        used = measured.extra["graph"]
        source = {"unfused": job.unfused, "fused": job.fused}.get(used, dynamic_source)
        ops = onnx_int8.STATIC_OPS if static else [o for o in onnx_int8.dynamic_op_types() if not (int4 and o == "Gather")]
        rows = job.held_ids[:SENSITIVITY_ROWS]
        with job.ctx.console.status(f"{v.name}: quantizing one node at a time to find the most sensitive"):
            errors = onnx_int8.node_sensitivity(source, measured.path, ops,
                                                lambda node, path: quantize(s.but(only=(node,)), path, used),
                                                rows, job.tokenizer.pad_token_id, work)
        worst = tuple(e["node"] for e in errors[: v.exclude_nodes])
        job.ctx.console.print(f"quantize: {v.name}: most sensitive of {len(errors)} nodes (alone, relative logit error "
                              f"on {len(rows)} rows): " + ", ".join(f"{e['node']} {e['logit_error']:.2e}"
                                                                    for e in errors[: v.exclude_nodes]))
        rung = attempt("exclude_sensitive", s.but(exclude=worst))
        rung.extra["node_sensitivity"] = {"measured_on": measured.name, "rows": len(rows), "largest": errors[:8]}
        return rung

    def dynamic() -> Rung | None:
        return attempt("dynamic", Settings("dynamic", True, job.reduce_range)) if static else None

    kept, rungs = ladder.walk(ladder.lazily(lambda: attempt("configured", base), per_channel, exclude_sensitive,
                                            dynamic), v.budget, v.ladder)
    parent_acc = job.parent_accuracy("student-onnx")
    if kept is None:
        raise ladder.failure(v.name, key, v.budget, "student-onnx", parent_acc, len(job.held_ids), rungs)
    final = folder / ONNX_FILE
    shutil.move(str(kept.path), final)
    shutil.rmtree(work)
    _copy_tokenizer(job.student_dir, folder)
    parity.print_checklist(job.ctx.console, f"{v.name} ({kept.name}) vs PyTorch fp32", kept.extra["parity"])
    if len(rungs) > 1:
        job.ctx.console.print(f"quantize: {v.name}: kept {kept.name}, the fastest of {len(rungs)} rungs inside the budget")
    record = _record(v, "student-onnx", parent_acc, kept, rungs, final, job)
    record.update(graph=kept.extra.get("graph"), isa=job.isa, reduce_range=job.reduce_range)
    if static and calibration:
        record["calibration"] = calibration
    if "fused_graph_not_used" in kept.extra:
        record["fused_graph_not_used"] = kept.extra["fused_graph_not_used"]
    record["manifest"] = {"name": v.name, "method": v.method, "format": "onnx", "precision": "int8",
                          "path": f"{v.name}/model.onnx", "parent": "student-onnx", "device": "cpu"}
    return record


# ----------------------------------------------------------------------------- PyTorch int8


def torch_dynamic_variant(job: Job, v, key: str) -> dict:
    engine = "torchao" if torch_int8.torchao_version() else "torch.ao"
    model, tokenizer = models.load_saved(job.torch_student)
    with job.ctx.console.status(f"quantizing {v.name}: PyTorch dynamic int8 ({engine})"):
        model = torch_int8.quantize(model, engine)
        rung = job.measure_torch(Rung("configured", {"describe": f"dynamic int8 nn.Linear ({engine})", "engine": engine}),
                                 v.name, model, "cpu")
    _print_rung(job, v, rung)
    kept, rungs = ladder.walk(iter([rung]), v.budget, ladder=False)
    parent_acc = job.parent_accuracy("student")
    if kept is None:
        raise ladder.failure(v.name, key, v.budget, "student (PyTorch fp32)", parent_acc, len(job.held_ids), rungs)
    folder = job.ctx.out / v.name
    recipe = torch_int8.save(model, tokenizer, folder, job.torch_student, engine)
    parity.print_checklist(job.ctx.console, f"{v.name} vs PyTorch fp32", kept.extra["parity"])
    record = _record(v, "student", parent_acc, kept, rungs, folder, job)
    record.update(engine=recipe["engine"], storage=recipe["storage"])
    record["manifest"] = {"name": v.name, "method": v.method, "format": "pytorch", "precision": "int8", "path": v.name,
                          "parent": "student", "device": "cpu", "loader": "torch_int8"}
    return record


# ----------------------------------------------------------------------------- GPU only


def fp16_variant(job: Job, v, key: str) -> dict:
    reason = gpu.onnx_cuda_missing()
    if reason:
        return _skipped(job, v, reason)
    folder = job.ctx.out / v.name
    folder.mkdir(parents=True)
    providers = [gpu.CUDA_EP, "CPUExecutionProvider"]
    rung = Rung("configured", {"describe": "float16, inputs and outputs kept"}, path=folder / ONNX_FILE)
    with job.ctx.console.status(f"converting {v.name} to float16"):
        gpu.convert_fp16(job.fused, rung.path)
        job.measure_onnx(rung, v.name, "student-onnx", providers)
    return _single(job, v, key, rung, "student-onnx", folder, {
        "name": v.name, "method": v.method, "format": "onnx", "precision": "fp16", "path": f"{v.name}/model.onnx",
        "parent": "student-onnx", "device": "cuda", "providers": providers})


def bnb_variant(job: Job, v, key: str) -> dict:
    reason = gpu.bnb_missing()
    if reason:
        return _skipped(job, v, reason)
    folder = job.ctx.out / v.name
    rung = Rung("configured", {"describe": v.method.replace("bnb_", "bitsandbytes ")})
    with job.ctx.console.status(f"quantizing {v.name} with bitsandbytes on CUDA"):
        model = gpu.quantize_bnb(job.torch_student, folder, v.method)
        job.measure_torch(rung, v.name, model, "cuda")
    precision = "int8" if v.method == "bnb_int8" else "nf4"
    return _single(job, v, key, rung, "student", folder, {
        "name": v.name, "method": v.method, "format": "pytorch", "precision": precision, "path": v.name,
        "parent": "student", "device": "cuda", "loader": "bnb"})


def _single(job: Job, v, key: str, rung: Rung, parent: str, folder: Path, manifest: dict) -> dict:
    """A method with one setting: kept inside the budget, else the run fails."""
    _print_rung(job, v, rung)
    kept, rungs = ladder.walk(iter([rung]), v.budget, ladder=False)
    parent_acc = job.parent_accuracy(parent)
    if kept is None:
        raise ladder.failure(v.name, key, v.budget, parent, parent_acc, len(job.held_ids), rungs)
    if manifest["format"] == "onnx":
        _copy_tokenizer(job.student_dir, folder)
    parity.print_checklist(job.ctx.console, f"{v.name} vs PyTorch fp32", kept.extra["parity"])
    return {**_record(v, parent, parent_acc, kept, rungs, folder / ONNX_FILE if manifest["format"] == "onnx"
                      else folder, job), "manifest": manifest}


def _skipped(job: Job, v, reason: str) -> dict:
    job.ctx.console.print(f"quantize: {v.name} ({v.method}) skipped: {reason}")
    return {"name": v.name, "method": v.method, "status": "skipped", "reason": reason}


METHODS = {"onnx_dynamic": onnx_int8_variant, "onnx_static": onnx_int8_variant, "torch_dynamic": torch_dynamic_variant,
           "fp16": fp16_variant, "bnb_int8": bnb_variant, "bnb_nf4": bnb_variant}
assert set(ONNX_INT8) <= set(METHODS)


# ----------------------------------------------------------------------------- helpers


def _record(v, parent: str, parent_acc: float, kept: Rung, rungs: list[Rung], path: Path, job: Job) -> dict:
    for r in rungs:
        r.extra = {k: val for k, val in r.extra.items() if k != "parity"} | (
            {"parity": r.extra["parity"]} if r is kept else {})
    return {"name": v.name, "method": v.method, "status": "produced", "parent": parent, "budget": v.budget,
            "held_out_rows": len(job.held_ids), "parent_accuracy": round(parent_acc, 5), "accuracy": kept.accuracy,
            "drop_points": kept.drop, "latency_ms": kept.latency_ms, "kept_rung": kept.name,
            "settings": kept.settings, "path": str(path.relative_to(job.ctx.out)),
            "parity": [{k: r[k] for k in ("shape", "max_abs_diff", "top1_agreement", "cosine", "tolerance", "ok")}
                       for r in kept.extra["parity"]],
            "ladder": [{k: val for k, val in r.record().items() if k != "parity"} for r in rungs]}


def _print_rung(job: Job, v, rung: Rung) -> None:
    if rung.drop is None:
        job.ctx.console.print(f"quantize: {v.name} {rung.name}: {'; '.join(rung.problems)}")
        return
    verdict = "[green]inside[/]" if rung.within(v.budget) else "[red]out[/]"
    job.ctx.console.print(f"quantize: {v.name} {rung.name} ({rung.settings['describe']}): accuracy {rung.accuracy:.4f}, "
                          f"drop {rung.drop:+.2f} points (budget {v.budget:g}: {verdict}), {rung.latency_ms:.2f} ms"
                          + (f"; {'; '.join(rung.problems)}" if rung.problems else ""))


def _copy_tokenizer(source: Path, folder: Path) -> None:
    for name in ENCODER_TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, folder / name)


