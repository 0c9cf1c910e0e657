"""The loader: a grain pipeline from a :class:`~twintricks.data.sources.Source` to uint8 batches.

A loader runs one grain pipeline as a *stream* of this process's batches, epoch after epoch:
``grain.MapDataset.range`` over element numbers, mapped to images, batched by grain, run by
grain's worker processes (``IterDataset.mp_prefetch``; ``workers=0`` runs it in the calling
thread). Element ``j`` is row ``r`` of batch ``step`` of epoch ``e`` (``j = (e · steps + step) ·
b + r``, ``b`` = this process's rows of a global batch ``B``) and reads global position
``pos = step · B + p · b + r`` of the epoch's order (``p`` the process): in training the image
``epoch_order(seed, e, n)[pos]``, in evaluation the image ``pos`` (or padding past the end).
Every number an image's view depends on is keyed by ``(seed, epoch, image index)``
(:mod:`twintricks.data.transforms`), so a batch is the same bytes at any world size, worker count
and resume point. :meth:`Loader.iterator` hands out one epoch of the stream; asking for the epoch
where the stream stands (the next one, after a whole epoch) keeps the workers running, anything
else restarts them there. grain's worker copies each batch's images into shared memory; the
caller copies them out once and frees the block, so a batch owns plain memory and nothing is
left in ``/dev/shm`` when a batch is kept or the program ends.

State (:meth:`EpochIterator.get_state`) is ``{"epoch", "step", ...}``: the batches taken; the
rest of the epoch is rebuilt from it, so a state restores with any worker count and world size
(the global batches do not depend on them).
"""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from typing import Any, Callable, NamedTuple

import numpy as np

from twintricks.checks import check_int
from twintricks.distributed import local_rows
from twintricks.data.decode import decode_rgb
from twintricks.data.errors import BadImageError, LoaderWorkerError, check_on_bad_image
from twintricks.data.sources import Source
from twintricks.data.transforms import CROP, FLIP, eval_crop, epoch_order, image_rng, train_crop
from twintricks.geometry import check_scale_ratio

__all__ = ["Batch", "Loader", "EpochIterator", "MAX_SUBSTITUTE_TRIES", "STATE_VERSION"]

#: Under ``on_bad_image="skip"`` in training, how many following images are tried in place of a bad one.
MAX_SUBSTITUTE_TRIES = 100
STATE_VERSION = 1
_MIN_SHM_BYTES = 1 << 16
#: How often a worker checks that the process that started it is still there (seconds).
_PARENT_POLL_S = 1.0
#: How many epochs ahead one grain pipeline reaches (it is restarted when they run out).
_STREAM_EPOCHS = 1 << 20


class Batch(NamedTuple):
    """One process's share of a global batch.

    Attributes:
        images: uint8 ``[b, H, W, 3]`` (NHWC, RGB), C-contiguous.
        labels: int32 ``[b]`` class indices (rows with ``valid`` False: 0).
        index: int64 ``[b]`` the images' global indices in the source (padding rows: -1).
        valid: bool ``[b]``: False for evaluation padding and for images skipped in evaluation.
        skipped: ``((file, reason), ...)`` bad files met in this batch under ``on_bad_image="skip"``.
    """

    images: np.ndarray
    labels: np.ndarray
    index: np.ndarray
    valid: np.ndarray
    skipped: tuple


def _grain():
    """grain, with absl's flags marked parsed when nobody parsed them (grain reads its flags'
    defaults; a program not started by ``absl.app.run`` would otherwise fail in ``mp_prefetch``)."""
    import grain
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    return grain


