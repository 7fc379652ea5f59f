"""Running a model directory: windowing and batching (``windows``), the PyTorch :class:`Predictor` (``predictor``),
ONNX Runtime's :class:`OnnxPredictor` and the one session factory :func:`ort_session` (``onnx``).

The names load on first use: the package root imports ``task_lookup`` from here, and ``import loraroute`` must stay
free of torch and numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loraroute.inference.onnx import OnnxPredictor, ort_session
    from loraroute.inference.predictor import BasePredictor, Predictor, best_device

__all__ = ["BasePredictor", "OnnxPredictor", "Predictor", "best_device", "ort_session"]


def __getattr__(name: str) -> Any:
    if name in ("BasePredictor", "Predictor", "best_device"):
        from loraroute.inference import predictor

        return getattr(predictor, name)
    if name in ("OnnxPredictor", "ort_session"):
        from loraroute.inference import onnx

        return getattr(onnx, name)
    raise AttributeError(f"module 'loraroute.inference' has no attribute {name!r}")
