"""The training recipe, framework-free: configuration, learning-rate schedule and the epoch
loop shared by :mod:`torch_impl.train` and :mod:`jax_impl.train`.

The configuration is data: :data:`OPTIONS` declares every setting once (name, default, help,
check, command-line flag) — the run, data/model and optimisation settings here, the tricks' own
in :data:`twintricks.tricks.TRICKS` — and :class:`TrainConfig`, its validation, ``config.json``
and the ``twintricks train`` options are generated from it.

A backend provides a *trainer* (``framework``, ``steps_per_epoch``, ``train_epoch``,
``evaluate``, ``get_state``, ``set_state``); :func:`fit` runs the epochs, prints one line per
epoch, appends ``metrics.jsonl``, writes a checkpoint after every epoch and every
``save_every`` steps (atomically) and ``summary.json`` and ``curves.png`` at the end, and resumes
from the last checkpoint — in the middle of an epoch too: the trainer's state then holds the
step within the epoch, the epoch's sums so far and where its data stream stands, so the resumed
run continues with the next batch and ends bit-identical to an uninterrupted one.

Checkpoint files are :mod:`twintricks.checkpoint`; every file is written atomically by
:mod:`twintricks.files`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from twintricks.checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint, save_checkpoint
from twintricks.checks import check_int
from twintricks.files import atomic_write_bytes, write_json, write_jsonl
from twintricks.models import DEFAULT_MODEL, DEFAULT_WIDTHS, MODELS
from twintricks.schema import check_run_state
from twintricks.tricks import (
    CROP_SCALE_IN_MEMORY,
    CROP_SCALE_STREAMED,
    POLICIES,
    TRICKS,
    Option,
    Trick,
    choice,
    integer,
    optional,
    real,
    reals,
    trick_named,
)

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "DATASETS",
    "IN_MEMORY_DATASETS",
    "STREAMING_DATASETS",
    "BAD_IMAGE_POLICIES",
    "POLICIES",
    "PRECISIONS",
    "OPTIONS",
    "OPTION_GROUPS",
    "TRICKS_GROUP",
    "TRICKS",
    "TrainConfig",
    "default_lr",
    "lr_at",
    "lr_table",
    "steps_per_epoch",
    "fit",
    "progress_bar",
    "device_tricks",
    "TrainingDiverged",
]

OPTIMIZERS = ("sgd", "adamw", "adabound", "amsbound", "adaboundw")
SCHEDULES = ("cosine", "step", "constant")
PRECISIONS = ("float32", "bfloat16")
#: Data sets held in device memory whole (small, fixed 32×32): the trainers cut batches on the device.
IN_MEMORY_DATASETS = ("digits", "cifar10")
#: Data sets read image by image while training (:mod:`twintricks.data`): any size, any image size.
STREAMING_DATASETS = ("folder", "shards", "packed")
DATASETS = IN_MEMORY_DATASETS + STREAMING_DATASETS
BAD_IMAGE_POLICIES = ("error", "skip")
_DEFAULT_LR = {"sgd": 0.05, "adamw": 2e-3, "adabound": 1e-3, "amsbound": 1e-3, "adaboundw": 1e-3}


def default_lr(optimizer: str) -> float:
    """The default peak learning rate per optimizer (SGD 0.05, AdamW 2e-3, AdaBound family 1e-3)."""
    return _DEFAULT_LR[optimizer]


# ----------------------------------------------------------------------------- options

_width_help = "base width (" + ", ".join(f"{m} {w}" for m, w in DEFAULT_WIDTHS.items()) + ")"
_lr_help = "peak lr (default: " + ", ".join(f"{o} {lr:g}" for o, lr in _DEFAULT_LR.items()) + ")"

TRICKS_GROUP = "tricks (off by default)"
#: The settings that are not tricks, by command-line group; the tricks' own options come from
#: :data:`twintricks.tricks.TRICKS`. :class:`TrainConfig` has one field per option, in this order.
OPTION_GROUPS: dict[str, tuple[Option, ...]] = {
    "run": (
        Option("backend", "torch", "framework that runs the recipe", type=str, check=choice(("torch", "jax")),
               choices=("torch", "jax")),
        Option("seed", 0, "seed of every random draw (model initialisation, data order, tricks)", type=int,
               check=integer(low=0, high=2**63 - 1)),  # jax.random.key takes a C long
        Option("out", None, "output folder (default runs/<backend>-<dataset>-<model>)", type=str, metavar="DIR"),
        Option("resume", False, "continue from DIR/checkpoint.ckpt", type=bool),
        Option("precision", "float32", "bfloat16: autocast/compute dtype (GPUs)", type=str, check=choice(PRECISIONS),
               choices=PRECISIONS),
        Option("compile", "auto", "torch.compile the torch step (auto: on for CUDA, off on CPU); jax always jits",
               type=str, check=choice(("auto", "on", "off")), choices=("auto", "on", "off")),
        Option("device", None, "torch: cpu, cuda, cuda:N...; jax: cpu, gpu (or cuda), tpu, optionally :N "
               "(default: torch cuda if available, else cpu; jax its first device)", type=str),
        Option("progress", True, "no per-step progress bar (a bar is only drawn on a terminal)", type=bool,
               flag="--no-progress"),
        Option("save_every", None, "also write the checkpoint every STEPS optimizer steps (mid-epoch; --resume "
               "continues after the last one, bit-identical)", type=int, check=optional(integer(low=1)),
               metavar="STEPS"),
    ),
    "scale-out": (
        Option("devices", None, "jax: devices to split each batch over (default: every device of the platform; "
               "torch: one process per device, started by torchrun)", type=int, check=optional(integer(low=1)),
               metavar="N"),
        Option("sync_bn", True, "torch DDP: BatchNorm statistics of each process's own images instead of the "
               "global batch's (saves a collective per layer; the result then depends on the world size)",
               type=bool, flag="--no-sync-bn"),
    ),
    "data and model": (
        Option("dataset", "digits", "data set: digits, cifar10 (held on the device), or your images streamed from "
               "an image folder (train/<class>/*, test/ or val/), webdataset tar shards, or ArrayRecord files "
               "written by `twintricks data pack`", type=str, check=choice(DATASETS), choices=DATASETS),
        Option("data_dir", None, "cifar10: a cifar-10-batches-py dir, an image-folder dir or a .tar.gz of one; "
               "folder/shards/packed: your data", type=str, metavar="DIR"),
        Option("download", False, "cifar10: let torchvision download it into --data-dir", type=bool),
        Option("image_size", None, "folder/shards/packed: side of the square images the model sees (default 224)",
               type=int, check=optional(integer(low=8)), metavar="PX"),
        Option("workers", None, "folder/shards/packed: loader worker processes decoding images (default: the "
               "CPU cores; 0: in the training process)", type=int, check=optional(integer(low=0)), metavar="N"),
        Option("on_bad_image", "error", "folder/shards/packed: an unreadable image stops the run (error) or is "
               "left out, counted and listed in summary.json (skip)", type=str, check=choice(BAD_IMAGE_POLICIES),
               choices=BAD_IMAGE_POLICIES),
        Option("model", DEFAULT_MODEL, "model", type=str, check=choice(MODELS), choices=MODELS),
        Option("width", None, _width_help, type=int, check=optional(integer(low=1))),
    ),
    "optimisation": (
        Option("epochs", 6, "training epochs", type=int, check=integer(low=1)),
        Option("batch_size", 64, "training batch (the last short batch of an epoch is dropped)", type=int,
               check=integer(low=1)),
        Option("eval_batch_size", 512, "evaluation batch", type=int, check=integer(low=1)),
        Option("optimizer", "sgd", "optimizer", type=str, check=choice(OPTIMIZERS), choices=OPTIMIZERS),
        Option("lr", None, _lr_help, check=optional(real(low=0.0, low_inclusive=False))),
        Option("momentum", 0.9, "SGD momentum", check=real(low=0.0, high=1.0, high_inclusive=False)),
        Option("nesterov", True, "SGD without Nesterov momentum", type=bool, flag="--no-nesterov"),
        Option("weight_decay", 5e-4, "weight decay", check=real(low=0.0)),
        Option("final_lr", 0.1, "AdaBound family: the SGD lr the bounds converge to",
               check=real(low=0.0, low_inclusive=False)),
        Option("adabound_gamma", 1e-3, "AdaBound family: convergence speed of the bounds",
               check=real(low=0.0, high=1.0, high_inclusive=False)),
        Option("schedule", "cosine", "learning-rate schedule", type=str, check=choice(SCHEDULES), choices=SCHEDULES),
        Option("warmup_epochs", 0.0, "linear warm-up length in epochs", check=real(low=0.0)),
        Option("milestones", (0.5, 0.75), "step schedule: fractions of training", check=reals(real(low=0.0, high=1.0)),
               nargs="+"),
        Option("lr_decay", 0.1, "step schedule: factor at each milestone", check=real(low=0.0, high=1.0)),
    ),
    TRICKS_GROUP: tuple(o for t in TRICKS for o in t.options),
}
#: Every option, in :class:`TrainConfig` field order.
OPTIONS: tuple[Option, ...] = tuple(o for group in OPTION_GROUPS.values() for o in group)


def _post_init(self) -> None:
    for o in OPTIONS:
        if o.check is not None:
            setattr(self, o.name, o.check(o.name, getattr(self, o.name)))
    if self.lr is None:
        self.lr = default_lr(self.optimizer)
    if self.crop_scale is None:
        self.crop_scale = CROP_SCALE_STREAMED if self.dataset in STREAMING_DATASETS else CROP_SCALE_IN_MEMORY
    if self.dataset in IN_MEMORY_DATASETS:
        for name, default in (("image_size", None), ("workers", None), ("on_bad_image", "error")):
            if getattr(self, name) != default:
                raise ValueError(
                    f"`{name}` is a setting of the streamed data sets ({', '.join(STREAMING_DATASETS)}): "
                    f"{self.dataset} is held in memory at 32x32, it would do nothing"
                )
    on = {t.name for t in TRICKS if t.enabled(self)}
    for t in TRICKS:
        if t.options_need_switch and t.name not in on:
            for o in t.options[1:]:
                if getattr(self, o.name) != o.default:
                    raise ValueError(f"`{o.name}` is a setting of `{t.switch.name}`, which is off: it would do nothing")
    for t in TRICKS:
        for other in t.excludes:
            if t.name in on and other in on and t.name < other:
                a, b = t.switch.name, trick_named(other).switch.name
                raise ValueError(f"`{a}` and `{b}` {t.exclusion}: choose one of them")
    for t in TRICKS:
        if t.cross_check is not None:
            t.cross_check(self)


def _to_dict(self) -> dict:
    """The config as JSON-ready values (tuples as lists): ``config.json``."""
    return {o.name: list(v) if isinstance(v := getattr(self, o.name), tuple) else v for o in OPTIONS}


@classmethod
def _from_dict(cls, d: dict):
    """A config from :meth:`to_dict`'s dict (unknown keys are ignored)."""
    return cls(**{o.name: d[o.name] for o in OPTIONS if o.name in d})