class _View:
    """Picklable per-element work: stream element ``j`` → one row's fields (see the module doc)."""

    def __init__(self, loader: "Loader"):
        self.source, self.steps = loader.source, loader.steps_per_epoch
        self.train, self.seed, self.image_size = loader.train, loader.seed, loader.image_size
        self.scale, self.ratio, self.flip_p = loader.crop_scale, loader.crop_ratio, loader.flip_p
        self.on_bad_image = loader.on_bad_image
        self.global_batch, self.local_batch = loader.batch_size, loader.local_batch_size
        self.first_row = loader.process_index * loader.local_batch_size
        self._order = (None, None)  # (epoch, its order): the latest epoch met

    def __getstate__(self):
        return {**self.__dict__, "_order": (None, None)}  # each process draws the order itself

    def locate(self, j: int) -> tuple[int, int]:
        """``(epoch, global image index)`` of stream element ``j`` (index -1: eval padding)."""
        batch, r = divmod(j, self.local_batch)
        epoch, step = divmod(batch, self.steps)
        pos = step * self.global_batch + self.first_row + r
        if not self.train:
            return epoch, (pos if pos < len(self.source) else -1)
        if self._order[0] != epoch:
            self._order = (epoch, epoch_order(self.seed, epoch, len(self.source)))
        return epoch, int(self._order[1][pos])

    def _view(self, g: int, epoch: int, key: int) -> tuple[np.ndarray, int]:
        """``(view of image g drawn with the key of slot key, its label)``."""
        data, label = self.source.read(g)
        try:
            image = decode_rgb(data, f"#{g}")
        except BadImageError as exc:  # name the file only now: a packed source reads its name
            raise BadImageError(self.source.name(g), exc.reason) from None
        if not self.train:
            return eval_crop(image, self.image_size), label
        view = train_crop(
            image, image_rng(self.seed, epoch, key, CROP), image_rng(self.seed, epoch, key, FLIP),
            self.image_size, scale=self.scale, ratio=self.ratio, flip_p=self.flip_p,
        )
        return view, label

    def __call__(self, j: int):
        """``(image, label, index, valid, bad_file, reason)`` of stream element ``j``."""
        epoch, g = self.locate(j)
        blank = np.zeros((self.image_size, self.image_size, 3), np.uint8)
        if g < 0:
            return blank, 0, -1, False, "", ""
        try:
            return (*self._view(g, epoch, g), g, True, "", "")
        except BadImageError as exc:
            if self.on_bad_image == "error":
                raise
            bad = exc
        if not self.train:  # evaluation leaves the row out of the metrics
            return blank, 0, g, False, bad.file, bad.reason
        n = len(self.source)
        for k in range(1, min(n, MAX_SUBSTITUTE_TRIES + 1)):
            s = (g + k) % n  # the next usable image, with its own label, drawn with this slot's key
            try:
                return (*self._view(s, epoch, g), s, True, bad.file, bad.reason)
            except BadImageError:
                continue
        raise BadImageError(bad.file, f"{bad.reason}; and the {min(n - 1, MAX_SUBSTITUTE_TRIES)} images after it are bad too")


def _make_batch(rows) -> Batch:
    """grain ``batch_fn``: the rows of :class:`_View` → one :class:`Batch`."""
    images = np.empty((len(rows), *rows[0][0].shape), np.uint8)
    for i, row in enumerate(rows):
        images[i] = row[0]
    cols = list(zip(*rows))
    skipped = tuple((f, r) for f, r in zip(cols[4], cols[5]) if f)
    return Batch(images, np.asarray(cols[1], np.int32), np.asarray(cols[2], np.int64), np.asarray(cols[3], bool), skipped)


class _ApplyBatchTransform:
    def __init__(self, fn, seed: int, steps: int, first_batch: int):
        self.fn, self.seed, self.steps, self.first_batch = fn, seed, steps, first_batch

    def __call__(self, k: int, batch: Batch) -> Batch:
        epoch, step = divmod(self.first_batch + k, self.steps)
        out = self.fn(batch, self.seed, epoch, step)
        if not isinstance(out, Batch):
            raise TypeError(f"`batch_transform` must return a Batch, got {type(out).__name__}")
        return out


def _exit_with_parent(parent_pid: int, worker: int, workers: int) -> None:
    """grain ``worker_init_fn``: a thread that ends this worker once the process that started it
    is gone, so a trainer killed with SIGKILL leaves no worker decoding into a queue nobody reads."""

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(_PARENT_POLL_S)
        os._exit(0)

    threading.Thread(target=watch, name="twintricks-exit-with-parent", daemon=True).start()


