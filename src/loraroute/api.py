"""The Python API: train a task's model, load a model directory, call it on texts.

The same paths as the command line: :func:`train` resolves settings with the task's config class, as
``loraroute train`` does, and :func:`load` picks the runtime as ``loraroute serve`` does. Heavy modules (torch,
transformers, ONNX Runtime) are imported when a function is called, not when ``loraroute`` is imported.

Example:
    >>> import loraroute
    >>> result = loraroute.train("intent", epochs=1, max_samples=600)  # doctest: +SKIP
    >>> detector = loraroute.load(result.artifact_dir)  # doctest: +SKIP
    >>> detector("Can my landlord keep my deposit?")["label"]  # doctest: +SKIP
    'law'
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    from loraroute.inference import BasePredictor
    from loraroute.training import RunResult

__all__ = ["Detector", "load", "train"]


def train(task: str, **settings: Any) -> RunResult:
    """Train one task's LoRA model, evaluate it and write its model directory.

    Args:
        task: A task name: ``intent``, ``pii``, ``jailbreak``, ``generative-intent`` or ``solver``.
        **settings: Fields of the task's config class (``loraroute train TASK --help`` lists them, with their
            defaults), e.g. ``model="bert-base-uncased"``, ``data="my.jsonl"``, ``epochs=2``, ``rank=8``. Values
            are checked and converted by the resolver the command line uses; settings not given keep their defaults.

    Returns:
        The run's result: ``artifact_dir`` (the model directory; None on non-main processes under
        ``accelerate launch``), ``report`` (the evaluation report, as in ``eval_report.json``),
        ``train_seconds`` and ``train_samples_per_second``.

    Raises:
        ValueError: The task is unknown, or a setting is unknown (the message names it) or invalid; raised before
            any work starts (:class:`loraroute.config.ConfigError`).
    """
    from loraroute.config import resolve_config
    from loraroute.resources import with_oom_retry
    from loraroute.tasks import get_task
    from loraroute.training import train_task

    runner = get_task(task)
    cfg = resolve_config(runner.config_class, options=settings, fixed={"task": runner.name}, where="loraroute.train()")
    # Like `loraroute train`: an out-of-memory error retries once with half the batch and twice the accumulation.
    return with_oom_retry(lambda c: train_task(runner, c), cfg)


def load(
    path_or_id: str | Path, backend: str = "auto", revision: str | None = None, threads: int | None = None
) -> Detector:
    """Load a model directory written by ``loraroute train``, or a Hugging Face Hub model, for inference.

    Args:
        path_or_id: A model directory, or a Hub repo id (``owner/name``), downloaded once into the Hugging Face
            cache (with its ONNX files unless ``backend="pytorch"``).
        backend: ``auto`` (ONNX Runtime where ``onnx/model.onnx`` was exported, else PyTorch), ``pytorch``,
            ``onnx`` or ``onnx-int8``: the choice ``loraroute serve --backend`` makes, by the same code.
        revision: Hub branch, tag or commit (default: main); ignored for a local directory.
        threads: CPU threads per model call for ONNX Runtime (default: its own choice).

    Returns:
        A :class:`Detector`: call it on a text for one answer, or on a list of texts for a list of answers.

    Raises:
        FileNotFoundError: No such directory or Hub repository, or the ONNX file ``backend`` asks for was not
            exported.
        ValueError: ``backend`` is not one of the four, or the directory is not a loraroute model.
    """
    from loraroute.models.hub import resolve
    from loraroute.serve.unified import load_predictor

    path = resolve(path_or_id, onnx=backend != "pytorch", revision=revision)
    predictor, used = load_predictor(path, backend, threads)
    return Detector(predictor, used)


class Detector:
    """A loaded model and its task: texts in, the task's answers out.

    Answers are dicts in the task's shape, the same as ``loraroute predict`` prints and ``Predictor.predict``
    returns: ``label``, ``confidence`` (and ``probabilities``) for intent; ``has_pii`` and ``entities`` (type,
    start, end, text, confidence) for PII; ``label``, ``is_jailbreak``, ``score``, ``threshold`` for jailbreak.

    Attributes:
        predictor: The runtime's predictor (:class:`loraroute.inference.Predictor` or the ONNX one); its attributes
            (``labels``, ``meta``, ``task``) can be read on the detector too.
        backend: The runtime in use: ``pytorch``, ``onnx`` or ``onnx-int8``.
    """

    def __init__(self, predictor: BasePredictor, backend: str):
        self.predictor = predictor
        self.backend = backend

    @overload
    def __call__(self, texts: str, **options: Any) -> dict[str, Any]: ...
    @overload
    def __call__(self, texts: Sequence[str], **options: Any) -> list[dict[str, Any]]: ...

    def __call__(self, texts: str | Sequence[str], **options: Any) -> dict[str, Any] | list[dict[str, Any]]:
        """One text gives its answer; a list of texts gives a list of answers, in order.

        Args:
            texts: A text, or a list of texts.
            **options: As for :meth:`predict`.
        """
        if isinstance(texts, str):
            return self.predict([texts], **options)[0]
        return self.predict(texts, **options)

    def predict(self, texts: Sequence[str], **options: Any) -> list[dict[str, Any]]:
        """One answer per text.

        Args:
            texts: The texts.
            **options: The task's options, as ``loraroute predict`` takes them: ``threshold`` (jailbreak: decision
                threshold instead of the calibrated one; intent: low-confidence fallback; PII: minimum entity
                confidence), ``return_probabilities`` (default True), ``patterns`` (PII: Presidio's recognizers).
        """
        return self.predictor.predict(list(texts), **options)

    def __getattr__(self, name: str) -> Any:
        if name == "predictor":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.predictor, name)

    def __repr__(self) -> str:
        meta = getattr(self.predictor, "meta", {})
        return f"Detector(task={meta.get('task')!r}, labels={len(meta.get('labels', []))}, backend={self.backend!r})"