def _uses_compile(self, device_type: str) -> bool:
    """``compile="auto"`` compiles on accelerators only (see :mod:`torch_impl.train`)."""
    return self.compile == "on" or (self.compile == "auto" and device_type != "cpu")


def _enabled_tricks(self) -> tuple[Trick, ...]:
    """The tricks this config switches on, in :data:`~twintricks.tricks.TRICKS` order, less those
    another enabled trick takes over (``Trick.takes_over``: e.g. CutMix runs mixup itself when both
    are on)."""
    on = tuple(t for t in TRICKS if t.enabled(self))
    taken = {name for t in on for name in t.takes_over}
    return tuple(t for t in on if t.name not in taken)


def _streams(self) -> bool:
    """Whether the data set is streamed (:data:`STREAMING_DATASETS`) rather than held in memory."""
    return self.dataset in STREAMING_DATASETS


def _soft_targets(self) -> bool:
    """Whether an enabled trick turns the targets into ``[N, K]`` soft targets."""
    return any(t.soft_targets for t in self.enabled_tricks())


def _annotation(option: Option) -> Any:
    kind = tuple[option.type, ...] if option.nargs is not None else option.type
    return kind | None if option.default is None else kind


TrainConfig = dataclasses.make_dataclass(
    "TrainConfig",
    [(o.name, _annotation(o), dataclasses.field(default=o.default)) for o in OPTIONS],
    namespace={
        "__post_init__": _post_init,
        "to_dict": _to_dict,
        "from_dict": _from_dict,
        "uses_compile": _uses_compile,
        "enabled_tricks": _enabled_tricks,
        "soft_targets": _soft_targets,
        "streams": _streams,
    },
)
TrainConfig.__module__ = __name__
TrainConfig.__doc__ = """Everything that defines a training run (``config.json`` is :meth:`to_dict`).

One field per :data:`OPTIONS` entry, with its default; every value is checked (a ``ValueError`` or
``TypeError`` naming the field) and normalised on construction; ``lr=None`` becomes the
optimizer's :func:`default_lr`. Tricks are off at their zero value (``label_smoothing=0``,
``mixup=0``, ``cutmix=0``, ``cutout=0``, ``random_erasing=0``, ``ricap=0``, ``crop_flip=False``,
``autoaugment=None``, ``teacher=None``); :data:`twintricks.tricks.TRICKS` says which combinations
are refused, and which tricks' other settings are refused while the trick is off.

Fields:
""" + "\n".join(f"    ``{o.name}`` = ``{o.default!r}``: {o.help}" for o in OPTIONS)


