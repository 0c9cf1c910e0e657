"""The training recipe in PyTorch: one step holding augmentation, forward, loss, backward and update.

:class:`Trainer` keeps the data on the device or streams it (:mod:`torch_impl.data`), a model
from :mod:`torch_impl.models`, an optimizer and one ``torch.Generator`` per random stream. One
training step is:

1. cut the batch on the device (uint8 ``[B, C, H, W]``), or take the next streamed one (a
   thread one batch ahead has copied the loader's uint8 batch to the device; the loader cropped
   and flipped each image from the original, :mod:`twintricks.streaming`);
2. draw the step's trick parameters (:meth:`Trainer.sample_aug`: for each enabled trick of
   :data:`twintricks.tricks.TRICKS`, its sampler from :data:`TRICK_IMPLS` on the trick's own
   generator; tiny tensors, eager — sampling is kept out of the compiled region because
   ``torch.compile`` cannot trace a ``torch.Generator``);
3. the compiled part (:meth:`Trainer.loss_fn`, ``torch.compile``\\ d when compiling): the enabled
   tricks' kernels in the recipe's order (:meth:`Trainer.augment`: crop + flip and AutoAugment on
   uint8, then ``x/255`` normalised by the data set's channel mean/std, Cutout with fill 0 = the
   mean, random erasing (timm's fills, in normalised units), label smoothing, mixup, RICAP or
   CutMix / timm-style mixup-CutMix switching), the forward pass (``bfloat16`` autocast optional), the
   loss (:meth:`Trainer.criterion`: cross-entropy against the integer, smoothed or soft targets,
   plus Hinton distillation against a frozen teacher's logits on the same images); AOTAutograd
   compiles the backward pass with it;
4. the optimizer update (SGD with Nesterov momentum and weight decay, AdamW, or AdaBound /
   AMSBound / AdaBoundW from :mod:`torch_impl.optim`) with the step's learning rate from
   :func:`twintricks.recipe.lr_at` (cosine or step schedule, optional warm-up).

Compilation: ``compile="auto"`` compiles on CUDA and runs eagerly on CPU, where Inductor's first
compile of the default net takes longer than the whole default digits run and the steady-state
gain depends on the machine's load (``benchmarks/RESULTS.md``); ``compile="on"`` forces it. The
optimizer update is eager (on CUDA with multi-tensor ``foreach`` kernels, torch's default, which
:class:`torch_impl.optim.AdaBound` follows): a per-step learning rate given as a Python float would
make a compiled ``optimizer.step`` recompile whenever it changes.

Static shapes: the last short training batch of an epoch is dropped, the last evaluation batch is
padded (:mod:`torch_impl.data`), so nothing recompiles after the first step.

Scale-out: under ``torchrun`` each process takes its rows of every global batch and the model runs
in ``DistributedDataParallel`` (:mod:`torch_impl.distributed`); the draws are those of one
process, so the run is the same at any world size up to the order of float sums.

Determinism: the model is initialised from ``torch.manual_seed(seed)`` inside
``torch.random.fork_rng`` (the global generator is left as it was); the epochs' data order comes
from a generator seeded with ``seed``; each random trick draws from its own generator, seeded
with :func:`twintricks.tricks.stream_seed` ``(seed, trick.stream)``, so enabling one trick never
changes another's draws. :meth:`Trainer.get_state` / :meth:`Trainer.set_state` cover the
weights, the optimizer, every generator and the step count, so a run resumed from an epoch
checkpoint ends bit-identical (on CPU, with the same thread count) to an uninterrupted one.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from torch_impl import data as tdata
from torch_impl import distributed as tdist
from torch_impl import models as tmodels
from torch_impl.losses import distillation_loss, label_smoothing_cross_entropy, soft_target_cross_entropy
from torch_impl.optim import AdaBound, AdaBoundW, AMSBound
from twintricks.checkpoint import CheckpointError
from twintricks.datasets import channel_stats
from twintricks.streaming import IMAGENET_MEAN, IMAGENET_STD, StreamedDataset, describe, resume_state
from twintricks.distributed import BATCH_STAGES, local_batch_size, take_rows, world_record
from twintricks.recipe import TrainConfig, device_tricks, fit, lr_at, progress_bar
from twintricks.tricks import STAGES, TrickImpl, collect_impls, stream_seed

__all__ = ["Trainer", "TrickImpl", "TRICK_IMPLS", "build_optimizer", "resolve_device", "train"]


#: trick id → this backend's :class:`~twintricks.tricks.TrickImpl` (sampler and kernel), collected from
#: ``TRICK_IMPLS`` of the module beside each trick's kernels (:attr:`twintricks.tricks.Trick.module`).
TRICK_IMPLS: dict[str, TrickImpl] = collect_impls("torch_impl")

_ADABOUND = {"adabound": AdaBound, "amsbound": AMSBound, "adaboundw": AdaBoundW}


def resolve_device(name=None) -> torch.device:
    """The torch device ``name`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, a ``torch.device``...);
    ``None``: CUDA when torch sees a GPU, else the CPU.

    Raises ``ValueError`` naming ``device`` for a name torch does not know, or a device this
    machine does not have (CUDA without a GPU, an index past the last GPU).
    """
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"`device` must be a torch device such as 'cpu', 'cuda' or 'cuda:1', got {name!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"`device` {name!r}: torch sees no CUDA GPU on this machine (use 'cpu')")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"`device` {name!r}: torch sees {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        backend = getattr(torch, dev.type, None)
        if backend is None or not getattr(backend, "is_available", lambda: False)():
            raise ValueError(f"`device` {name!r}: torch has no {dev.type} device on this machine")
    return dev


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
    return _ADABOUND[config.optimizer](params, lr=lr, final_lr=config.final_lr, gamma=config.adabound_gamma, weight_decay=wd)


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
        dataset: a :class:`twintricks.datasets.ImageDataset` (held on the device) or a
            :class:`twintricks.streaming.StreamedDataset` (streamed; with DDP each process reads
            only its rows of each global batch).
        device: ``"cpu"``, ``"cuda"``... (:func:`resolve_device`); default ``config.device``, else
            CUDA when available.
        teacher: optional ``(model_name, width, state_dict)`` of a trained teacher (a torch-style
            ``state_dict``, e.g. from any teacher file by :func:`torch_impl.teacher.load_teacher`).
        mean, std: normalisation per channel on the [0, 1] scale (default: the training set's;
            ImageNet's for a streamed data set).
        dist: this process's :class:`torch_impl.distributed.Context` (from
            :func:`torch_impl.distributed.init`); default one process. With several, the model
            is wrapped in ``DistributedDataParallel`` and each process takes its rows of every
            global batch (``config.batch_size``), see :mod:`torch_impl.distributed`.
    """

    framework = "torch"

    def __init__(self, config: TrainConfig, dataset, *, device=None, teacher=None, mean=None, std=None, dist=None):
        self.config = config
        self.dist = dist or tdist.Context()
        if self.dist.distributed:
            self.device = self.dist.device
            local_batch_size(config.batch_size, self.dist.world_size)  # the global batch must split evenly
        else:
            self.device = resolve_device(device if device is not None else config.device)
        self.is_main = self.dist.is_main
        self.world = world_record(self.dist.world_size)
        self.threads = torch.get_num_threads()
        self.device_name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        self.streams = isinstance(dataset, StreamedDataset)
        if self.streams:  # read image by image, this process's rows of each global batch
            self.data = tdata.StreamData(dataset, config, self.device, rank=self.dist.rank, world_size=self.dist.world_size)
            self.data_record = describe(dataset)
        else:
            self.data = tdata.DeviceData(dataset, self.device)
            self.data_record = None
        self.num_classes = dataset.num_classes
        self.image_size = tuple(dataset.image_shape[:2])
        self.channels = dataset.image_shape[2]
        self.steps_per_epoch = self.data.steps_per_epoch(config.batch_size)
        self.lrs = None
        if mean is None or std is None:
            mean, std = (IMAGENET_MEAN, IMAGENET_STD) if self.streams else channel_stats(dataset.train_images)
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
        self.net = tdist.wrap_model(self.model, self.dist, sync_bn=config.sync_bn)  # the training forward pass
        self.data_generator = torch.Generator(self.device).manual_seed(config.seed)
        self.tricks = device_tricks(config)
        self.soft_targets = config.soft_targets()
        self.generators = {
            t.name: torch.Generator(self.device).manual_seed(stream_seed(config.seed, t.stream))
            for t in self.tricks
            if TRICK_IMPLS[t.name].sample is not None
        }
        normalise = STAGES.index("normalise")
        self._uint8_stage = [(t.name, TRICK_IMPLS[t.name].apply) for t in self.tricks
                             if TRICK_IMPLS[t.name].apply and STAGES.index(t.stage) < normalise]
        self._float_stage = [(t.name, TRICK_IMPLS[t.name].apply) for t in self.tricks
                             if TRICK_IMPLS[t.name].apply and STAGES.index(t.stage) > normalise]
        if self.dist.distributed:  # the batch-mixing tricks run on the gathered global batch
            self._batch_wide = {t.name for t in self.tricks if t.stage in BATCH_STAGES}
            self._float_stage = [(n, tdist.on_global_batch(a, self.dist) if n in self._batch_wide else a)
                                 for n, a in self._float_stage]
        self.step = 0
        # where the run stands in its epoch (set_state restores it; train_epoch continues from it)
        self._in_epoch = 0  # steps done in the epoch in progress
        self._sums = None  # that epoch's (loss sum, correct count) so far, this process's, on the device
        self._carried = None  # the global sums a mid-epoch checkpoint brought (added by rank 0)
        self._epoch_data_rng = None  # the data generator's state before the epoch's permutation
        self._warm = False  # a step has run (compiled) in this process
        self.compiled = config.uses_compile(self.device.type)
        self._loss = torch.compile(self.loss_fn) if self.compiled else self.loss_fn
        self._eval = torch.compile(self._eval_logits) if self.compiled else self._eval_logits
        self.eval_batch_size = (self.data.eval_batch_size if self.streams
                                else min(config.eval_batch_size, self.data.test_images.shape[0]))
        self._data_state = None  # streamed: the loader's state after the last batch trained on
        self._resume_data = None  # streamed: the loader state a mid-epoch checkpoint brought

    # ------------------------------------------------------------------ tricks

    def sample_aug(self, batch_size: int | None = None) -> dict:
        """Draw one step's trick parameters: ``{trick name: params}`` for every enabled trick that
        draws, each from its own generator."""
        n = batch_size or self.config.batch_size
        return {name: TRICK_IMPLS[name].sample(n, self, g) for name, g in self.generators.items()}

    def local_aug(self, aug: dict) -> dict:
        """This process's part of a global batch's parameters: the rows of every per-image trick's
        record; a batch-mixing trick's record whole (it runs on the gathered global batch)."""
        if not self.dist.distributed:
            return aug
        rows = self.dist.rows(self.config.batch_size)
        return {name: p if name in self._batch_wide else take_rows(p, rows) for name, p in aug.items()}

    def augment(self, images: torch.Tensor, labels: torch.Tensor, aug: dict):
        """uint8 ``[B, C, H, W]`` batch → (normalised float images, targets): the enabled tricks'
        kernels in the recipe's order, with the normalisation between the uint8 and float stages.

        Targets are the integer labels, or ``[B, K]`` soft targets when a mixing trick is on (label
        smoothing is folded into them first so that the two compose).
        """
        x, targets = images, labels
        for name, apply in self._uint8_stage:
            x, targets = apply(x, targets, aug.get(name), self)
        x = (x.float() / 255.0 - self.mean) / self.std
        for name, apply in self._float_stage:
            x, targets = apply(x, targets, aug.get(name), self)
        return x, targets

    def criterion(self, logits, targets, teacher_logits=None):
        """Cross-entropy (plain, label-smoothed, or against soft targets) plus distillation."""
        c = self.config
        logits = logits.float()
        if targets.ndim == 2:
            ce = soft_target_cross_entropy(logits, targets)
        elif c.label_smoothing > 0:
            ce = label_smoothing_cross_entropy(logits, targets, smoothing=c.label_smoothing)
        else:
            ce = F.cross_entropy(logits, targets)
        if teacher_logits is None:
            return ce
        kd = distillation_loss(logits, teacher_logits.float(), temperature=c.kd_temperature)
        return c.kd_alpha * kd + (1.0 - c.kd_alpha) * ce

    def _forward(self, model, x):
        if self.config.precision == "bfloat16":
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                return model(x).float()
        return model(x)

    def loss_fn(self, images: torch.Tensor, labels: torch.Tensor, aug: dict):
        """Augment, forward and loss of one batch (the compiled region). Returns ``(loss, logits)``."""
        x, targets = self.augment(images, labels, aug)
        logits = self._forward(self.net, x)
        teacher_logits = None
        if self.teacher is not None:
            with torch.no_grad():
                teacher_logits = self._forward(self.teacher, x)
        return self.criterion(logits, targets, teacher_logits), logits

    # ------------------------------------------------------------------ steps

    def lr_at(self, step: int) -> float:
        return lr_at(self.config, step, self.steps_per_epoch)

    def check_same(self, what: str, value) -> None:
        """Raise unless every process has the same ``value`` (:func:`torch_impl.distributed.check_same`)."""
        with tdist.collective_errors(self.dist):
            tdist.check_same(what, value, self.dist)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor, aug: dict | None = None):
        """One optimizer step on a uint8 batch (this process's rows of the global batch); ``aug``
        defaults to :meth:`sample_aug` for the global batch, cut by :meth:`local_aug`. Returns this
        process's ``(loss, number of correct predictions)`` as 0-d tensors (no device sync)."""
        if aug is None:
            aug = self.local_aug(self.sample_aug(images.shape[0] * self.dist.world_size))
        lr = self.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.net.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss, logits = self._loss(images, labels, aug)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return loss.detach(), (logits.detach().argmax(1) == labels).sum()

    def train_epoch(self, epoch: int, *, on_step=None) -> dict:
        """One epoch of :meth:`train_step` over a fresh permutation (the last short batch dropped),
        or the rest of it when :meth:`set_state` restored a mid-epoch checkpoint (the same
        permutation, from the data generator's state at the epoch's start). ``on_step(done)`` is
        called after each step (:func:`twintricks.recipe.fit` saves there)."""
        c = self.config
        start = self._in_epoch
        bar = progress_bar(c, epoch, self.steps_per_epoch, initial=start, show=self.is_main)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        if self._carried is not None and self.dist.rank == 0:  # the global sums before the checkpoint
            loss_sum += self._carried["loss_sum"]
            correct += self._carried["correct"]
        self._carried = None
        self._sums = (loss_sum, correct)
        t0 = time.perf_counter()
        compile_s, images_timed, t_timed = 0.0, 0, t0
        for i, (images, labels) in enumerate(self._epoch_batches(epoch, start), start=start):
            first = self.compiled and not self._warm  # the process's first step compiles
            self._warm = True
            with tdist.collective_errors(self.dist):
                loss, corr = self.train_step(images, labels)
            loss_sum += loss
            correct += corr
            if first:
                loss.item()
                compile_s = time.perf_counter() - t0
                t_timed = time.perf_counter()
            else:
                images_timed += c.batch_size
            self._in_epoch = i + 1
            if bar is not None:
                bar.update(1)
                if i % 10 == 0:
                    bar.set_postfix(loss=f"{loss.item():.3f}")
            if on_step is not None:
                on_step(i + 1)
        if self._in_epoch != self.steps_per_epoch:
            raise RuntimeError(f"the data of epoch {epoch + 1} ended after {self._in_epoch} of {self.steps_per_epoch} steps")
        self._in_epoch, self._sums, self._data_state = 0, None, None
        n = self.steps_per_epoch * c.batch_size
        with tdist.collective_errors(self.dist):  # the global batch's mean loss and correct count
            loss_sum = tdist.all_reduce_sum(loss_sum, self.dist) / self.dist.world_size
            correct = tdist.all_reduce_sum(correct, self.dist)
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

    def _epoch_batches(self, epoch: int, start: int):
        """This process's ``(images, labels)`` of steps ``start, start + 1, ...`` of ``epoch`` on
        the device: cut from the epoch's permutation (in memory), or streamed (from the loader
        state a mid-epoch checkpoint brought, when resuming); records where the data stands."""
        if not self.streams:
            self._epoch_data_rng = self.data_generator.get_state()
            perm = tdata.epoch_permutation(self.data.num_train, generator=self.data_generator)
            rows = self.dist.rows(self.config.batch_size)
            for i in range(start, self.steps_per_epoch):
                idx = tdata.batch_indices(perm, i, self.config.batch_size)[rows]
                yield self.data.train_images[idx], self.data.train_labels[idx]
            return
        state, self._resume_data = self._resume_data, None
        for (images, labels, _), self._data_state in self.data.train_batches(epoch, state):
            yield images, labels

    def _eval_logits(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float() / 255.0 - self.mean) / self.std
        return self._forward(self.model, x).float()

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Test loss and accuracy in eval mode (BatchNorm running statistics), every image once;
        with several processes each evaluates a share of the test set (in memory: a contiguous
        one; streamed: its rows of each evaluation batch) and the sums are added over them. A
        streamed image skipped as bad (``on_bad_image="skip"``) is left out of both."""
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        count = torch.zeros((), device=self.device)
        with tdist.collective_errors(self.dist):
            if not self.config.sync_bn:
                tdist.sync_buffers(self.model, self.dist)  # evaluate with rank 0's running statistics
            if self.streams:
                for x, y, valid in self.data.eval_batches():
                    loss_sum, correct, count = self._eval_sums(x, y, valid, loss_sum, correct, count)
            else:
                n = self.data.test_images.shape[0]
                r, w = self.dist.rank, self.dist.world_size
                share = slice(r * n // w, (r + 1) * n // w)
                images, labels = self.data.test_images[share], self.data.test_labels[share]
                for x, y, valid in tdata.eval_batches(images, labels, self.eval_batch_size):
                    loss_sum, correct, count = self._eval_sums(x, y, valid, loss_sum, correct, count)
            loss_sum, correct, count = (tdist.all_reduce_sum(t, self.dist) for t in (loss_sum, correct, count))
        n = max(float(count), 1.0)
        return {"loss": float(loss_sum) / n, "acc": float(correct) / n}

    def _eval_sums(self, x, y, valid, loss_sum, correct, count):
        logits = self._eval(x)
        return (loss_sum + (F.cross_entropy(logits, y, reduction="none") * valid).sum(),
                correct + ((logits.argmax(1) == y) & valid).sum(), count + valid.sum())

    def close(self) -> None:
        """Stop a streamed data set's loader workers (:func:`twintricks.recipe.fit` does at its end;
        a later epoch starts new ones)."""
        if self.streams:
            self.data.close()

    def skipped_files(self) -> list:
        """The bad files left out (``on_bad_image="skip"``) by every process so far, at index time
        and while reading: ``[[file, reason], ...]``, sorted (a collective under DDP)."""
        if not self.streams:
            return []
        mine = list(self.data.skipped)
        if self.dist.distributed:
            every = [None] * self.dist.world_size
            with tdist.collective_errors(self.dist):
                torch.distributed.all_gather_object(every, mine)
            mine = [item for part in every for item in part]
        index = [tuple(x) for split in ("train", "test") for x in self.data_record[split]["skipped"]]
        return sorted(map(list, set(map(tuple, mine)) | set(index)))

    # ------------------------------------------------------------------ state

    def get_state(self) -> dict:
        """Weights, optimizer, generators, step and the place in the epoch as NumPy/plain values (a
        checkpoint payload); ``rng`` maps ``"data"`` and each random trick's name to its
        generator's state.

        Mid-epoch (after :meth:`train_epoch`'s ``on_step``): ``step_in_epoch`` > 0, ``rng["data"]``
        is the data generator's state *before* the epoch's permutation (the resumed run draws the
        same one) and ``progress`` holds the epoch's loss sum and correct count so far, summed over
        the processes (a collective: every process calls this at the same step).

        .. warning:: With several processes the resumed epoch's reported mean loss is summed in
           another order than an uninterrupted run's (rank 0 carries the saved sum): it may differ
           in the last bits. The weights do not (one process: the metrics do not either)."""
        rng = {name: g.get_state().numpy().copy() for name, g in self._all_generators().items()}
        progress = None
        if self._in_epoch:
            if not self.streams:
                rng["data"] = self._epoch_data_rng.numpy().copy()
            with tdist.collective_errors(self.dist):
                loss_sum, correct = (tdist.all_reduce_sum(t, self.dist) for t in self._sums)
            progress = {"loss_sum": float(loss_sum), "correct": int(correct)}
        return {
            "model_name": self.config.model,
            "width": self.config.width,
            "num_classes": self.num_classes,
            "model": _to_numpy_tree(self.model.state_dict()),
            "optimizer": _to_numpy_tree(self.optimizer.state_dict()),
            "rng": rng,
            "step": self.step,
            "step_in_epoch": self._in_epoch,
            "progress": progress,
            "data": {"iterator": self._data_state} if self.streams and self._in_epoch else None,
        }

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`'s payload (shapes are checked by ``load_state_dict``; the run
        state's values by :func:`twintricks.schema.check_run_state` before). The next
        :meth:`train_epoch` continues a mid-epoch checkpoint's epoch at its next step."""
        try:
            self.model.load_state_dict(_to_torch_tree(state["model"], self.device))
            self.optimizer.load_state_dict(_to_torch_tree(state["optimizer"], "cpu"))
        except (RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
            raise CheckpointError(f"checkpoint does not fit this model/optimizer: {_first_line(exc)}") from None
        rng = state.get("rng")
        gens = self._all_generators()
        if not isinstance(rng, dict) or set(rng) != set(gens):
            have = sorted(map(str, rng)) if isinstance(rng, dict) else type(rng).__name__
            raise CheckpointError(f"checkpoint has random streams {have}, this run needs {sorted(gens)}")
        try:
            for name, g in gens.items():
                if not isinstance(rng[name], np.ndarray):
                    raise TypeError(f"the state of {name!r} is a {type(rng[name]).__name__}, not an array")
                g.set_state(torch.from_numpy(np.asarray(rng[name], dtype=np.uint8).copy()))
        except (RuntimeError, TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint has an unusable generator state: {_first_line(exc)}") from None
        self.step = int(state["step"])
        self._in_epoch = int(state.get("step_in_epoch", 0))
        self._carried = state.get("progress") if self._in_epoch else None
        self._resume_data = resume_state(state, self._in_epoch) if self.streams else None

    def _all_generators(self) -> dict:
        return {"data": self.data_generator, **self.generators}


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


def train(config: TrainConfig, dataset, *, out=None, device=None, teacher=None, log=print) -> dict:
    """Build a :class:`Trainer` and run :func:`twintricks.recipe.fit`; returns the summary.

    Under ``torchrun`` (``WORLD_SIZE`` set) the process joins the process group first
    (:func:`torch_impl.distributed.init`) and trains with ``DistributedDataParallel``; only rank 0
    writes files and logs.
    """
    dist = tdist.init(device if device is not None else config.device)
    with tdist.joined(dist):  # a failed run leaves the group without the shutdown barrier (its error surfaces)
        trainer = None
        try:
            trainer = Trainer(config, dataset, device=device, teacher=teacher, dist=dist)
            return fit(trainer, config, out=out, log=log if dist.is_main else (lambda *a, **k: None))
        finally:
            trainer = None  # DDP's reducer goes before its process group (tdist.joined)
