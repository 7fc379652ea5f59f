"""ONNX Runtime: an exported model directory with Predictor's interface, and the one place sessions are built.

The graph (``loraroute.export.onnx`` writes it) takes ``input_ids``, ``attention_mask`` (and ``token_type_ids`` where
the model reads them) and returns ``logits``; tokenizer and label maps are read from the top of the model directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from loraroute.artifacts import ModelDir
from loraroute.extras import require_extra
from loraroute.inference.predictor import BasePredictor
from loraroute.inference.task_lookup import task_of
from loraroute.models.loading import load_tokenizer


def ort_session(
    graph_path: str | Path, threads: int | None = None, spinning: bool = True, providers: list[str] | None = None
):
    """An ONNX Runtime session on CUDA where it is available, else the CPU (or on ``providers``).

    ``spinning=False`` stops the worker threads from spinning for a while after each call, as they do by default:
    on a 2-core machine a server's event loop needs that CPU to parse the next requests.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    providers = providers or [
        p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()
    ]
    return ort.InferenceSession(str(graph_path), options, providers=providers)


class OnnxPredictor(BasePredictor):
    """An exported model under ONNX Runtime with Predictor's interface (``logits``, ``predict``, ``labels``...)."""

    def __init__(self, session, tokenizer, meta: dict[str, Any], task, batch_size: int = 32):
        super().__init__(tokenizer, meta, task, batch_size)
        self.session = session
        self.input_names = [i.name for i in session.get_inputs()]

    @classmethod
    def load(
        cls,
        path: str | Path,
        int8: bool = False,
        onnx_file: str | Path | None = None,
        threads: int | None = None,
        providers: list[str] | None = None,
        spinning: bool = True,
        task=None,
    ) -> OnnxPredictor:
        require_extra("onnx", "the ONNX Runtime predictor", "onnxruntime")
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: no such model directory")
        files = ModelDir(path)
        graph = Path(onnx_file) if onnx_file else files.onnx_int8 if int8 else files.onnx_fp32
        if not graph.exists():
            raise FileNotFoundError(
                f"{graph}: missing; run `loraroute export onnx {path}{' --int8' if int8 else ''}` first"
            )
        session = ort_session(graph, threads, spinning, providers)
        tokenizer, meta = load_tokenizer(str(path)), files.meta()
        return cls(session, tokenizer, meta, task if task is not None else task_of(path, meta))

    def _forward(self, enc) -> np.ndarray:
        feeds = {}
        for name in self.input_names:
            if name in enc:
                feeds[name] = np.asarray(enc[name], dtype=np.int64)
            elif name == "token_type_ids":  # what PyTorch substitutes when the tokenizer gives none
                feeds[name] = np.zeros_like(np.asarray(enc["input_ids"], dtype=np.int64))
            else:
                raise ValueError(f"ONNX graph input {name!r} is not produced by the tokenizer")
        return self.session.run(["logits"], feeds)[0]