def device_tricks(config: TrainConfig) -> tuple[Trick, ...]:
    """The enabled tricks a trainer runs on the device: :meth:`TrainConfig.enabled_tricks`, less
    ``crop_flip`` for a streamed data set, whose loader crops and flips each image from the original
    (:mod:`twintricks.data`) before the batch reaches the device."""
    return tuple(t for t in config.enabled_tricks() if not (config.streams() and t.name == "crop_flip"))


def progress_bar(config: TrainConfig, epoch: int, total: int, *, initial: int = 0, show: bool = True):
    """The per-step progress bar of epoch ``epoch`` (a ``tqdm``), or ``None`` when
    ``config.progress`` is off or ``show`` is false (a worker other than the first). The bar turns
    itself off when its stream (stderr) is not a terminal (tqdm's ``disable=None``), so a run whose
    output goes to a log writes no bar lines into it."""
    if not (config.progress and show):
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False, unit="step",
                dynamic_ncols=True, disable=None)


def steps_per_epoch(num_train: int, batch_size: int) -> int:
    """Full batches per epoch (the last short batch is dropped); at least one is required."""
    check_int("batch_size", batch_size, low=1)
    if num_train < batch_size:
        raise ValueError(f"`batch_size` {batch_size} is larger than the training set ({num_train} images)")
    return num_train // batch_size


