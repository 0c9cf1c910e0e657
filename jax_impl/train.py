"""The training recipe in JAX: one jitted step holding sampling, augmentation, forward, loss,
backward and the optax update, with the training state donated.

:class:`Trainer` keeps the data on the device or streams it (:mod:`jax_impl.data`), a flax linen model
(:mod:`jax_impl.models`) and a state pytree ``{"params", "batch_stats", "opt_state", "key",
"step"}``. The jitted epoch step (``donate_argnums`` on the state) cuts batch ``i`` of the
epoch's permutation out of the device-resident uint8 data, splits the state's key into the next
key and the step's key, draws the step's trick parameters (:meth:`Trainer.sample_aug`: each
enabled trick of :data:`twintricks.tricks.TRICKS` from the step's key folded with the trick's
stream id, with its sampler from :data:`TRICK_IMPLS`) and runs :meth:`Trainer.apply_step`: the
enabled tricks' kernels in the recipe's order (:meth:`Trainer.augment`: crop + flip and
AutoAugment on uint8, ``x/255`` normalised by the channel mean/std, Cutout with fill 0 = the
mean, random erasing (timm's fills, in normalised units), label smoothing, mixup, RICAP or CutMix /
timm-style mixup-CutMix switching), the forward pass (``bfloat16`` compute optional),
cross-entropy (plus Hinton distillation against a frozen teacher's logits on the same images),
the gradient, and the optax update: SGD with Nesterov momentum and coupled weight decay
(``add_decayed_weights`` then ``sgd``, which is ``torch.optim.SGD``'s order), ``optax.adamw``, or
:func:`jax_impl.optim.adabound` / ``amsbound`` / ``adaboundw``; the learning rate is read from
the same per-step table as torch's (:func:`twintricks.recipe.lr_table`).

The sampling and the deterministic part are separate functions, so the step-parity tests feed
one trick-parameter record to both frameworks through :meth:`Trainer.train_step`.

Static shapes: the last short training batch of an epoch is dropped, the last evaluation batch is
padded; the step compiles once (a second compile would show in ``compile_s``).

Scale-out: the step runs on a mesh of ``config.devices`` devices (default all of the platform's,
across the processes of a ``jax.distributed`` job) with the batch and every trick's output split
along its ``"data"`` axis and the state replicated (:mod:`jax_impl.distributed`); the draws are
those of one device, so the run is the same at any device count up to the order of float sums.

Determinism: all randomness comes from ``jax.random.key(seed)`` (model initialisation from a
split of it); the state holds the key, so a run resumed from an epoch checkpoint ends
bit-identical to an uninterrupted one. Each trick's draws depend only on the step's key and the
trick's fixed stream id, so enabling one trick never changes another's.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jax_impl import data as jdata
from jax_impl import distributed as jd
from jax_impl import models as jmodels
from jax_impl.losses import distillation_loss, label_smoothing_cross_entropy, soft_target_cross_entropy
from jax_impl.optim import adabound, adaboundw, amsbound
from twintricks.checkpoint import CheckpointError
from twintricks.datasets import channel_stats
from twintricks.threads import xla_threads_requested
from twintricks.streaming import IMAGENET_MEAN, IMAGENET_STD, StreamedDataset, describe, resume_state
from twintricks.recipe import TrainConfig, device_tricks, fit, lr_table, progress_bar
from twintricks.tricks import STAGES, TrickImpl, collect_impls

__all__ = ["Trainer", "TrickImpl", "TRICK_IMPLS", "build_optimizer", "resolve_device", "train"]


#: trick id → this backend's :class:`~twintricks.tricks.TrickImpl` (sampler and kernel), collected from
#: ``TRICK_IMPLS`` of the module beside each trick's kernels (:attr:`twintricks.tricks.Trick.module`).
TRICK_IMPLS: dict[str, TrickImpl] = collect_impls("jax_impl")

_ADABOUND = {"adabound": adabound, "amsbound": amsbound, "adaboundw": adaboundw}


_PLATFORMS = {"cpu": "cpu", "gpu": "gpu", "cuda": "gpu", "rocm": "gpu", "tpu": "tpu"}


def resolve_device(name=None):
    """The ``jax.Device`` named ``name``: ``"cpu"``, ``"gpu"`` (or ``"cuda"``/``"rocm"``),
    ``"tpu"``, optionally with ``":N"`` (the N-th of that platform); a ``jax.Device`` is returned
    as it is; ``None``: jax's first device.

    Raises ``ValueError`` naming ``device`` for another name, or a platform or index this machine
    does not have.
    """
    if name is None:
        return jax.devices()[0]
    if not isinstance(name, str):
        return name
    kind, _, index = name.partition(":")
    platform = _PLATFORMS.get(kind.lower())
    if platform is None or (index and not index.isdigit()):
        raise ValueError(f"`device` must be 'cpu', 'gpu' (or 'cuda'), 'tpu', optionally with ':N', got {name!r}")
    try:
        devices = jax.devices(platform)
    except RuntimeError:
        have = sorted({d.platform for d in jax.devices()})
        raise ValueError(f"`device` {name!r}: jax has no {platform} device on this machine (it has {have})") from None
    i = int(index or 0)
    if i >= len(devices):
        raise ValueError(f"`device` {name!r}: jax sees {len(devices)} {platform} device(s)")
    return devices[i]


def _xla_threads() -> int | None:
    """The thread count ``XLA_FLAGS`` asks of XLA:CPU: 1, or None (XLA's default, one per core)."""
    return xla_threads_requested(os.environ.get("XLA_FLAGS", ""))


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
    return _ADABOUND[config.optimizer](schedule, final_lr=config.final_lr, gamma=config.adabound_gamma, weight_decay=wd)


class Trainer:
    """One training run's state and step (see the module docstring).

    Args:
        config: the run's :class:`~twintricks.recipe.TrainConfig`.
        dataset: a :class:`twintricks.datasets.ImageDataset` (held on the device) or a
            :class:`twintricks.streaming.StreamedDataset` (streamed: a thread one batch ahead
            places each global batch on the mesh; each process of a ``jax.distributed`` job reads
            only its rows, and a step takes the batch instead of cutting it from the data set).
        device: a ``jax.Device`` or a name (:func:`resolve_device`); default ``config.device``. A
            device with an index (``"gpu:1"``) or a ``jax.Device`` trains on that device alone;
            otherwise the batch is split over ``config.devices`` devices of the platform (default:
            all of them, across every process of a ``jax.distributed`` job; see
            :mod:`jax_impl.distributed`).
        teacher: optional ``(model_name, width, variables)`` of a trained teacher (linen
            variables, e.g. from any teacher file by :func:`jax_impl.teacher.load_teacher`).
        mean, std: normalisation per channel on the [0, 1] scale (default: the training set's;
            ImageNet's for a streamed data set).
    """

    framework = "jax"

    def __init__(self, config: TrainConfig, dataset, *, device=None, teacher=None, mean=None, std=None):
        self.config = config
        name = device if device is not None else config.device
        self.device = resolve_device(name)
        if isinstance(name, str) and ":" in name or name is not None and not isinstance(name, str):
            if config.devices not in (None, 1):
                raise ValueError(f"`devices` {config.devices}: `device` {name!r} names a single device")
            self.mesh = jd.make_mesh([self.device])
        else:
            self.mesh = jd.make_mesh(config.devices, platform=self.device.platform)
            self.device = self.mesh.devices.flat[0] if self.device not in self.mesh.devices.flat else self.device
        self.world = jd.world(self.mesh, config.batch_size)  # checks that the batch splits evenly
        self.is_main = jd.is_main()
        # one device: everything on it; several: replicated over the mesh, batches split along "data"
        self._place = self.device if self.mesh.size == 1 else jd.replicated(self.mesh)
        self.threads = _xla_threads()
        self.device_name = f"{self.device.platform}:{getattr(self.device, 'device_kind', '')}"
        w = self.mesh.size  # evaluation batches split evenly too (the padding is masked out)
        self.streams = isinstance(dataset, StreamedDataset)
        if self.streams:  # read image by image, this process's rows of each global batch
            self.eval_batch_size = -(-min(config.eval_batch_size, len(dataset.test)) // w) * w
            where = self.device if self.mesh.size == 1 else jd.batch_sharding(self.mesh)
            self.data = jdata.StreamData(dataset, config, where, eval_batch_size=self.eval_batch_size)
            self.data_record = describe(dataset)
        else:
            self.data = jdata.DeviceData(dataset, self._place)
            self.eval_batch_size = -(-min(config.eval_batch_size, self.data.test_images.shape[0]) // w) * w
            self.data_record = None
        self.num_classes = dataset.num_classes
        self.image_size = tuple(dataset.image_shape[:2])
        self.channels = dataset.image_shape[2]
        self.steps_per_epoch = self.data.steps_per_epoch(config.batch_size)
        if mean is None or std is None:
            mean, std = (IMAGENET_MEAN, IMAGENET_STD) if self.streams else channel_stats(dataset.train_images)
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
            self.teacher_vars = self._put(jax.tree_util.tree_map(np.asarray, variables))
        self.tricks = device_tricks(config)
        self.soft_targets = config.soft_targets()
        self._sampled = [t for t in self.tricks if TRICK_IMPLS[t.name].sample is not None]
        normalise = STAGES.index("normalise")
        self._uint8_stage = [(t.name, TRICK_IMPLS[t.name].apply) for t in self.tricks
                             if TRICK_IMPLS[t.name].apply and STAGES.index(t.stage) < normalise]
        self._float_stage = [(t.name, TRICK_IMPLS[t.name].apply) for t in self.tricks
                             if TRICK_IMPLS[t.name].apply and STAGES.index(t.stage) > normalise]
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
        self.state = self._put(self.state)
        out = {} if self.mesh.size == 1 else {"out_shardings": jd.replicated(self.mesh)}
        self._epoch_step = jax.jit(self._epoch_step_impl, donate_argnums=0, **out)
        self._stream_step = jax.jit(self._step_impl, donate_argnums=0, **out)
        self._eval_stream = jax.jit(self._eval_sums, **out)
        self._apply = jax.jit(self.apply_step, donate_argnums=0, **out)
        self._sample = jax.jit(self.sample_aug, static_argnums=1)
        self._eval = jax.jit(self._eval_batch, **out)
        self._perm = jax.jit(jdata.epoch_permutation, static_argnums=1)
        # where the run stands in its epoch (set_state restores it; train_epoch continues from it)
        self._in_epoch = 0  # steps done in the epoch in progress
        self._perm_key = None  # that epoch's permutation key
        self._sums = None  # that epoch's (loss sum, correct count) so far, on the device
        self._carried = None  # the sums a mid-epoch checkpoint brought
        self._epoch = 0  # the epoch in progress
        self._data_state = None  # streamed: the loader's state after the last batch trained on
        self._resume_data = None  # streamed: the loader state a mid-epoch checkpoint brought

    # ------------------------------------------------------------------ tricks

    def sample_aug(self, key, batch_size: int | None = None) -> dict:
        """Draw one step's trick parameters from the step's ``key``: ``{trick name: params}`` for
        every enabled trick that draws, each from ``jax.random.fold_in(key, trick.stream)``
        (jittable)."""
        n = batch_size or self.config.batch_size
        return {t.name: TRICK_IMPLS[t.name].sample(jax.random.fold_in(key, t.stream), n, self) for t in self._sampled}

    def augment(self, images, labels, aug: dict):
        """uint8 ``[B, H, W, C]`` batch → (normalised float images, targets): the enabled tricks'
        kernels in the recipe's order (as :meth:`torch_impl.train.Trainer.augment`)."""
        x, targets = images, labels
        for name, apply in self._uint8_stage:
            x, targets = self._split(apply(x, targets, aug.get(name), self))
        x = (x.astype(jnp.float32) / 255.0 - self.mean) / self.std
        for name, apply in self._float_stage:
            x, targets = self._split(apply(x, targets, aug.get(name), self))
        return x, targets

    def _put(self, tree):
        """``tree`` on the run's device, or replicated over its mesh."""
        return jax.device_put(tree, self.device) if self.mesh.size == 1 else jd.replicate(tree, self.mesh)

    def _split(self, tree):
        """Inside the step: ``tree``'s batch arrays split along the mesh's ``"data"`` axis (each
        trick's output too, so that the next one runs on each device's rows; a no-op on one
        device)."""
        return tree if self.mesh.size == 1 else jd.constrain_batch(tree, self.mesh)

    def criterion(self, logits, targets, teacher_logits=None):
        """Cross-entropy (plain, label-smoothed, or against soft targets) plus distillation."""
        c = self.config
        logits = logits.astype(jnp.float32)
        if targets.ndim == 2:
            ce = soft_target_cross_entropy(logits, targets)
        elif c.label_smoothing > 0:
            ce = label_smoothing_cross_entropy(logits, targets, smoothing=c.label_smoothing)
        else:
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()
        if teacher_logits is None:
            return ce
        kd = distillation_loss(logits, teacher_logits.astype(jnp.float32), temperature=c.kd_temperature)
        return c.kd_alpha * kd + (1.0 - c.kd_alpha) * ce

    # ------------------------------------------------------------------ steps

    def apply_step(self, state: dict, teacher_vars, images, labels, aug: dict):
        """The deterministic step: augment, forward, loss, gradient, optax update.

        Returns ``(new_state, (loss, number of correct predictions))``; ``state["key"]`` is not used.
        """
        images, labels = self._split((images, labels))

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

    def _step_impl(self, state, teacher_vars, images, labels):
        """A step on a global batch: the step's key split from the state's, the tricks drawn from
        it, then :meth:`apply_step`."""
        key, sub = jax.random.split(state["key"])
        aug = self.sample_aug(sub, self.config.batch_size)
        return self.apply_step({**state, "key": key}, teacher_vars, images, labels, aug)

    def _epoch_step_impl(self, state, teacher_vars, images_all, labels_all, perm, i):
        idx = jdata.batch_indices(perm, i, self.config.batch_size)
        return self._step_impl(state, teacher_vars, images_all[idx], labels_all[idx])

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

    def train_epoch(self, epoch: int, *, on_step=None) -> dict:
        """One epoch of jitted steps over a fresh permutation (the last short batch dropped), or
        the rest of it when :meth:`set_state` restored a mid-epoch checkpoint (the same permutation,
        from its saved key). ``on_step(done)`` is called after each step (:func:`twintricks.recipe.fit`
        saves there)."""
        c = self.config
        start, self._epoch = self._in_epoch, epoch
        bar = progress_bar(c, epoch, self.steps_per_epoch, initial=start, show=self.is_main)
        loss_sum, correct = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32)
        if self._carried is not None:  # the sums before the checkpoint
            loss_sum, correct = loss_sum + self._carried["loss_sum"], correct + self._carried["correct"]
        self._carried = None
        t0 = time.perf_counter()
        compile_s, images_timed, t_timed = 0.0, 0, t0
        step = self._stream_step if self.streams else self._epoch_step
        for i, args in enumerate(self._epoch_batches(start), start=start):
            first = i == start and step._cache_size() == 0  # this call compiles the step
            self.state, (loss, corr) = step(self.state, self.teacher_vars, *args)
            loss_sum, correct = loss_sum + loss, correct + corr
            if first:
                loss.block_until_ready()
                compile_s = time.perf_counter() - t0
                t_timed = time.perf_counter()
            else:
                images_timed += c.batch_size
            self._in_epoch, self._sums = i + 1, (loss_sum, correct)
            if bar is not None:
                bar.update(1)
                if i % 10 == 0:
                    bar.set_postfix(loss=f"{float(loss):.3f}")
            if on_step is not None:
                on_step(i + 1)
        if self._in_epoch != self.steps_per_epoch:
            raise RuntimeError(f"the data of epoch {epoch + 1} ended after {self._in_epoch} of {self.steps_per_epoch} steps")
        self._in_epoch, self._sums, self._data_state = 0, None, None
        loss_v = float(loss_sum) / self.steps_per_epoch
        acc = int(correct) / (self.steps_per_epoch * c.batch_size)
        seconds = time.perf_counter() - t_timed
        if bar is not None:
            bar.close()
        return {
            "loss": loss_v, "acc": acc, "lr": float(self.lrs[min(self.step - 1, len(self.lrs) - 1)]),
            "images": images_timed, "seconds": seconds, "compile_s": compile_s,
        }

    def _epoch_batches(self, start: int):
        """The step function's batch arguments for steps ``start, start + 1, ...`` of the epoch in
        progress: the data set, the epoch's permutation and the step (in memory: the gather runs
        inside the step), or a streamed global batch (from the loader state a mid-epoch checkpoint
        brought, when resuming); records where the data stands."""
        if not self.streams:
            if start == 0:
                key, self._perm_key = jax.random.split(self.state["key"])
                self.state = {**self.state, "key": key}
            perm = self._perm(self._perm_key, self.data.num_train)
            for i in range(start, self.steps_per_epoch):
                yield self.data.train_images, self.data.train_labels, perm, jnp.int32(i)
            return
        state, self._resume_data = self._resume_data, None
        for (images, labels, _), self._data_state in self.data.train_batches(self._epoch, state):
            yield images, labels

    def _eval_sums(self, variables, images, labels, valid):
        images, labels, valid = self._split((images, labels, valid))
        x = (images.astype(jnp.float32) / 255.0 - self.mean) / self.std
        logits = self.model.apply(variables, x, train=False).astype(jnp.float32)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        return jnp.sum(loss * valid), jnp.sum((jnp.argmax(logits, 1) == labels) & valid), jnp.sum(valid)

    def _eval_batch(self, variables, images_all, labels_all, start):
        # the batch of eval_batch_size images from start, the last one padded with image 0 (masked)
        idx = start + jnp.arange(self.eval_batch_size, dtype=jnp.int32)
        valid = idx < images_all.shape[0]
        idx = jnp.where(valid, idx, 0)
        return self._eval_sums(variables, images_all[idx], labels_all[idx], valid)

    def evaluate(self) -> dict:
        """Test loss and accuracy in eval mode (BatchNorm running statistics), every image once (a
        streamed image skipped as bad, ``on_bad_image="skip"``, is left out of both)."""
        variables = {"params": self.state["params"], "batch_stats": self.state["batch_stats"]}
        loss_sum, correct, count = 0.0, 0, 0
        if self.streams:
            for images, labels, valid in self.data.eval_batches():
                ls, cs, n = self._eval_stream(variables, images, labels, valid)
                loss_sum, correct, count = loss_sum + float(ls), correct + int(cs), count + int(n)
        else:
            for start in range(0, self.data.test_images.shape[0], self.eval_batch_size):
                ls, cs, n = self._eval(variables, self.data.test_images, self.data.test_labels, np.int32(start))
                loss_sum, correct, count = loss_sum + float(ls), correct + int(cs), count + int(n)
        count = max(count, 1)
        return {"loss": loss_sum / count, "acc": correct / count}

    def close(self) -> None:
        """Stop a streamed data set's loader workers (:func:`twintricks.recipe.fit` does at its end;
        a later epoch starts new ones)."""
        if self.streams:
            self.data.close()

    def skipped_files(self) -> list:
        """The bad files left out (``on_bad_image="skip"``) by every process so far, at index time
        and while reading: ``[[file, reason], ...]``, sorted."""
        if not self.streams:
            return []
        found = {tuple(x) for part in jdata.gather_json([list(k) for k in self.data.skipped]) for x in part}
        found |= {tuple(x) for split in ("train", "test") for x in self.data_record[split]["skipped"]}
        return sorted(map(list, found))

    @property
    def variables(self) -> dict:
        """The model's linen variables ``{"params", "batch_stats"}``."""
        return {"params": self.state["params"], "batch_stats": self.state["batch_stats"]}

    # ------------------------------------------------------------------ state

    def get_state(self) -> dict:
        """Weights, optimizer state, key, step and the place in the epoch as NumPy (a checkpoint
        payload). Mid-epoch (after :meth:`train_epoch`'s ``on_step``): ``step_in_epoch`` > 0,
        ``data`` holds the epoch's permutation key and ``progress`` the epoch's loss sum and
        correct count so far."""
        host = jax.device_get
        progress, data = None, None
        if self._in_epoch:
            loss_sum, correct = host(self._sums)
            progress = {"loss_sum": float(loss_sum), "correct": int(correct)}
            data = ({"iterator": self._data_state} if self.streams
                    else {"perm_key": np.asarray(jax.random.key_data(self._perm_key))})
        return {
            "model_name": self.config.model,
            "width": self.config.width,
            "num_classes": self.num_classes,
            "model": host(self.variables),
            "optimizer": [np.asarray(a) for a in jax.tree_util.tree_leaves(host(self.state["opt_state"]))],
            "rng": np.asarray(jax.random.key_data(self.state["key"])),
            "step": int(self.state["step"]),
            "step_in_epoch": self._in_epoch,
            "progress": progress,
            "data": data,
        }

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`'s payload into this run's structure (shapes checked; the run
        state's values by :func:`twintricks.schema.check_run_state` before). The next
        :meth:`train_epoch` continues a mid-epoch checkpoint's epoch at its next step."""

        def restore(template, saved, what):
            t_leaves, treedef = jax.tree_util.tree_flatten(template)
            s_leaves = jax.tree_util.tree_leaves(saved) if not isinstance(saved, list) else saved
            if len(t_leaves) != len(s_leaves):
                raise CheckpointError(f"checkpoint {what} has {len(s_leaves)} arrays, this run expects {len(t_leaves)}")
            for i, (t, s) in enumerate(zip(t_leaves, s_leaves)):
                if not isinstance(s, (np.ndarray, np.generic)) or tuple(np.shape(t)) != tuple(np.shape(s)):
                    raise CheckpointError(
                        f"checkpoint {what} array {i} has shape {np.shape(s)}, this run expects {np.shape(t)}"
                    )
            return jax.tree_util.tree_unflatten(
                treedef, [jnp.asarray(s, dtype=jnp.asarray(t).dtype) for t, s in zip(t_leaves, s_leaves)]
            )

        def key(value, what):
            want = jax.random.key_data(self.state["key"]).shape
            if not isinstance(value, np.ndarray) or value.shape != want or value.dtype.kind not in "ui":
                raise CheckpointError(f"checkpoint {what} must be an integer array of shape {want}, got "
                                      f"{getattr(value, 'dtype', type(value).__name__)} {np.shape(value)}")
            return jax.random.wrap_key_data(jnp.asarray(value, jnp.uint32))

        try:
            params = restore(self.state["params"], state["model"]["params"], "params")
            stats = restore(self.state["batch_stats"], state["model"]["batch_stats"], "batch_stats")
        except (KeyError, TypeError) as exc:
            raise CheckpointError(f"checkpoint has no usable model weights: {exc}") from None
        if jax.tree_util.tree_structure(params) != jax.tree_util.tree_structure(state["model"]["params"]):
            raise CheckpointError("checkpoint params have different layer names than this model")
        if not isinstance(state.get("optimizer"), list):
            raise CheckpointError(f"checkpoint optimizer state must be a list of arrays, got {type(state.get('optimizer')).__name__}")
        opt_state = restore(self.state["opt_state"], list(state["optimizer"]), "optimizer state")
        in_epoch = int(state.get("step_in_epoch", 0))
        self._resume_data = resume_state(state, in_epoch) if self.streams else None
        if in_epoch and not self.streams:
            data = state.get("data")
            if not isinstance(data, dict) or set(data) != {"perm_key"}:
                raise CheckpointError("checkpoint field `data` must hold the epoch's `perm_key` in the middle of an epoch")
            self._perm_key = key(data["perm_key"], "field `data.perm_key`")
        self.state = self._put(
            {
                "params": params,
                "batch_stats": stats,
                "opt_state": opt_state,
                "key": key(state.get("rng"), "field `rng`"),
                "step": jnp.asarray(int(state["step"]), jnp.int32),
            },
        )
        self._in_epoch = in_epoch
        self._carried = state.get("progress") if in_epoch else None


def train(config: TrainConfig, dataset, *, out=None, device=None, teacher=None, log=print) -> dict:
    """Build a :class:`Trainer` and run :func:`twintricks.recipe.fit`; returns the summary (only
    process 0 of a ``jax.distributed`` job writes files and logs)."""
    trainer = Trainer(config, dataset, device=device, teacher=teacher)
    return fit(trainer, config, out=out, log=log if trainer.is_main else (lambda *a, **k: None))
