"""What a run's files may hold when they are read back: the values of a checkpoint that resumes a
run, and the fields of ``config.json`` that ``--resume`` reads.

A checkpoint's SHA-256 tells damage from an intact file, not intent: anyone can write a file that
verifies. So before a run resumes, every value it takes from the checkpoint is checked for its type,
its range and its consistency with the run (:func:`check_run_state`); anything else is a one-line
:class:`~twintricks.checkpoint.CheckpointError` naming the field and what was expected — never a
raw traceback, never a silent conversion (``"3"`` is not an epoch), never extra epochs (``epoch:
-3`` would otherwise train epochs -2 … 0 again). The file's size and shape were capped before it
was parsed (:mod:`twintricks.checkpoint`, :func:`twintricks.files.load_json`).

The checkpoint's run state (the payload's keys besides the backend's own ``model``, ``optimizer``
and ``rng``, which the backend's ``set_state`` checks against its model):

========================  ===========================================================================
``framework``             ``"torch"`` or ``"jax"``, the backend that resumes
``config``                an object; equal to the run's config but for the settings that do not
                          change the result (:func:`~twintricks.checkpoint.check_resume_compatible`)
``model_name``, ``width`` the run's ``model`` and ``width``
``num_classes``           an integer >= 2
``epoch``                 the completed epochs: an integer in ``[0, epochs]``
``step_in_epoch``         the steps done in epoch ``epoch + 1`` (a mid-epoch checkpoint,
                          ``--save-every``): an integer in ``[0, steps_per_epoch)``, 0 when
                          ``epoch == epochs``; absent: 0
``step``                  the optimizer steps done: exactly ``epoch · steps_per_epoch + step_in_epoch``
``history``               a list of ``epoch`` metric rows (:data:`HISTORY_FIELDS`), row ``i`` of
                          epoch ``i + 1``
``progress``              absent or ``null`` at an epoch's end; mid-epoch, the epoch's sums so far:
                          ``loss_sum`` (a finite number), ``correct`` (an integer in
                          ``[0, step_in_epoch · batch_size]``)
``data``                  ``null`` or an object: where the data stream stands (the backend checks
                          its contents)
``threads``               ``null`` or an integer >= 1
``world_size``,           integers >= 1 (absent: 1)
``processes``,
``devices_per_process``
========================  ===========================================================================

``config.json`` on ``--resume``: a JSON object within :data:`twintricks.files.JSON_CAPS`, whose
``threads`` is absent, ``null`` or an integer >= 1 (:func:`check_config_json`).
"""

from __future__ import annotations

import math
from typing import Any

from twintricks.checkpoint import CheckpointError, check_resume_compatible

__all__ = ["HISTORY_FIELDS", "check_run_state", "check_history", "check_config_json"]

#: One ``metrics.jsonl`` row (an epoch of the ``history``): field → (kind, low, high); kind "int"
#: or "real" (an int is a real too), the bounds inclusive (None: unbounded).
HISTORY_FIELDS: dict[str, tuple[str, float | None, float | None]] = {
    "epoch": ("int", 1, None),
    "train_loss": ("real", None, None),
    "train_acc": ("real", 0.0, 1.0),
    "test_loss": ("real", None, None),
    "test_acc": ("real", 0.0, 1.0),
    "lr": ("real", 0.0, None),
    "images": ("int", 0, None),
    "train_s": ("real", 0.0, None),
    "images_per_s": ("real", 0.0, None),
    "epoch_s": ("real", 0.0, None),
    "eval_s": ("real", 0.0, None),
    "compile_s": ("real", 0.0, None),
}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fail(field: str, expected: str, value: Any):
    raise CheckpointError(f"checkpoint field `{field}` must be {expected}, got {_show(value)}")