# ----------------------------------------------------------------------------- schedule


def lr_at(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Learning rate of (0-based) optimizer step ``step``.

    Linear warm-up over ``warmup_epochs`` (from ``lr/warm`` to ``lr``), then ``cosine``:
    ``lr·(1 + cos(π·t))/2`` with ``t`` going from 0 to 1 over the remaining steps (per step, not per
    epoch); ``step``: ``lr·lr_decay^k`` where ``k`` counts the milestones (fractions of all
    steps) already passed; ``constant``: ``lr``.
    """
    total = config.epochs * steps_per_epoch
    warm = int(round(config.warmup_epochs * steps_per_epoch))
    base = float(config.lr)
    if step < warm:
        return base * (step + 1) / warm
    if config.schedule == "cosine":
        t = (step - warm) / max(total - warm, 1)
        return base * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))
    if config.schedule == "step":
        k = sum(step >= m * total for m in config.milestones)
        return base * config.lr_decay**k
    return base


def lr_table(config: TrainConfig, steps_per_epoch: int) -> list[float]:
    """:func:`lr_at` for every step of the run (both backends read the same table)."""
    return [lr_at(config, s, steps_per_epoch) for s in range(config.epochs * steps_per_epoch)]


# ----------------------------------------------------------------------------- the loop


def write_curves(path: Path, history: list[dict]) -> None:
    """``curves.png``: training loss and train/test accuracy against epochs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(ep, [h["train_loss"] for h in history], "o-", label="train")
    a.plot(ep, [h["test_loss"] for h in history], "o-", label="test")
    a.set_xlabel("epoch"), a.set_ylabel("loss"), a.legend()
    b.plot(ep, [h["train_acc"] for h in history], "o-", label="train")
    b.plot(ep, [h["test_acc"] for h in history], "o-", label="test")
    b.set_xlabel("epoch"), b.set_ylabel("accuracy"), b.legend()
    fig.tight_layout()
    buf = __import__("io").BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _check_same_data(saved, now) -> None:
    """A checkpoint resumes only on the data it was trained on: the same images and classes (the
    index fingerprint of a streamed source; its path may differ — a moved folder)."""
    if saved is None and now is None:
        return
    keep = ("images", "classes", "fingerprint")  # a packed copy of a folder is the same data

    def key(record):
        if not isinstance(record, dict):
            return record
        return {k: {f: v.get(f) for f in keep} if isinstance(v, dict) else v for k, v in record.items()}

    if key(saved) != key(now):
        raise CheckpointError(
            "checkpoint was trained on other data: its source is "
            f"{json.dumps(key(saved), sort_keys=True)[:300]}, this run's is {json.dumps(key(now), sort_keys=True)[:300]}"
        )


class TrainingDiverged(RuntimeError):
    """The training (or test) loss of an epoch became NaN or infinite."""


def _run_epochs(trainer, config, out_dir, writes, history, start_epoch, save, log) -> None:
    """:func:`fit`'s epochs from ``start_epoch``: train (saving every ``save_every`` steps),
    evaluate, log, save, append to ``history`` and ``metrics.jsonl``."""
    spe = trainer.steps_per_epoch
    for epoch in range(start_epoch, config.epochs):

        def on_step(done: int, epoch: int = epoch) -> None:
            if config.save_every and done < spe and (epoch * spe + done) % config.save_every == 0:
                save(epoch)

        t0 = time.perf_counter()
        tr = trainer.train_epoch(epoch, on_step=on_step if out_dir is not None else None)
        t1 = time.perf_counter()
        te = trainer.evaluate()
        for what, value in (("mean training loss", tr["loss"]), ("test loss", te["loss"])):
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"training diverged in epoch {epoch + 1}: the {what} is {value} (lr {tr['lr']:.3g}); the epoch "
                    f"was not saved. Try a lower --lr, a warm-up (--warmup-epochs) or float32 precision"
                )
        rec = {
            "epoch": epoch + 1,
            "train_loss": tr["loss"],
            "train_acc": tr["acc"],
            "test_loss": te["loss"],
            "test_acc": te["acc"],
            "lr": tr["lr"],
            "images": tr["images"],
            "train_s": tr["seconds"],
            "images_per_s": tr["images"] / max(tr["seconds"], 1e-9),
            "epoch_s": t1 - t0,
            "eval_s": time.perf_counter() - t1,
            "compile_s": tr.get("compile_s", 0.0),
        }
        history.append(rec)
        log(
            f"epoch {epoch + 1:3d}/{config.epochs}  loss {rec['train_loss']:.4f}  train acc "
            f"{rec['train_acc']:.4f}  test acc {rec['test_acc']:.4f}  {rec['images_per_s']:7.0f} img/s"
            f"  lr {rec['lr']:.2e}  ({rec['epoch_s']:.1f}s)"
        )
        if out_dir is not None:
            save(epoch + 1)
            if writes:
                write_jsonl(out_dir / "metrics.jsonl", history)


