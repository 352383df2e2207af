"""Quantization of the student: the rows it is calibrated and judged on (``samples``), ONNX Runtime int8
with a per-node error measurement (``onnx_int8``), the fallback ladder (``ladder``), PyTorch int8
(``torch_int8``) and the GPU-only methods (``gpu``). The quantize stage puts them together."""
