"""The training recipe, framework-free: configuration, learning-rate schedule and the epoch
loop shared by :mod:`torch_impl.train` and :mod:`jax_impl.train`.

A backend provides a *trainer* (``framework``, ``steps_per_epoch``, ``train_epoch``,
``evaluate``, ``get_state``, ``set_state``); :func:`fit` runs the epochs, prints one line per
epoch, appends ``metrics.jsonl``, writes a checkpoint after every epoch (atomically) and
``summary.json`` and ``curves.png`` at the end, and resumes from the last checkpoint.

Checkpoint files are :mod:`twintricks.checkpoint`; every file is written atomically by
:mod:`twintricks.files`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from twintricks.checkpoint import CHECKPOINT_NAME, check_resume_compatible, load_checkpoint, save_checkpoint
from twintricks.checks import check_choice, check_int, check_ordered_pair, check_real
from twintricks.files import atomic_write_bytes, write_json, write_jsonl
from twintricks.policies import POLICY_NAMES as POLICIES

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "POLICIES",
    "TrainConfig",
    "default_lr",
    "lr_at",
    "lr_table",
    "required_tricks",
    "steps_per_epoch",
    "fit",
]

OPTIMIZERS = ("sgd", "adamw", "adabound", "amsbound", "adaboundw")
SCHEDULES = ("cosine", "step", "constant")
PRECISIONS = ("float32", "bfloat16")
_DEFAULT_LR = {"sgd": 0.05, "adamw": 2e-3, "adabound": 1e-3, "amsbound": 1e-3, "adaboundw": 1e-3}


def default_lr(optimizer: str) -> float:
    """The default peak learning rate per optimizer (SGD 0.05, AdamW 2e-3, AdaBound family 1e-3)."""
    return _DEFAULT_LR[optimizer]


@dataclass
class TrainConfig:
    """Everything that defines a training run (``config.json`` is this, as a dict).

    Tricks are off at their zero value: ``label_smoothing=0``, ``mixup=0`` (Beta α),
    ``cutout=0`` (hole side), ``ricap=0`` (Beta β), ``crop_flip=False``, ``autoaugment=None``,
    ``teacher=None``.
    """

    backend: str = "torch"
    dataset: str = "digits"
    data_dir: str | None = None
    model: str = "fastnet"
    width: int | None = None
    epochs: int = 6
    batch_size: int = 64
    eval_batch_size: int = 512
    optimizer: str = "sgd"
    lr: float | None = None
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    final_lr: float = 0.1
    adabound_gamma: float = 1e-3
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    milestones: tuple = (0.5, 0.75)
    lr_decay: float = 0.1
    label_smoothing: float = 0.0
    mixup: float = 0.0
    cutout: int = 0
    cutout_holes: int = 1
    ricap: float = 0.0
    crop_flip: bool = False
    crop_scale: tuple = (0.35, 1.0)
    autoaugment: str | None = None
    teacher: str | None = None
    kd_temperature: float = 4.0
    kd_alpha: float = 0.9
    seed: int = 0
    precision: str = "float32"
    compile: str = "auto"
    out: str | None = None
    resume: bool = False
    progress: bool = True
    download: bool = False
    device: str | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        check_choice("backend", self.backend, ("torch", "jax"))
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("compile", self.compile, ("auto", "on", "off"))
        check_int("epochs", self.epochs, low=1)
        check_int("batch_size", self.batch_size, low=1)
        check_int("eval_batch_size", self.eval_batch_size, low=1)
        if self.width is not None:
            check_int("width", self.width, low=1)
        if self.lr is None:
            self.lr = default_lr(self.optimizer)
        check_real("lr", self.lr, low=0.0, low_inclusive=False)
        check_real("momentum", self.momentum, low=0.0, high=1.0, high_inclusive=False)
        check_real("weight_decay", self.weight_decay, low=0.0)
        check_real("final_lr", self.final_lr, low=0.0, low_inclusive=False)
        check_real("adabound_gamma", self.adabound_gamma, low=0.0, high=1.0, high_inclusive=False)
        check_real("warmup_epochs", self.warmup_epochs, low=0.0)
        check_real("lr_decay", self.lr_decay, low=0.0, high=1.0)
        self.milestones = tuple(check_real("milestones", m, low=0.0, high=1.0) for m in self.milestones)
        check_real("label_smoothing", self.label_smoothing, low=0.0, high=1.0)
        check_real("mixup", self.mixup, low=0.0)
        check_int("cutout", self.cutout, low=0)
        check_int("cutout_holes", self.cutout_holes, low=0)
        check_real("ricap", self.ricap, low=0.0)
        self.crop_scale = check_ordered_pair("crop_scale", tuple(self.crop_scale), low=0.0, high=1.0, strict_low=True)
        if self.autoaugment is not None:
            check_choice("autoaugment", self.autoaugment, POLICIES)
        check_real("kd_temperature", self.kd_temperature, low=0.0, low_inclusive=False)
        check_real("kd_alpha", self.kd_alpha, low=0.0, high=1.0)
        check_int("seed", self.seed, low=0)
        if self.mixup > 0 and self.ricap > 0:
            raise ValueError("`mixup` and `ricap` both mix the batch: choose one of them")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        d["crop_scale"] = list(self.crop_scale)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (tuple(v) if k in ("milestones", "crop_scale") else v) for k, v in d.items() if k in names})

    def uses_compile(self, device_type: str) -> bool:
        """``compile="auto"`` compiles on accelerators only (see :mod:`torch_impl.train`)."""
        return self.compile == "on" or (self.compile == "auto" and device_type != "cpu")


# ----------------------------------------------------------------------------- tricks


def required_tricks(config: TrainConfig, *, teacher: bool = False) -> list[tuple[str, str, str]]:
    """``(module, function, flag)`` for every trick function a run needs: each backend resolves them
    in its own package (``torch_impl.<module>.<function>`` / ``jax_impl.<module>.<function>``)
    before training, so a trick that is not available fails with a clear error naming the flag."""
    need: list[tuple[str, str, str]] = []
    add = lambda module, names, flag: need.extend((module, n, flag) for n in names)  # noqa: E731
    if config.crop_flip:
        add("cropping", ("sample_resized_crop_params", "resized_crop", "sample_flip_params", "hflip"), "--crop-flip")
    if config.autoaugment:
        add("policies", ("sample_autoaugment_params", "autoaugment"), "--autoaugment")
    if config.cutout > 0:
        add("erasing", ("sample_cutout_params", "cutout"), "--cutout")
    if config.mixup > 0:
        add("mixing", ("sample_mixup_params", "mixup"), "--mixup")
    if config.ricap > 0:
        add("mixing", ("sample_ricap_params", "ricap"), "--ricap")
    if config.label_smoothing > 0:
        add("losses", ("smooth_labels", "label_smoothing_cross_entropy"), "--label-smoothing")
    if config.mixup > 0 or config.ricap > 0:
        add("losses", ("soft_target_cross_entropy",), "--mixup/--ricap")
    if teacher:
        add("losses", ("distillation_loss",), "--teacher")
    return need


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


def fit(trainer, config: TrainConfig, *, out: str | os.PathLike | None = None, log=print) -> dict:
    """Run the epochs of ``trainer`` and return the summary dict (see the module docstring).

    With ``out``: writes ``config.json``, ``metrics.jsonl`` (one JSON object per epoch),
    ``checkpoint.ckpt`` after every epoch, ``summary.json`` and ``curves.png``. With
    ``config.resume``, continues from ``out/checkpoint.ckpt`` (a :class:`CheckpointError` if it is
    corrupt or from another configuration; starting from scratch if there is none).
    """
    out_dir = Path(out) if out is not None else None
    history: list[dict] = []
    start_epoch = 0
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        ckpt = out_dir / CHECKPOINT_NAME
        if config.resume and ckpt.exists():
            saved = load_checkpoint(ckpt)
            check_resume_compatible(saved, config, trainer.framework)
            trainer.set_state(saved)
            history = list(saved.get("history", []))
            start_epoch = int(saved["epoch"])
            log(f"resumed from {ckpt} after epoch {start_epoch}")
        elif ckpt.exists() and not config.resume:
            log(f"note: {ckpt} exists and is overwritten (pass --resume to continue it)")
        write_json(out_dir / "config.json", config.to_dict())
        write_jsonl(out_dir / "metrics.jsonl", history)
    t_run = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        tr = trainer.train_epoch(epoch)
        t1 = time.perf_counter()
        te = trainer.evaluate()
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
            state = trainer.get_state()
            save_checkpoint(
                out_dir / CHECKPOINT_NAME,
                {**state, "framework": trainer.framework, "config": config.to_dict(), "epoch": epoch + 1, "history": history},
            )
            write_jsonl(out_dir / "metrics.jsonl", history)
    wall = time.perf_counter() - t_run
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
        "python": sys.version.split()[0],
    }
    if out_dir is not None:
        write_json(out_dir / "summary.json", summary)
        if history:
            write_curves(out_dir / "curves.png", history)
    return summary
