"""ONNX Runtime Mobile: the ORT-format conversion, the operators a reduced build needs, and what NNAPI and CoreML
could run of the model. Used by the mobile stage, the report and the bundle."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
from pathlib import Path

from compress import ortformat
from compress.errors import CompressError
from compress.layout import OPERATORS_FILE, ORT_FILE

LEVEL_VARIABLE = "ORT_CONVERT_ONNX_MODELS_TO_ORT_OPTIMIZATION_LEVEL"  # how the converter takes its level


EXECUTION_PROVIDERS = (
    ("nnapi", "NNAPI", None),
    ("coreml_neuralnetwork", "CoreML NeuralNetwork", "coreml_supported_neuralnetwork_ops.md"),
    ("coreml_mlprogram", "CoreML MLProgram", "coreml_supported_mlprogram_ops.md"),
)


def convert(source: Path, out: Path, level: str, style: str, target_platform: str) -> tuple[Path, dict]:
    """``out/model.ort`` and ``out/required_operators.config`` from ``source``; returns the .ort path and
    the operators a minimal ONNX Runtime build needs for it, by domain and opset. Both are the same bytes every
    time one model is converted (compress.ortformat)."""
    import onnxruntime as ort
    from onnxruntime.tools.convert_onnx_models_to_ort import (
        OptimizationStyle,
        convert_onnx_models_to_ort,
    )

    ort.set_default_logger_severity(3)  # the converter's sessions would log every removed initializer
    logging.getLogger("ort_format_model.utils").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="compress-ort-") as scratch:
        # The converter writes beside its input (runtime style converts twice): give it a copy.
        model = Path(scratch) / "model.onnx"
        shutil.copyfile(source, model)
        produced = Path(scratch) / "ort"
        said = io.StringIO()
        try:
            with contextlib.redirect_stdout(said), _environment(LEVEL_VARIABLE, level):
                convert_onnx_models_to_ort(model, output_dir=produced, target_platform=target_platform,
                                           optimization_styles=[OptimizationStyle[style.capitalize()]])
        except Exception as exc:  # onnxruntime raises its own exception types; the message is what helps
            lines = [s for s in said.getvalue().splitlines() if s.strip()]
            detail = f" ({lines[-1]})" if lines else ""
            raise CompressError(f"mobile: onnxruntime could not convert {source} to ORT format: {exc}{detail}") from None
        found = sorted(produced.glob("*.ort")), sorted(produced.glob("*.config"))
        if len(found[0]) != 1 or len(found[1]) != 1:
            raise CompressError(f"mobile: the ORT converter wrote {[p.name for p in produced.iterdir()]}, expected one "
                                f".ort model and one operators .config")
        shutil.move(str(found[0][0]), out / ORT_FILE)
        # the same bytes from every conversion of one model: the config names the model, not its scratch path
        lines = found[1][0].read_text(encoding="utf-8").splitlines()
        (out / OPERATORS_FILE).write_text("".join(f"# - {ORT_FILE}\n" if line.startswith("# - ") else line + "\n"
                                                  for line in lines), encoding="utf-8")
    ortformat.canonicalize(out / ORT_FILE)
    return out / ORT_FILE, read_operator_config(out / OPERATORS_FILE)


@contextlib.contextmanager
def _environment(name: str, value: str):
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def read_operator_config(path: Path) -> dict[str, dict[str, list[str]]]:
    """ONNX Runtime's operator config (``domain;opset;Op1,Op2`` lines) -> {domain: {opset: [ops]}}."""
    ops: dict[str, dict[str, list[str]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        domain, opset, names = line.split(";", 2)
        # with type reduction an op carries its types in braces: Add{"inputs": ...}
        listed = [n.split("{", 1)[0] for n in names.split(",") if n]
        ops.setdefault(domain, {}).setdefault(opset, []).extend(listed)
    return ops


def mobile_package(required: dict[str, dict[str, list[str]]]) -> dict:
    """Whether the operators fit ONNX Runtime's reduced mobile package, where this onnxruntime still ships
    that package's operator list; recent versions ship none (the full mobile packages run every operator)."""
    from onnxruntime.tools.mobile_helpers import usability_checker

    table = Path(usability_checker.__file__).parent / "mobile_package.required_operators.config"
    if not table.is_file():
        return {"checked": False, "reason": "this onnxruntime ships no reduced mobile package operator list; the full "
                "packages (onnxruntime-android, onnxruntime-c/objc) include every operator, and a custom minimal "
                f"build needs the operators listed in {OPERATORS_FILE}"}
    package = read_operator_config(table)
    missing = sorted(f"{domain}:{op} (opset {opset})" for domain, opsets in required.items()
                     for opset, names in opsets.items() for op in names
                     if op not in package.get(domain, {}).get(opset, []))
    return {"checked": True, "usable": not missing, "ops_not_in_package": missing}


def usability_check(source: Path) -> dict:
    """ONNX Runtime's mobile usability check as data: for each of NNAPI and CoreML, the partitions the model
    would be split into, the nodes supported, the operators not supported; as the model is, and (where that
    falls short and inputs are dynamic) with fixed input shapes. Same steps as ``analyze_model``: the model
    is first optimized to the basic level, as conversion to ORT format does."""
    from onnxruntime.tools.mobile_helpers import usability_checker as checker
    from onnxruntime.tools.onnx_model_utils import (
        ModelProtoWithShapeInfo,
        optimize_model,
    )

    quiet = logging.getLogger("compress.mobile.usability")
    quiet.setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="compress-usability-") as scratch:
        basic = Path(scratch) / "model.onnx"
        optimize_model(source, basic, use_external_initializers=True)
        model = ModelProtoWithShapeInfo(basic).model_with_shape_info
        dynamic_inputs, dynamic_values = checker.check_shapes(model.graph, quiet)
        eps = {}
        for key, label, table in EXECUTION_PROVIDERS:
            def partitions(fixed_sizes: bool, table=table):
                if table is None:
                    return checker.check_nnapi_partitions(model, require_fixed_input_sizes=fixed_sizes)
                return checker.check_coreml_partitions(model, fixed_sizes, table)

            as_is = partitions(True)
            entry = {"name": label, **_partition_summary(as_is)}
            best = as_is.suitability()
            if best != checker.PartitioningInfo.TryWithEP.YES and dynamic_inputs:
                fixed = partitions(False)
                entry["with_fixed_shapes"] = _partition_summary(fixed)
                best = max(best, fixed.suitability())
            entry["best_suitability"] = best.name.lower()
            eps[key] = entry
    return {
        "dynamic_inputs": [i.name for i in dynamic_inputs],
        "dynamic_values": dynamic_values,
        "execution_providers": eps,
        # as ONNX Runtime's tool concludes: worth trying NNAPI/CoreML unless every check says no
        "try_nnapi_or_coreml": any(e["best_suitability"] != "no" for e in eps.values()),
    }


def _partition_summary(info) -> dict:
    return {
        "partitions": info.num_partitions,
        "nodes": info.num_nodes,
        "supported_nodes": info.num_supported_nodes,
        "partition_sizes": [len(group) for group in info.supported_groups],
        "unsupported_ops": sorted(info.unsupported_ops),
        "unsupported_nodes": {"operator": info.nodes_unsupported_due_to_op,
                              "dynamic_shape": info.nodes_unsupported_due_to_dynamic_input,
                              "rank": info.num_unsupported_nodes_due_to_rank},
        "caveats": info.supported_ops_checker.get_caveats(),
        "suitability": info.suitability().name.lower(),
    }


def summary(metrics: dict) -> dict:
    """The part of the stage's metrics a report or a bundle manifest carries: sizes, settings, parity, and per
    execution provider the partitions, nodes and unsupported operators (no partition sizes or caveats)."""
    if not metrics.get("enabled"):
        return {"enabled": False}
    eps = {}
    for key, ep in metrics["usability"]["execution_providers"].items():
        keep = ("name", "partitions", "nodes", "supported_nodes", "unsupported_ops", "suitability", "best_suitability")
        eps[key] = {k: ep[k] for k in keep}
        if "with_fixed_shapes" in ep:
            fixed = ep["with_fixed_shapes"]
            eps[key]["with_fixed_shapes"] = {k: fixed[k] for k in ("partitions", "supported_nodes", "suitability")}
    return {
        "enabled": True,
        **{k: metrics[k] for k in ("variant", "ort_bytes", "onnx_bytes", "optimization_level", "optimization_style",
                                   "target_platform", "atol", "parity", "mobile_package")},
        "dynamic_inputs": metrics["usability"]["dynamic_inputs"],
        "try_nnapi_or_coreml": metrics["usability"]["try_nnapi_or_coreml"],
        "execution_providers": eps,
    }
