"""The ONNX opsets a run can export to, asked of the installed exporter rather than written down: the export
stage calls optimum's ``main_export``, which runs PyTorch's ONNX exporter; the file it writes is read back with
``onnx`` and run by ONNX Runtime."""

from __future__ import annotations

from compress.config.schema import PipelineConfig

# The lowest opset is the models': transformers' default attention is torch's scaled_dot_product_attention, which
# the exporter writes from opset 14 on (below it, BERT and GPT-2 exports fail with UnsupportedOperatorError,
# "support for this operator was added in version 14"; measured with torch 2.13 and optimum 1.x).
LOWEST = 14


def opset_range() -> tuple[int, int, str]:
    """(lowest, highest, who says so) of the opsets the installed exporter writes and onnx reads."""
    import onnx

    highest, who = onnx.defs.onnx_opset_version(), f"onnx {onnx.__version__}"
    try:
        import torch
        from torch.onnx import _constants

        if _constants.ONNX_MAX_OPSET < highest:  # above it torch raises "Unsupported onnx_opset_version"
            highest, who = _constants.ONNX_MAX_OPSET, f"torch {torch.__version__}'s ONNX exporter (optimum runs it)"
    except (ImportError, AttributeError):  # a torch without these constants: onnx's bound stands
        pass
    return LOWEST, highest, who


def check_opset(cfg: PipelineConfig) -> list[str]:
    opset = cfg.export.opset
    if opset is None:
        return []
    lowest, highest, who = opset_range()
    if lowest <= opset <= highest:
        return []
    why = (f"{who} writes opsets up to {highest}" if opset > highest else
           f"transformers' attention (scaled_dot_product_attention) is exported from opset {lowest} on")
    return [f"export.opset: {opset}, but {why}; valid: {lowest}..{highest}, or null for optimum's default for the "
            f"architecture"]
