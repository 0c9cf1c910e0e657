"""The training recipe in JAX: one jitted step holding sampling, augmentation, forward, loss,
backward and the optax update, with the training state donated.

:class:`Trainer` keeps the data on the device (:mod:`jax_impl.data`), a flax linen model
(:mod:`jax_impl.models`) and a state pytree ``{"params", "batch_stats", "opt_state", "key",
"step"}``. The jitted epoch step (``donate_argnums`` on the state) cuts batch ``i`` of the
epoch's permutation out of the device-resident uint8 data, splits the state's key, draws the
step's trick parameters (:meth:`Trainer.sample_aug`) and runs :meth:`Trainer.apply_step`: random
resized crop + flip and AutoAugment on uint8, ``x/255`` normalised by the channel mean/std,
Cutout (fill 0 = the mean), label smoothing, mixup or RICAP (soft targets), the forward pass
(``bfloat16`` compute optional), cross-entropy (plus Hinton distillation against a frozen
teacher's logits on the same images), the gradient, and the optax update: SGD with Nesterov
momentum and coupled weight decay (``add_decayed_weights`` then ``sgd``, which is
``torch.optim.SGD``'s order), ``optax.adamw``, or :func:`jax_impl.optim.adabound` / ``amsbound``
/ ``adaboundw``; the learning rate is read from the same per-step table as torch's
(:func:`twintricks.recipe.lr_table`).

The sampling and the deterministic part are separate functions, so the step-parity tests feed
one trick-parameter record to both frameworks through :meth:`Trainer.train_step`.

Static shapes: the last short training batch of an epoch is dropped, the last evaluation batch is
padded; the step compiles once (a second compile would show in ``compile_s``).

Determinism: all randomness comes from ``jax.random.key(seed)`` (model initialisation from a
split of it); the state holds the key, so a run resumed from an epoch checkpoint ends
bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import importlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jax_impl import data as jdata
from jax_impl import models as jmodels
from twintricks.datasets import channel_stats
from twintricks.checkpoint import CheckpointError
from twintricks.recipe import TrainConfig, fit, lr_table, required_tricks

__all__ = ["Trainer", "build_optimizer", "train", "TrickUnavailableError"]


class TrickUnavailableError(RuntimeError):
    """A trick was requested whose implementation is not (yet) in :mod:`jax_impl`."""


def _trick(module_name: str, name: str, flag: str):
    mod = importlib.import_module(f"jax_impl.{module_name}")
    fn = getattr(mod, name, None)
    if fn is None:
        raise TrickUnavailableError(f"{flag} needs jax_impl.{module_name}.{name}, which is not available in this version")
    return fn


def build_optimizer(config: TrainConfig, schedule) -> optax.GradientTransformation:
    """The optax transformation named by ``config.optimizer``; ``schedule`` maps the step count to lr."""
    wd = float(config.weight_decay)
    if config.optimizer == "sgd":
        nesterov = config.nesterov and config.momentum > 0
        return optax.chain(
            optax.add_decayed_weights(wd),
            optax.sgd(schedule, momentum=config.momentum or None, nesterov=nesterov),
        )
    if config.optimizer == "adamw":
        return optax.adamw(schedule, weight_decay=wd)
    fn = _trick("optim", config.optimizer, f"--optimizer {config.optimizer}")
    return fn(schedule, final_lr=config.final_lr, gamma=config.adabound_gamma, weight_decay=wd)


class Trainer:
    """One training run's state and step (see the module docstring).

    Args:
        config: the run's :class:`~twintricks.recipe.TrainConfig`.
        dataset: a :class:`twintricks.datasets.ImageDataset`.
        device: a ``jax.Device`` (default: the first one).
        teacher: optional ``(model_name, width, variables)`` of a trained teacher (linen
            variables, e.g. converted from a torch checkpoint by :mod:`parity.convert`).
        mean, std: normalisation per channel on the [0, 1] scale (default: the training set's).
    """

    framework = "jax"

    def __init__(self, config: TrainConfig, dataset, *, device=None, teacher=None, mean=None, std=None):
        self.config = config
        self.device = device or jax.devices()[0]
        self.device_name = f"{self.device.platform}:{getattr(self.device, 'device_kind', '')}"
        self.data = jdata.DeviceData(dataset, self.device)
        self.num_classes = dataset.num_classes
        self.image_size = tuple(dataset.image_shape[:2])
        self.steps_per_epoch = self.data.steps_per_epoch(config.batch_size)
        if mean is None or std is None:
            mean, std = channel_stats(dataset.train_images)
        self.mean = jnp.asarray(mean, jnp.float32)
        self.std = jnp.asarray(std, jnp.float32)
        dtype = jnp.bfloat16 if config.precision == "bfloat16" else jnp.float32
        self.model = jmodels.create_model(config.model, self.num_classes, width=config.width, dtype=dtype)
        self.lrs = np.asarray(lr_table(config, self.steps_per_epoch), np.float32)
        table = jnp.asarray(self.lrs)
        self.schedule = lambda count: table[jnp.minimum(count, table.shape[0] - 1)]
        self.tx = build_optimizer(config, self.schedule)
        self.teacher_model, self.teacher_vars = None, None
        if teacher is not None:
            name, width, variables = teacher
            self.teacher_model = jmodels.create_model(name, self.num_classes, width=width, dtype=dtype)
            self.teacher_vars = jax.tree_util.tree_map(jnp.asarray, variables)
        self._check_tricks()
        key = jax.random.key(config.seed)
        init_key, run_key = jax.random.split(key)
        variables = jmodels.init_model(self.model, init_key, dataset.image_shape)
        self.state = {
            "params": variables["params"],
            "batch_stats": variables["batch_stats"],
            "opt_state": self.tx.init(variables["params"]),
            "key": run_key,
            "step": jnp.zeros((), jnp.int32),
        }
        self.state = jax.device_put(self.state, self.device)
        self.eval_batch_size = min(config.eval_batch_size, self.data.test_images.shape[0])
        self._epoch_step = jax.jit(self._epoch_step_impl, donate_argnums=0)
        self._apply = jax.jit(self.apply_step, donate_argnums=0)
        self._sample = jax.jit(self.sample_aug, static_argnums=1)
        self._eval = jax.jit(self._eval_batch)
        self._perm = jax.jit(jdata.epoch_permutation, static_argnums=1)

    # ------------------------------------------------------------------ tricks

    def _check_tricks(self) -> None:
        """Resolve every requested trick now, so a missing one fails before training starts."""
        teacher = self.teacher_model is not None
        self._fn: dict[str, Any] = {n: _trick(m, n, flag) for m, n, flag in required_tricks(self.config, teacher=teacher)}

    def sample_aug(self, key, batch_size: int | None = None) -> dict:
        """Draw one step's trick parameters from ``key`` (a dict of NamedTuples; jittable)."""
        c, f = self.config, self._fn
        n = batch_size or c.batch_size
        k_crop, k_flip, k_aa, k_cut, k_mix = jax.random.split(key, 5)
        aug: dict = {}
        if c.crop_flip:
            aug["crop"] = f["sample_resized_crop_params"](k_crop, n, self.image_size, scale=c.crop_scale)
            aug["flip"] = f["sample_flip_params"](k_flip, n)
        if c.autoaugment:
            aug["autoaugment"] = f["sample_autoaugment_params"](k_aa, n, policy=c.autoaugment)
        if c.cutout > 0:
            aug["cutout"] = f["sample_cutout_params"](k_cut, n, self.image_size, n_holes=c.cutout_holes)
        if c.mixup > 0:
            aug["mixup"] = f["sample_mixup_params"](k_mix, n, alpha=c.mixup)
        if c.ricap > 0:
            aug["ricap"] = f["sample_ricap_params"](k_mix, n, self.image_size, beta=c.ricap)
        return aug

    def augment(self, images, labels, aug: dict):
        """uint8 ``[B, H, W, C]`` batch → (normalised float images, targets) with the step's tricks
        (the same order and rules as :meth:`torch_impl.train.Trainer.augment`)."""
        c, f = self.config, self._fn
        x = images
        if "crop" in aug:
            x = f["resized_crop"](x, aug["crop"], size=self.image_size, flip=aug["flip"])
        if "autoaugment" in aug:
            x = f["autoaugment"](x, aug["autoaugment"], policy=c.autoaugment)
        x = (x.astype(jnp.float32) / 255.0 - self.mean) / self.std
        if "cutout" in aug:
            x = f["cutout"](x, aug["cutout"], length=c.cutout)
        targets = labels
        if "mixup" in aug or "ricap" in aug:
            if c.label_smoothing > 0:
                targets, k = f["smooth_labels"](labels, self.num_classes, c.label_smoothing), None
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
        logits = logits.astype(jnp.float32)
        if targets.ndim == 2:
            ce = f["soft_target_cross_entropy"](logits, targets)
        elif c.label_smoothing > 0:
            ce = f["label_smoothing_cross_entropy"](logits, targets, smoothing=c.label_smoothing)
        else:
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()
        if teacher_logits is None:
            return ce
        kd = f["distillation_loss"](logits, teacher_logits.astype(jnp.float32), temperature=c.kd_temperature)
        return c.kd_alpha * kd + (1.0 - c.kd_alpha) * ce

    # ------------------------------------------------------------------ steps

    def apply_step(self, state: dict, teacher_vars, images, labels, aug: dict):
        """The deterministic step: augment, forward, loss, gradient, optax update.

        Returns ``(new_state, (loss, number of correct predictions))``; ``state["key"]`` is not used.
        """

        def loss_fn(params):
            x, targets = self.augment(images, labels, aug)
            logits, upd = self.model.apply(
                {"params": params, "batch_stats": state["batch_stats"]}, x, train=True, mutable=["batch_stats"]
            )
            t_logits = None
            if self.teacher_model is not None:
                t_logits = jax.lax.stop_gradient(self.teacher_model.apply(teacher_vars, x, train=False))
            return self.criterion(logits, targets, t_logits), (logits, upd["batch_stats"])

        (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        updates, opt_state = self.tx.update(grads, state["opt_state"], state["params"])
        new_state = {
            "params": optax.apply_updates(state["params"], updates),
            "batch_stats": batch_stats,
            "opt_state": opt_state,
            "key": state["key"],
            "step": state["step"] + 1,
        }
        correct = jnp.sum(jnp.argmax(logits, axis=1) == labels)
        return new_state, (loss, correct)

    def _epoch_step_impl(self, state, teacher_vars, images_all, labels_all, perm, i):
        idx = jdata.batch_indices(perm, i, self.config.batch_size)
        key, sub = jax.random.split(state["key"])
        aug = self.sample_aug(sub, self.config.batch_size)
        return self.apply_step({**state, "key": key}, teacher_vars, images_all[idx], labels_all[idx], aug)

    def train_step(self, images, labels, aug: dict | None = None):
        """One step on a given uint8 batch (``aug`` defaults to a fresh draw from the state's key);
        updates ``self.state`` and returns ``(loss, correct)``. Used by the step-parity tests."""
        if aug is None:
            key, sub = jax.random.split(self.state["key"])
            self.state = {**self.state, "key": key}
            aug = self._sample(sub, images.shape[0])
        self.state, (loss, correct) = self._apply(self.state, self.teacher_vars, jnp.asarray(images), jnp.asarray(labels), aug)
        return loss, correct

    @property
    def step(self) -> int:
        return int(self.state["step"])

    def train_epoch(self, epoch: int) -> dict:
        """One epoch of jitted steps over a fresh permutation (the last short batch dropped)."""
        c = self.config
        key, pkey = jax.random.split(self.state["key"])
        self.state = {**self.state, "key": key}
        perm = self._perm(pkey, self.data.num_train)
        bar = None
        if c.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {epoch + 1}/{c.epochs}", leave=False, unit="step", dynamic_ncols=True)
        losses, corrects = [], []
        t0 = time.perf_counter()
        compile_s, images_timed, t_timed = 0.0, 0, t0
        for i in range(self.steps_per_epoch):
            first = self.step == 0 if i == 0 else False
            self.state, (loss, corr) = self._epoch_step(
                self.state, self.teacher_vars, self.data.train_images, self.data.train_labels, perm, jnp.int32(i)
            )
            losses.append(loss)
            corrects.append(corr)
            if first:
                loss.block_until_ready()
                compile_s = time.perf_counter() - t0
                t_timed = time.perf_counter()
            else:
                images_timed += c.batch_size
            if bar is not None:
                bar.update(1)
                if i % 10 == 0:
                    bar.set_postfix(loss=f"{float(loss):.3f}")
        loss_v = float(jnp.mean(jnp.stack(losses)))
        acc = int(jnp.sum(jnp.stack(corrects))) / (self.steps_per_epoch * c.batch_size)
        seconds = time.perf_counter() - t_timed
        if bar is not None:
            bar.close()
        return {
            "loss": loss_v, "acc": acc, "lr": float(self.lrs[min(self.step - 1, len(self.lrs) - 1)]),
            "images": images_timed, "seconds": seconds, "compile_s": compile_s,
        }

    def _eval_batch(self, variables, images, labels, valid):
        x = (images.astype(jnp.float32) / 255.0 - self.mean) / self.std
        logits = self.model.apply(variables, x, train=False).astype(jnp.float32)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        return jnp.sum(loss * valid), jnp.sum((jnp.argmax(logits, 1) == labels) & valid)

    def evaluate(self) -> dict:
        """Test loss and accuracy in eval mode (BatchNorm running statistics), every image once."""
        variables = {"params": self.state["params"], "batch_stats": self.state["batch_stats"]}
        loss_sum, correct = 0.0, 0
        for x, y, valid in jdata.eval_batches(self.data.test_images, self.data.test_labels, self.eval_batch_size):
            ls, cs = self._eval(variables, x, y, valid)
            loss_sum, correct = loss_sum + float(ls), correct + int(cs)
        n = self.data.test_images.shape[0]
        return {"loss": loss_sum / n, "acc": correct / n}

    @property
    def variables(self) -> dict:
        """The model's linen variables ``{"params", "batch_stats"}``."""
        return {"params": self.state["params"], "batch_stats": self.state["batch_stats"]}

    # ------------------------------------------------------------------ state

    def get_state(self) -> dict:
        """Weights, optimizer state, key and step as NumPy (a checkpoint payload)."""
        host = jax.device_get
        return {
            "model_name": self.config.model,
            "width": self.config.width,
            "num_classes": self.num_classes,
            "model": host(self.variables),
            "optimizer": [np.asarray(a) for a in jax.tree_util.tree_leaves(host(self.state["opt_state"]))],
            "rng": np.asarray(jax.random.key_data(self.state["key"])),
            "step": int(self.state["step"]),
        }

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`'s payload into this run's structure (shapes checked)."""

        def restore(template, saved, what):
            t_leaves, treedef = jax.tree_util.tree_flatten(template)
            s_leaves = jax.tree_util.tree_leaves(saved) if not isinstance(saved, list) else saved
            if len(t_leaves) != len(s_leaves):
                raise CheckpointError(f"checkpoint {what} has {len(s_leaves)} arrays, this run expects {len(t_leaves)}")
            for i, (t, s) in enumerate(zip(t_leaves, s_leaves)):
                if tuple(np.shape(t)) != tuple(np.shape(s)):
                    raise CheckpointError(
                        f"checkpoint {what} array {i} has shape {np.shape(s)}, this run expects {np.shape(t)}"
                    )
            return jax.tree_util.tree_unflatten(
                treedef, [jnp.asarray(s, dtype=jnp.asarray(t).dtype) for t, s in zip(t_leaves, s_leaves)]
            )

        try:
            params = restore(self.state["params"], state["model"]["params"], "params")
            stats = restore(self.state["batch_stats"], state["model"]["batch_stats"], "batch_stats")
        except (KeyError, TypeError) as exc:
            raise CheckpointError(f"checkpoint has no usable model weights: {exc}") from None
        if jax.tree_util.tree_structure(params) != jax.tree_util.tree_structure(state["model"]["params"]):
            raise CheckpointError("checkpoint params have different layer names than this model")
        opt_state = restore(self.state["opt_state"], list(state["optimizer"]), "optimizer state")
        self.state = jax.device_put(
            {
                "params": params,
                "batch_stats": stats,
                "opt_state": opt_state,
                "key": jax.random.wrap_key_data(jnp.asarray(state["rng"], jnp.uint32)),
                "step": jnp.asarray(int(state["step"]), jnp.int32),
            },
            self.device,
        )


def train(config: TrainConfig, dataset, *, out=None, device=None, teacher=None, log=print) -> dict:
    """Build a :class:`Trainer` and run :func:`twintricks.recipe.fit`; returns the summary."""
    trainer = Trainer(config, dataset, device=device, teacher=teacher)
    return fit(trainer, config, out=out, log=log)
