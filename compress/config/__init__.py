"""Typed pipeline configuration: one pydantic model per stage.

    base       strict models and the common types
    schema     the models of the run and of training (PipelineConfig, data, teacher, student, distill, ...)
    deploy     the models of what follows training (export, quantize, mobile, bench, report, ship)
    overrides  key=value settings applied to a mapping
    load       YAML (safe, a key set twice refused), key=value overrides, validation, one line per problem
    rules      settings that validate one by one but cannot work together; files and packages named
    packages   package:<name> model sources, found in the installed files without running the package's code
    paths      the folders a run writes: folders (not files), writable, names and paths the file system allows
    opsets     the ONNX opsets the installed exporter writes
    shapes     model shapes against the teacher, built as transformers builds them, without weights (the tasks
               register what differs: compress/tasks/<task>/rules.py)
    sweep      a sweep's points and their checks at load time (compress/sweep.py runs them)
    reference  docs/configuration.md, generated from the models' descriptions

Everything other modules use is importable from ``compress.config``. This package imports nothing from
compress but compress.errors.
"""

from compress.config.base import PACKAGE_PREFIX, Precision, StrictModel
from compress.config.deploy import (
    BNB_METHODS,
    BUILTIN_VARIANTS,
    GPU_METHODS,
    ONNX_INT8,
    ONNX_METHODS,
    BenchConfig,
    CalibrationConfig,
    ExportConfig,
    MobileConfig,
    OptimizeConfig,
    QuantizeConfig,
    QuantMethod,
    QuantParityConfig,
    QuantVariantConfig,
    ReportConfig,
    ShipConfig,
)
from compress.config.load import (
    DuplicateKeyError,
    apply_overrides,
    dump_yaml,
    format_validation_error,
    load_config,
    load_raw,
    read_yaml_mapping,
    validate_config,
)
from compress.config.paths import DEFAULT_RUNS
from compress.config.rules import (
    check_combinations,
    check_sources,
    count_local_rows,
    gguf_file,
    is_local_path,
    resolve_model_path,
)
from compress.config.schema import (
    AugmentConfig,
    BaselinesConfig,
    DataConfig,
    DistillConfig,
    HiddenLossConfig,
    PipelineConfig,
    RefineConfig,
    SequenceKDConfig,
    StudentConfig,
    SweepConfig,
    TeacherCacheConfig,
    TeacherConfig,
    TrainConfig,
    VocabTrimConfig,
)

__all__ = [
    "BNB_METHODS",
    "BUILTIN_VARIANTS",
    "DEFAULT_RUNS",
    "GPU_METHODS",
    "ONNX_INT8",
    "ONNX_METHODS",
    "PACKAGE_PREFIX",
    "AugmentConfig",
    "BaselinesConfig",
    "BenchConfig",
    "CalibrationConfig",
    "DataConfig",
    "DistillConfig",
    "DuplicateKeyError",
    "ExportConfig",
    "HiddenLossConfig",
    "MobileConfig",
    "OptimizeConfig",
    "PipelineConfig",
    "Precision",
    "QuantMethod",
    "QuantParityConfig",
    "QuantVariantConfig",
    "QuantizeConfig",
    "RefineConfig",
    "ReportConfig",
    "SequenceKDConfig",
    "ShipConfig",
    "StrictModel",
    "StudentConfig",
    "SweepConfig",
    "TeacherCacheConfig",
    "TeacherConfig",
    "TrainConfig",
    "VocabTrimConfig",
    "apply_overrides",
    "check_combinations",
    "check_sources",
    "count_local_rows",
    "dump_yaml",
    "format_validation_error",
    "gguf_file",
    "is_local_path",
    "load_config",
    "load_raw",
    "read_yaml_mapping",
    "resolve_model_path",
    "validate_config",
]
