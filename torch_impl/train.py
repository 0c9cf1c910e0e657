"""The training recipe in PyTorch: one step holding augmentation, forward, loss, backward and update.

:class:`Trainer` keeps the data on the device (:mod:`torch_impl.data`), a model from
:mod:`torch_impl.models`, an optimizer and a ``torch.Generator``. One training step is:

1. cut the batch on the device (uint8 ``[B, C, H, W]``);
2. draw the step's trick parameters from the generator (:meth:`Trainer.sample_aug`; tiny tensors,
   eager — sampling is kept out of the compiled region because ``torch.compile`` cannot trace a
   ``torch.Generator``);
3. the compiled part (:meth:`Trainer.loss_fn`, ``torch.compile``\\ d when compiling): random
   resized crop + flip and AutoAugment on uint8, then ``x/255`` normalised by the data set's
   channel mean/std, Cutout (fill 0 = the mean), label smoothing, mixup or RICAP (soft targets),
   the forward pass (``bfloat16`` autocast optional), the loss (cross-entropy against the soft or
   smoothed targets, plus Hinton distillation against a frozen teacher's logits on the same
   images); AOTAutograd compiles the backward pass with it;
4. the optimizer update (SGD with Nesterov momentum and weight decay, AdamW, or AdaBound /
   AMSBound / AdaBoundW from :mod:`torch_impl.optim`) with the step's learning rate from
   :func:`twintricks.recipe.lr_at` (cosine or step schedule, optional warm-up).

Compilation: ``compile="auto"`` compiles on CUDA and runs eagerly on CPU. On this project's 2-core
CPU machine Inductor's first compile of the default net took 20-40 s — longer than the whole
default digits run — and its steady-state gain depends on the load: slower than eager on the
busy machine (1.1 s vs 0.65 s per batch of 128), faster when quiet (1.82k vs 1.44k images/s in
``benchmarks/RESULTS.md``). So CPU runs stay eager by default; ``compile="on"`` forces it for long
runs. The optimizer update is eager (on CUDA with multi-tensor ``foreach`` kernels, torch's
default, which :class:`torch_impl.optim.AdaBound` follows):
a per-step learning rate given as a Python float would make a compiled ``optimizer.step``
recompile whenever it changes, and AdaBound takes float learning rates only.

Static shapes: the last short training batch of an epoch is dropped, the last evaluation batch is
padded (:mod:`torch_impl.data`), so nothing recompiles after the first step.

Determinism: all randomness comes from one ``torch.Generator`` seeded with ``seed`` (model
initialisation from ``torch.manual_seed(seed)`` inside ``torch.random.fork_rng``, so the global
generator is left as it was). :meth:`Trainer.get_state` / :meth:`Trainer.set_state` cover the
weights, the optimizer, the generator and the step count, so a run resumed from an epoch
checkpoint ends bit-identical (on CPU) to an uninterrupted one.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from torch_impl import data as tdata
from torch_impl import models as tmodels
from twintricks.datasets import channel_stats
from twintricks.recipe import TrainConfig, fit, lr_at, required_tricks

__all__ = ["Trainer", "build_optimizer", "train", "TrickUnavailableError"]


class TrickUnavailableError(RuntimeError):
    """A trick was requested whose implementation is not (yet) in :mod:`torch_impl`."""


def _trick(module_name: str, name: str, flag: str):
    import importlib

    mod = importlib.import_module(f"torch_impl.{module_name}")
    fn = getattr(mod, name, None)
    if fn is None:
        raise TrickUnavailableError(
            f"{flag} needs torch_impl.{module_name}.{name}, which is not available in this version"
        )
    return fn


def build_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    """The optimizer named by ``config.optimizer`` with the run's hyperparameters.

    ``sgd``: ``torch.optim.SGD(momentum, nesterov, weight_decay)`` (coupled L2, applied to every
    parameter, BN included — as the reference recipes do); ``adamw``: ``torch.optim.AdamW``
    (decoupled decay, scaled by lr); ``adabound``/``amsbound``/``adaboundw``: ours.
    """
    lr, wd = float(config.lr), float(config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=config.momentum, nesterov=config.nesterov and config.momentum > 0,
            weight_decay=wd, foreach=True,
        )
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd, foreach=True)
    cls = {"adabound": "AdaBound", "amsbound": "AMSBound", "adaboundw": "AdaBoundW"}[config.optimizer]
    opt_cls = _trick("optim", cls, f"--optimizer {config.optimizer}")
    return opt_cls(params, lr=lr, final_lr=config.final_lr, gamma=config.adabound_gamma, weight_decay=wd)


def _to_numpy_tree(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy().copy()
    if isinstance(x, dict):
        return {k: _to_numpy_tree(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_numpy_tree(v) for v in x)
    return x


def _to_torch_tree(x, device):
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x.copy()).to(device)
    if isinstance(x, dict):
        return {k: _to_torch_tree(v, device) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_torch_tree(v, device) for v in x)
    return x


class Trainer:
    """One training run's state and step (see the module docstring).

    Args:
        config: the run's :class:`~twintricks.recipe.TrainConfig`.
        dataset: a :class:`twintricks.datasets.ImageDataset`.
        device: ``"cpu"``, ``"cuda"``...; default ``config.device`` or CUDA when available.
        teacher: optional ``(model_name, width, state_dict)`` of a trained teacher (a torch-style
            ``state_dict``, e.g. converted from a jax checkpoint by :mod:`parity.convert`).
        mean, std: normalisation per channel on the [0, 1] scale (default: the training set's).
    """

    framework = "torch"

    def __init__(self, config: TrainConfig, dataset, *, device=None, teacher=None, mean=None, std=None):
        self.config = config
        dev = device or config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.device = torch.device(dev)
        self.device_name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        self.data = tdata.DeviceData(dataset, self.device)
        self.num_classes = dataset.num_classes
        self.image_size = tuple(dataset.image_shape[:2])
        self.steps_per_epoch = self.data.steps_per_epoch(config.batch_size)
        self.lrs = None
        if mean is None or std is None:
            mean, std = channel_stats(dataset.train_images)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.model = tmodels.create_model(
                config.model, self.num_classes, width=config.width, in_channels=dataset.image_shape[2]
            ).to(self.device)
        self.teacher = None
        if teacher is not None:
            name, width, state = teacher
            self.teacher = tmodels.create_model(name, self.num_classes, width=width, in_channels=dataset.image_shape[2])
            self.teacher.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in state.items()})
            self.teacher.to(self.device).eval().requires_grad_(False)
        self.optimizer = build_optimizer(config, self.model.parameters())
        self.generator = torch.Generator(self.device).manual_seed(config.seed)
        self.step = 0
        self._check_tricks()
        self.compiled = config.uses_compile(self.device.type)
        self._loss = torch.compile(self.loss_fn) if self.compiled else self.loss_fn
        self._eval = torch.compile(self._eval_logits) if self.compiled else self._eval_logits
        self.eval_batch_size = min(config.eval_batch_size, self.data.test_images.shape[0])

    # ------------------------------------------------------------------ tricks

    def _check_tricks(self) -> None:
        """Resolve every requested trick now, so a missing one fails before training starts."""
        teacher = self.teacher is not None
        self._fn: dict[str, Any] = {n: _trick(m, n, flag) for m, n, flag in required_tricks(self.config, teacher=teacher)}

    def sample_aug(self, batch_size: int | None = None) -> dict:
        """Draw one step's trick parameters from the run's generator (a dict of NamedTuples)."""
        c, f, g, dev = self.config, self._fn, self.generator, self.device
        n = batch_size or c.batch_size
        aug: dict = {}
        if c.crop_flip:
            aug["crop"] = f["sample_resized_crop_params"](n, self.image_size, scale=c.crop_scale, generator=g, device=dev)
            aug["flip"] = f["sample_flip_params"](n, generator=g, device=dev)
        if c.autoaugment:
            aug["autoaugment"] = f["sample_autoaugment_params"](n, policy=c.autoaugment, generator=g, device=dev)
        if c.cutout > 0:
            aug["cutout"] = f["sample_cutout_params"](n, self.image_size, n_holes=c.cutout_holes, generator=g, device=dev)
        if c.mixup > 0:
            aug["mixup"] = f["sample_mixup_params"](n, alpha=c.mixup, generator=g, device=dev)
        if c.ricap > 0:
            aug["ricap"] = f["sample_ricap_params"](n, self.image_size, beta=c.ricap, generator=g, device=dev)
        return aug

    def augment(self, images: torch.Tensor, labels: torch.Tensor, aug: dict):
        """uint8 ``[B, C, H, W]`` batch → (normalised float images, targets) with the step's tricks.

        Targets are the integer labels, or ``[B, K]`` soft targets when mixup/RICAP is on (label
        smoothing is folded into them first so that the two compose).
        """
        c, f = self.config, self._fn
        x = images
        if "crop" in aug:
            x = f["resized_crop"](x, aug["crop"], size=self.image_size, flip=aug["flip"])
        if "autoaugment" in aug:
            x = f["autoaugment"](x, aug["autoaugment"], policy=c.autoaugment)
        x = (x.float() / 255.0 - self.mean) / self.std
        if "cutout" in aug:
            x = f["cutout"](x, aug["cutout"], length=c.cutout)
        targets = labels
        if "mixup" in aug or "ricap" in aug:
            if c.label_smoothing > 0:
                targets = f["smooth_labels"](labels, self.num_classes, c.label_smoothing)
                k = None
            else:
                k = self.num_classes
            if "mixup" in aug:
                x, targets = f["mixup"](x, targets, aug["mixup"], num_classes=k)
            else:
                x, targets = f["ricap"](x, targets, aug["ricap"], num_classes=k)
        return x, targets

    def criterion(self, logits, targets, teacher_logits=None):
        """Cross-entropy (plain, label-smoothed, or against soft targets) plus distillation."""
        c, f = self.config, self._fn
        logits = logits.float()
        if targets.ndim == 2:
            ce = f["soft_target_cross_entropy"](logits, targets)
        elif c.label_smoothing > 0:
            ce = f["label_smoothing_cross_entropy"](logits, targets, smoothing=c.label_smoothing)
        else:
            ce = F.cross_entropy(logits, targets)
        if teacher_logits is None:
            return ce
        kd = f["distillation_loss"](logits, teacher_logits.float(), temperature=c.kd_temperature)
        return c.kd_alpha * kd + (1.0 - c.kd_alpha) * ce

    def _forward(self, model, x):
        if self.config.precision == "bfloat16":
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                return model(x).float()
        return model(x)

    def loss_fn(self, images: torch.Tensor, labels: torch.Tensor, aug: dict):
        """Augment, forward and loss of one batch (the compiled region). Returns ``(loss, logits)``."""
        x, targets = self.augment(images, labels, aug)
        logits = self._forward(self.model, x)
        teacher_logits = None
        if self.teacher is not None:
            with torch.no_grad():
                teacher_logits = self._forward(self.teacher, x)
        return self.criterion(logits, targets, teacher_logits), logits

    # ------------------------------------------------------------------ steps

    def lr_at(self, step: int) -> float:
        return lr_at(self.config, step, self.steps_per_epoch)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor, aug: dict | None = None):
        """One optimizer step on a uint8 batch; ``aug`` defaults to :meth:`sample_aug`. Returns
        ``(loss, number of correct predictions)`` as 0-d tensors (no device sync)."""
        if aug is None:
            aug = self.sample_aug(images.shape[0])
        lr = self.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss, logits = self._loss(images, labels, aug)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return loss.detach(), (logits.detach().argmax(1) == labels).sum()

    def train_epoch(self, epoch: int) -> dict:
        """One epoch of :meth:`train_step` over a fresh permutation (the last short batch dropped)."""
        c = self.config
        perm = tdata.epoch_permutation(self.data.num_train, generator=self.generator)
        steps = range(self.steps_per_epoch)
        bar = None
        if c.progress:
            from tqdm import tqdm

            bar = tqdm(steps, desc=f"epoch {epoch + 1}/{c.epochs}", leave=False, unit="step", dynamic_ncols=True)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        t0 = time.perf_counter()
        compile_s, images_timed, t_timed = 0.0, 0, t0
        for i in steps:
            idx = tdata.batch_indices(perm, i, c.batch_size)
            first = self.compiled and self.step == 0
            loss, corr = self.train_step(self.data.train_images[idx], self.data.train_labels[idx])
            loss_sum += loss
            correct += corr
            if first:
                loss.item()
                compile_s = time.perf_counter() - t0
                t_timed = time.perf_counter()
            else:
                images_timed += c.batch_size
            if bar is not None:
                bar.update(1)
                if i % 10 == 0:
                    bar.set_postfix(loss=f"{loss.item():.3f}")
        n = self.steps_per_epoch * c.batch_size
        loss_v, acc = float(loss_sum) / self.steps_per_epoch, int(correct) / n
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - t_timed
        if bar is not None:
            bar.close()
        return {
            "loss": loss_v, "acc": acc, "lr": self.lr_at(self.step - 1), "images": images_timed,
            "seconds": seconds, "compile_s": compile_s,
        }

    def _eval_logits(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float() / 255.0 - self.mean) / self.std
        return self._forward(self.model, x).float()

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Test loss and accuracy in eval mode (BatchNorm running statistics), every image once."""
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        for x, y, valid in tdata.eval_batches(self.data.test_images, self.data.test_labels, self.eval_batch_size):
            logits = self._eval(x)
            loss_sum += (F.cross_entropy(logits, y, reduction="none") * valid).sum()
            correct += ((logits.argmax(1) == y) & valid).sum()
        n = self.data.test_images.shape[0]
        return {"loss": float(loss_sum) / n, "acc": float(correct) / n}

    # ------------------------------------------------------------------ state

    def get_state(self) -> dict:
        """Weights, optimizer, generator and step as NumPy/plain values (a checkpoint payload)."""
        return {
            "model_name": self.config.model,
            "width": self.config.width,
            "num_classes": self.num_classes,
            "model": _to_numpy_tree(self.model.state_dict()),
            "optimizer": _to_numpy_tree(self.optimizer.state_dict()),
            "rng": self.generator.get_state().numpy().copy(),
            "step": self.step,
        }

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`'s payload (shapes are checked by ``load_state_dict``)."""
        try:
            self.model.load_state_dict(_to_torch_tree(state["model"], self.device))
            self.optimizer.load_state_dict(_to_torch_tree(state["optimizer"], "cpu"))
        except (RuntimeError, KeyError, ValueError) as exc:
            from twintricks.checkpoint import CheckpointError

            raise CheckpointError(f"checkpoint does not fit this model/optimizer: {exc}") from None
        self.generator.set_state(torch.from_numpy(np.asarray(state["rng"]).copy()))
        self.step = int(state["step"])


def train(config: TrainConfig, dataset, *, out=None, device=None, teacher=None, log=print) -> dict:
    """Build a :class:`Trainer` and run :func:`twintricks.recipe.fit`; returns the summary."""
    trainer = Trainer(config, dataset, device=device, teacher=teacher)
    return fit(trainer, config, out=out, log=log)
