"""The ONNX opsets a run can export to, asked of the installed libraries rather than written down: the export
stage calls optimum's ``main_export``, which runs PyTorch's TorchScript ONNX exporter (``dynamo=False``), and the
file it writes is read back with ``onnx``."""

from __future__ import annotations

from compress.config.schema import PipelineConfig

LOWEST = 11  # export.opset's own bound (compress.config.deploy.ExportConfig): optimum's exporters go no lower


def opset_range() -> tuple[int, int, str]:
    """(lowest, highest, who says so) of the opsets the installed exporter writes and onnx reads."""
    import onnx

    highest, who = onnx.defs.onnx_opset_version(), f"onnx {onnx.__version__}"
    try:
        import torch
        from torch.onnx import _constants

        exporter = getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", None) or _constants.ONNX_MAX_OPSET
        if exporter < highest:
            highest, who = exporter, f"torch {torch.__version__}'s TorchScript ONNX exporter, which optimum's main_export runs"
    except (ImportError, AttributeError):  # a torch without these constants: onnx's range stands
        pass
    return LOWEST, highest, who


def check_opset(cfg: PipelineConfig) -> list[str]:
    opset = cfg.export.opset
    if opset is None:
        return []
    lowest, highest, who = opset_range()
    if lowest <= opset <= highest:
        return []
    return [f"export.opset: {opset}, but {who} writes opsets {lowest}..{highest}; give one of those, or null for "
            f"optimum's default for the architecture"]