def fit(trainer, config: TrainConfig, *, out: str | os.PathLike | None = None, log=print) -> dict:
    """Run the epochs of ``trainer`` and return the summary dict (see the module docstring).

    With ``out``: writes ``config.json`` (the config, plus ``threads``: the CPU thread count the
    backend computes with, ``trainer.threads``, on which torch's CPU results depend, and ``data``:
    the data set's record, ``trainer.data_record``, e.g. a streamed source's kind, path, size and
    fingerprint), ``metrics.jsonl`` (one JSON object per epoch), ``checkpoint.ckpt`` after every
    epoch and, with ``config.save_every``, after every ``save_every``-th optimizer step,
    ``summary.json`` (for a streamed data set also ``image_size``, ``skipped_images`` and
    ``skipped_files``: the bad files left out under ``on_bad_image="skip"``, by every process) and
    ``curves.png``. With ``config.resume``, continues from
    ``out/checkpoint.ckpt`` — at an epoch's end or in the middle of one — (a
    :class:`CheckpointError` if it is corrupt, from another configuration or data set, or holds a
    value out of its schema, :func:`twintricks.schema.check_run_state`; starting from scratch if
    there is none), warning through ``log`` when the thread count differs from the recorded one.

    The trainer's ``train_epoch(epoch, on_step=f)`` calls ``f(done)`` after each of its steps
    (``done`` counted from the epoch's start); its ``get_state()`` holds, besides the weights, the
    optimizer and the random streams, ``step_in_epoch``, ``progress`` (the epoch's sums so far)
    and ``data`` (where the data stream stands), and ``set_state`` restores them, so that the next
    ``train_epoch`` continues the epoch where the checkpoint left it. Every process calls
    ``get_state`` at a save (it may hold a collective); only the first writes.

    Raises :class:`TrainingDiverged` when an epoch's mean training loss or its test loss is NaN
    or infinite; that epoch's checkpoint and metrics are not written, the previous ones are kept.

    Scale-out: ``trainer.world`` (:func:`twintricks.distributed.world_record`) goes into
    ``config.json``, the checkpoint and ``summary.json``; a trainer whose ``is_main`` is false (a
    data-parallel worker other than the first) reads the checkpoint to resume but writes nothing.
    A run may resume at another world size: the state and the draws do not depend on it (a note
    says so); every worker must see the same ``out`` folder.
    """
    threads = getattr(trainer, "threads", None)
    world = getattr(trainer, "world", {"world_size": 1})
    writes = getattr(trainer, "is_main", True)
    data_record = getattr(trainer, "data_record", None)
    spe = trainer.steps_per_epoch
    out_dir = Path(out) if out is not None else None
    history: list[dict] = []
    start_epoch = in_epoch = 0
    if out_dir is not None:
        if writes:
            out_dir.mkdir(parents=True, exist_ok=True)
        ckpt = out_dir / CHECKPOINT_NAME
        if config.resume and ckpt.exists():
            saved = check_run_state(load_checkpoint(ckpt), config, framework=trainer.framework, steps_per_epoch=spe)
            _check_same_data(saved.get("source"), data_record)
            trainer.set_state(saved)
            history = list(saved["history"])
            start_epoch, in_epoch = saved["epoch"], saved["step_in_epoch"]
            where = f", at step {in_epoch} of epoch {start_epoch + 1}" if in_epoch else ""
            log(f"resumed from {ckpt} after epoch {start_epoch}{where}")
            if saved.get("world_size", 1) != world["world_size"]:
                log(
                    f"note: the checkpoint was written at world size {saved.get('world_size', 1)}, the run resumes at "
                    f"{world['world_size']}: the draws are the same, sums are taken in another order"
                )
            if saved.get("threads") != threads:
                log(
                    f"warning: the run was started with {saved.get('threads')} thread(s), it resumes with {threads}: "
                    "the result will not be bit-identical to an uninterrupted run (twintricks train --resume "
                    "without --threads uses the recorded count)"
                )
        elif ckpt.exists() and not config.resume:
            log(f"note: {ckpt} exists and is overwritten (pass --resume to continue it)")
        if writes:
            record = {**config.to_dict(), "threads": threads, **world}
            if data_record is not None:
                record["data"] = data_record
            write_json(out_dir / "config.json", record)
            write_jsonl(out_dir / "metrics.jsonl", history)
    agree = getattr(trainer, "check_same", None)
    if agree is not None:  # every worker must start from the same place (a shared --out folder)
        agree("the epoch and step to start from (is --out a folder every machine shares?)", (start_epoch, in_epoch))

    def save(epoch_done: int) -> None:
        state = trainer.get_state()  # on every process: it may gather the epoch's sums
        if out_dir is not None and writes:
            payload = {**state, "framework": trainer.framework, "config": config.to_dict(), "threads": threads,
                       "epoch": epoch_done, "history": history, **world}
            if data_record is not None:
                payload["source"] = data_record
            save_checkpoint(out_dir / CHECKPOINT_NAME, payload)

    t_run = time.perf_counter()
    try:
        _run_epochs(trainer, config, out_dir, writes, history, start_epoch, save, log)
    finally:
        close = getattr(trainer, "close", None)  # a streamed data set's loader workers stop with the run
        if close is not None:
            close()
    wall = time.perf_counter() - t_run
    skipped = trainer.skipped_files() if hasattr(trainer, "skipped_files") else []  # on every process
    train_s = sum(h["train_s"] for h in history)
    images = sum(h["images"] for h in history)
    summary = {
        "backend": trainer.framework,
        "dataset": config.dataset,
        "model": config.model,
        "epochs": config.epochs,
        "final_test_acc": history[-1]["test_acc"] if history else None,
        "best_test_acc": max(h["test_acc"] for h in history) if history else None,
        "final_train_loss": history[-1]["train_loss"] if history else None,
        "wall_s": wall,
        "images_per_s": images / max(train_s, 1e-9),
        "compile_s": sum(h["compile_s"] for h in history),
        "device": getattr(trainer, "device_name", "cpu"),
        "threads": threads,
        **world,
        "python": sys.version.split()[0],
    }
    if config.streams():
        summary.update(image_size=(data_record or {}).get("image_size"), skipped_images=len(skipped), skipped_files=skipped)
    if out_dir is not None and writes:
        write_json(out_dir / "summary.json", summary)
        if history:
            write_curves(out_dir / "curves.png", history)
    return summary