def _int(field: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """An ``int`` (not a bool, not a float, not a string) in ``[low, high]``."""
    rng = "" if low is None and high is None else f" in [{'-inf' if low is None else low}, {'inf' if high is None else high}]"
    if type(value) is not int or (low is not None and value < low) or (high is not None and value > high):
        _fail(field, f"an integer{rng}", value)
    return value


def _real(field: str, value: Any, low: float | None = None, high: float | None = None) -> float:
    """A finite ``int`` or ``float`` (not a bool) in ``[low, high]``."""
    rng = "" if low is None and high is None else f" in [{'-inf' if low is None else low}, {'inf' if high is None else high}]"
    if (type(value) not in (int, float) or not math.isfinite(value) or (low is not None and value < low)
            or (high is not None and value > high)):
        _fail(field, f"a finite number{rng}", value)
    return float(value)


def check_history(history: Any, epochs_done: int, field: str = "history") -> list[dict]:
    """``history`` as ``epochs_done`` metric rows (:data:`HISTORY_FIELDS`, row ``i`` of epoch
    ``i + 1``), or a :class:`CheckpointError` naming the first field that is not."""
    if type(history) is not list:
        _fail(field, "a list of metric rows", history)
    if len(history) != epochs_done:
        raise CheckpointError(f"checkpoint field `{field}` has {len(history)} rows, its `epoch` says {epochs_done}")
    for i, row in enumerate(history):
        where = f"{field}[{i}]"
        if type(row) is not dict:
            _fail(where, "an object of metrics", row)
        missing = [k for k in HISTORY_FIELDS if k not in row]
        extra = [k for k in row if k not in HISTORY_FIELDS]
        if missing or extra:
            raise CheckpointError(
                f"checkpoint field `{where}` must have the fields {list(HISTORY_FIELDS)}"
                + (f"; missing {missing}" if missing else "") + (f"; unknown {[_show(k) for k in extra][:4]}" if extra else "")
            )
        for name, (kind, low, high) in HISTORY_FIELDS.items():
            (_int if kind == "int" else _real)(f"{where}.{name}", row[name], low, high)
        if row["epoch"] != i + 1:
            raise CheckpointError(f"checkpoint field `{where}.epoch` must be {i + 1} (row {i}), got {_show(row['epoch'])}")
    return history


def check_run_state(saved: dict, config, *, framework: str, steps_per_epoch: int) -> dict:
    """Check a checkpoint payload read back to resume a run of ``config`` on ``framework`` with
    ``steps_per_epoch`` steps per epoch (see the module docstring for every field); returns
    ``saved`` (with ``step_in_epoch`` filled in as 0 when absent).

    Raises :class:`CheckpointError` in one line naming the field.
    """
    if type(saved) is not dict:
        _fail("payload", "an object", saved)
    if saved.get("framework") != framework:
        raise CheckpointError(f"checkpoint was written by the {_show(saved.get('framework'))} backend (`framework`), this run uses "
                              f"{framework!r}")
    if type(saved.get("config")) is not dict:
        _fail("config", "an object (the run's configuration)", saved.get("config"))
    check_resume_compatible(saved, config, framework)
    for name, want in (("model_name", config.model), ("width", config.width)):
        if saved.get(name) != want or type(saved.get(name)) is not type(want):
            _fail(name, f"{want!r}, the run's `{name.replace('_name', '')}`", saved.get(name))
    _int("num_classes", saved.get("num_classes"), 2)
    epochs = config.epochs
    epoch = _int("epoch", saved.get("epoch"), 0, epochs)
    in_epoch = _int("step_in_epoch", saved.get("step_in_epoch", 0), 0, steps_per_epoch - 1)
    if epoch == epochs and in_epoch:
        _fail("step_in_epoch", f"0 once all {epochs} epochs are done", in_epoch)
    want = epoch * steps_per_epoch + in_epoch
    step = saved.get("step")
    if type(step) is not int or step != want:
        raise CheckpointError(
            f"checkpoint field `step` must be {want} (epoch {epoch} × {steps_per_epoch} steps per epoch + "
            f"step_in_epoch {in_epoch}), got {_show(step)}"
        )
    check_history(saved.get("history"), epoch)
    progress = saved.get("progress")
    if in_epoch == 0:
        if progress is not None:
            _fail("progress", "null at the end of an epoch (step_in_epoch 0)", progress)
    else:
        if type(progress) is not dict or set(progress) != {"loss_sum", "correct"}:
            _fail("progress", "an object with `loss_sum` and `correct` in the middle of an epoch", progress)
        _real("progress.loss_sum", progress["loss_sum"])
        _int("progress.correct", progress["correct"], 0, in_epoch * config.batch_size)
    data = saved.get("data")
    if data is not None and type(data) is not dict:
        _fail("data", "null or an object (where the data stream stands)", data)
    if saved.get("threads") is not None:
        _int("threads", saved["threads"], 1)
    for name in ("world_size", "processes", "devices_per_process"):
        if name in saved:
            _int(name, saved[name], 1)
    return {**saved, "step_in_epoch": in_epoch}


def check_config_json(obj: Any, *, where: str = "config.json") -> dict:
    """The ``config.json`` fields ``--resume`` reads: an object whose ``threads`` is absent,
    ``null`` or an integer >= 1. A ``ValueError`` naming the field otherwise."""
    if type(obj) is not dict:
        raise ValueError(f"{where} must hold a JSON object, got {type(obj).__name__}")
    threads = obj.get("threads")
    if threads is not None and (type(threads) is not int or threads < 1):
        raise ValueError(f"{where}: field `threads` must be null or an integer >= 1, got {_show(threads)}")
    return obj