def _default_workers() -> int:
    """The CPU cores this process may use, shared among the processes of this machine when a
    launcher says how many there are (torchrun's ``LOCAL_WORLD_SIZE``)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    try:
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local = 1
    return max(1, cores // local)


class Loader:
    """Batches of one source for one process of a (possibly) distributed run.

    :meth:`iterator` gives one epoch at a time from one grain pipeline that runs on over
    consecutive epochs, so the worker processes start once (a few seconds each: grain spawns
    them). Asking for another place than where the stream stands (a resume, a skipped epoch)
    restarts them there. One iterator at a time: a later call supersedes an earlier one.
    :meth:`close` (or ``with``) stops the workers.

    Args:
        source: a :class:`~twintricks.data.sources.Source` (:func:`twintricks.data.open_source`).
        train: training views (shuffled each epoch, random resized crop + flip, the short last
            batch dropped) or evaluation views (index order, resize + centre crop, the last batch
            padded; ``Batch.valid`` marks the real rows).
        batch_size: the **global** batch; this process takes rows ``[p·b, (p+1)·b)``,
            ``b = batch_size / process_count`` (``ValueError`` naming ``batch_size`` when it does
            not divide).
        image_size: side of the square output, pixels.
        seed: the run's seed (any int; taken mod 2⁶⁴).
        process_index, process_count: this process and the number of processes.
        workers: grain worker processes (default: the CPU cores this process may use, divided by
            ``$LOCAL_WORLD_SIZE`` — the processes torchrun starts on this machine — when set);
            0 runs the pipeline in the calling thread.
        crop_scale, crop_ratio: ``RandomResizedCrop``'s ``scale`` and ``ratio``.
        flip: flip horizontally with probability 0.5 (training).
        on_bad_image: ``"error"`` (a bad file raises :class:`BadImageError` when met) or
            ``"skip"`` (training: the row holds the next usable image of the index with its own
            label; evaluation: the row is marked invalid; both list the file in ``Batch.skipped``).
        batch_transform: optional picklable ``f(batch, seed, epoch, step) -> Batch`` run in the
            workers on each local batch.

    Raises:
        TypeError, ValueError: a bad argument, named.
    """

    def __init__(
        self, source: Source, *, train: bool, batch_size: int, image_size: int, seed: int,
        process_index: int = 0, process_count: int = 1, workers: int | None = None,
        crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3), flip: bool = True, on_bad_image: str = "error",
        batch_transform: Callable[[Batch, int, int, int], Batch] | None = None,
    ):
        if not isinstance(source, Source):
            raise TypeError(f"`source` must be a twintricks.data source (open_source(...)), got {type(source).__name__}")
        if not isinstance(train, bool):
            raise TypeError(f"`train` must be a bool, got {type(train).__name__}")
        if not isinstance(flip, bool):
            raise TypeError(f"`flip` must be a bool, got {type(flip).__name__}")
        rows = local_rows(batch_size, process_index, process_count)  # checks all three
        self.source, self.train, self.batch_size = source, train, int(batch_size)
        self.process_index, self.process_count = int(process_index), int(process_count)
        self.local_batch_size = rows.stop - rows.start
        self.image_size = check_int("image_size", image_size, low=1)
        self.seed = check_int("seed", seed)
        self.workers = _default_workers() if workers is None else check_int("workers", workers, low=0)
        self.crop_scale, self.crop_ratio = check_scale_ratio(crop_scale, crop_ratio)
        self.flip_p = 0.5 if flip else 0.0
        self.on_bad_image = check_on_bad_image(on_bad_image)
        if batch_transform is not None and not callable(batch_transform):
            raise TypeError(f"`batch_transform` must be callable, got {type(batch_transform).__name__}")
        self.batch_transform = batch_transform
        n = len(source)
        if train and n < self.batch_size:
            raise ValueError(f"`batch_size` {self.batch_size} is larger than the {n} training images of {source!r}")
        self.steps_per_epoch = n // self.batch_size if train else math.ceil(n / self.batch_size)
        self._stream = None  # the running grain iterator, at batch self._at of the stream
        self._at = 0
        self._reader = None  # the EpochIterator reading it


    def _check_state(self, epoch: int, state) -> int:
        if not isinstance(state, dict):
            raise TypeError(f"`state` must be a dict from get_state(), got {type(state).__name__}")
        want = {"version": STATE_VERSION, "epoch": epoch, "train": self.train, "seed": self.seed,
                "batch_size": self.batch_size, "fingerprint": self.source.fingerprint}
        for key, value in want.items():
            if key not in state:
                raise ValueError(f"`state` lacks the field {key!r} (not a loader state)")
            if type(state[key]) is not type(value) or state[key] != value:
                raise ValueError(f"`state[{key!r}]` is {state[key]!r}, this loader needs {value!r}")
        return check_int("state['step']", state.get("step"), low=0, high=self.steps_per_epoch)

    def iterator(self, epoch: int, state: dict | None = None) -> "EpochIterator":
        """This process's batches of ``epoch``, in order; after ``state`` (from
        :meth:`EpochIterator.get_state`) when given."""
        epoch = check_int("epoch", epoch, low=0)
        first = 0 if state is None else self._check_state(epoch, state)
        return EpochIterator(self, epoch, first)

    def _same_place(self, at: int) -> bool:
        if self.train:
            return self._at == at
        return self._at % self.steps_per_epoch == at % self.steps_per_epoch  # evaluation ignores the epoch

    def _take(self, reader: "EpochIterator", at: int) -> None:
        """Give ``reader`` the stream, positioned at stream batch ``at`` (restarted if elsewhere)."""
        if self._stream is not None and not self._same_place(at):
            self._stop()
        if self._stream is None:
            self._stream, self._at = self._start(at), at
        self._reader = reader

    def _start(self, at: int):
        grain = _grain()
        b = self.local_batch_size
        stop = (at // self.steps_per_epoch + _STREAM_EPOCHS) * self.steps_per_epoch * b
        ds = grain.MapDataset.range(at * b, stop).map(_View(self))
        ds = ds.batch(b, drop_remainder=True, batch_fn=_make_batch)
        if self.batch_transform is not None:
            ds = ds.map_with_index(_ApplyBatchTransform(self.batch_transform, self.seed, self.steps_per_epoch, at))
        # in each worker one thread decodes ahead while the batch before is handed over
        threads = 1 if self.workers else 0
        it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=threads, prefetch_buffer_size=threads))
        if self.workers:
            # only the images travel in shared memory; labels and indices are pickled
            options = grain.experimental.DatasetOptions(min_shm_size=_MIN_SHM_BYTES)
            it_ds = grain.experimental.WithOptionsIterDataset(it_ds, options)
            it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=self.workers, per_worker_buffer_size=1),
                                      worker_init_fn=functools.partial(_exit_with_parent, os.getpid()))
        return iter(it_ds)

    def _next(self, reader: "EpochIterator") -> Batch:
        if reader is not self._reader:
            raise RuntimeError("this iterator was superseded by a later loader.iterator(...) call; "
                               "take one epoch's iterator at a time")
        try:
            batch = next(self._stream)
        except BadImageError as exc:  # the same one-line error, without grain's note and frames
            self._stop()
            raise BadImageError(exc.file, exc.reason) from None
        except RuntimeError as exc:
            self._stop()
            if "terminated unexpectedly" not in str(exc):
                raise
            raise LoaderWorkerError(
                f"a loader worker process died ({str(exc).splitlines()[0]}); the epoch cannot go on. "
                "A worker killed by the system is often out of memory: try fewer --workers or a smaller batch"
            ) from None
        except BaseException:
            self._stop()
            raise
        self._at += 1
        if type(batch.images) is not np.ndarray:  # grain's SharedMemoryArray: copy out, free the block now
            shared = batch.images
            batch = batch._replace(images=np.array(shared, copy=True))
            del shared
        return batch

    def _stop(self) -> None:
        stream, self._stream, self._reader = self._stream, None, None
        if stream is not None and hasattr(stream, "close"):
            stream.close()

    def close(self) -> None:
        """Stop the workers (idempotent; the next ``iterator()`` starts new ones)."""
        self._stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self._stop()
        except Exception:  # at interpreter exit grain's objects may be gone already
            pass


class EpochIterator:
    """One epoch's batches of a :class:`Loader` (see :meth:`Loader.iterator`). A later
    ``iterator()`` call of the same loader takes the stream over; this one then raises."""

    def __init__(self, loader: Loader, epoch: int, first_step: int):
        self._loader, self.epoch, self.step = loader, epoch, first_step
        self._done = first_step >= loader.steps_per_epoch
        if not self._done:
            loader._take(self, epoch * loader.steps_per_epoch + first_step)

    def __iter__(self):
        return self

    def __next__(self) -> Batch:
        if self._done or self.step >= self._loader.steps_per_epoch:
            self._done = True
            raise StopIteration
        try:
            batch = self._loader._next(self)
        except BaseException:
            self._done = True
            raise
        self.step += 1
        return batch

    def get_state(self) -> dict[str, Any]:
        """JSON-able position: the batches taken so far of this epoch, and what they depend on."""
        lo = self._loader
        return {"version": STATE_VERSION, "epoch": self.epoch, "step": self.step, "train": lo.train,
                "seed": lo.seed, "batch_size": lo.batch_size, "fingerprint": lo.source.fingerprint}

    def close(self) -> None:
        """Stop reading (idempotent). The loader keeps its workers for the next ``iterator()``;
        :meth:`Loader.close` stops them."""
        self._done = True
