"""A training run's streamed data set, framework-free: the two sources and their loaders as the
config says, the record ``config.json`` keeps, and a one-batch-ahead prefetch to a device.

Both trainers (:mod:`torch_impl.train`, :mod:`jax_impl.train`) read ``--dataset folder|shards|
packed`` through this module and the pipeline of :mod:`twintricks.data` (grain), so they get the
same uint8 NHWC batches, byte for byte, for one seed: each backend only moves them to its device
(its ``put`` function: torch pins the host memory, copies with ``non_blocking`` and transposes to
NCHW on the device; jax places them with its mesh's batch sharding).

What the config means for a streamed data set (:func:`make_loader`):

* the training images are cut **from the original image in the loader's workers**: with
  ``crop_flip`` on, torchvision's ``RandomResizedCrop(image_size, scale=crop_scale, ratio=(3/4,
  4/3))`` then a horizontal flip with p = 0.5 (the ImageNet recipe; ``--crop-scale 0.08 1`` is
  torchvision's default scale); with ``crop_flip`` off, no random view: the largest centred square
  resized to ``image_size``, unflipped (the same law with scale and ratio 1, whose centre-crop
  fallback that is; only on an image whose sides differ by at most one pixel does an attempt
  succeed, and the square may then start one pixel further along the longer side, by the
  image's key). Either way the on-device ``crop_flip`` kernel is not run
  (:func:`twintricks.recipe.device_tricks`): it would crop a second time;
* evaluation images: the shorter side resized to ``image_size / 0.875``, then the centre crop
  (torchvision's ImageNet evaluation);
* normalisation: ImageNet's channel mean and std (:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`,
  torchvision's reference recipe) — a streamed data set is not read whole to measure its own, as
  the in-memory sets are (:func:`twintricks.datasets.channel_stats`);
* ``batch_size`` is the global batch: process ``p`` of ``P`` reads only rows
  ``[p·b, (p+1)·b)`` of each (``b = batch_size / P``), so over an epoch every image is read by one
  process, once; the draws are keyed by (seed, epoch, image index), so the batches are the same at
  any world size and worker count;
* ``workers``: grain worker processes decoding (default: the CPU cores); ``on_bad_image``: see
  :mod:`twintricks.data`.
"""

from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "DEFAULT_IMAGE_SIZE", "StreamedDataset", "open_streamed", "make_loader",
           "describe", "resume_state", "StreamLoaders", "Prefetch"]

#: ImageNet's channel mean and standard deviation on the [0, 1] scale (RGB), as torchvision's recipes.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The training and evaluation image side when ``--image-size`` is not given.
DEFAULT_IMAGE_SIZE = 224


@dataclass(frozen=True)
class StreamedDataset:
    """The training and test sources of a streamed data set (:func:`open_streamed`), and the
    image side the model sees."""

    name: str
    train: Any  # twintricks.data.Source
    test: Any
    image_size: int

    @property
    def classes(self) -> tuple:
        return tuple(self.train.classes)

    @property
    def num_classes(self) -> int:
        return self.train.num_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of the batches."""
        return (self.image_size, self.image_size, 3)


def open_streamed(config) -> StreamedDataset:
    """The streamed data set of ``config`` (``dataset`` one of
    :data:`twintricks.recipe.STREAMING_DATASETS`): its ``train`` and ``test`` (or ``val``) splits
    under ``data_dir``, indexed. Raises ``ValueError`` naming ``data_dir`` or the bad file
    (:class:`twintricks.data.BadImageError` under ``on_bad_image="error"``)."""
    from twintricks.data import open_source

    if not config.streams():
        raise ValueError(f"`dataset` {config.dataset!r} is not streamed")
    if config.data_dir is None:
        raise ValueError(f"`data_dir` is required for --dataset {config.dataset}: the folder holding your data")
    splits = [open_source(config.dataset, config.data_dir, split=s, on_bad_image=config.on_bad_image)
              for s in ("train", "test")]
    if tuple(splits[1].classes) != tuple(splits[0].classes):
        raise ValueError(f"`data_dir` {config.data_dir}: the test split's classes differ from the training split's")
    name = os.path.basename(os.path.normpath(str(config.data_dir))) or config.dataset
    return StreamedDataset(name, splits[0], splits[1], config.image_size or DEFAULT_IMAGE_SIZE)


def make_loader(data: StreamedDataset, config, *, train: bool, batch_size: int, process_index: int = 0,
                process_count: int = 1):
    """The :class:`twintricks.data.Loader` of one split for one process (see the module docstring
    for what each setting becomes)."""
    from twintricks.data import Loader

    crop = {"crop_scale": config.crop_scale, "flip": True} if config.crop_flip else {
        "crop_scale": (1.0, 1.0), "crop_ratio": (1.0, 1.0), "flip": False}
    return Loader(
        data.train if train else data.test, train=train, batch_size=batch_size, image_size=data.image_size,
        seed=config.seed, process_index=process_index, process_count=process_count, workers=config.workers,
        on_bad_image=config.on_bad_image, **(crop if train else {}),
    )


class StreamLoaders:
    """The training and evaluation loaders of one process (a backend's ``StreamData`` subclasses
    this with its ``put``: a :class:`twintricks.data.Batch` → its arrays on the device).

    Args:
        data: the data set (:func:`open_streamed`).
        config: the run's :class:`~twintricks.recipe.TrainConfig` (batch size, seed, crop, workers,
            ``on_bad_image``).
        eval_batch_size: the global evaluation batch (a multiple of ``process_count``).
        process_index, process_count: this process among the data-parallel ones: it reads only its
            rows of every global batch, in training and in evaluation.
    """

    def __init__(self, data: StreamedDataset, config, *, eval_batch_size: int, process_index: int = 0,
                 process_count: int = 1):
        self.num_classes, self.num_test, self.eval_batch_size = data.num_classes, len(data.test), eval_batch_size
        procs = dict(process_index=process_index, process_count=process_count)
        self.train = make_loader(data, config, train=True, batch_size=config.batch_size, **procs)
        self.test = make_loader(data, config, train=False, batch_size=eval_batch_size, **procs)
        #: the bad files met so far (``on_bad_image="skip"``): ``{(file, reason): None}``
        self.skipped: dict = {}

    def put(self, batch):  # pragma: no cover - each backend's
        raise NotImplementedError

    def steps_per_epoch(self, batch_size: int) -> int:
        """The training loader's steps per epoch (``batch_size`` is the loader's; the argument
        keeps the in-memory data's signature)."""
        return self.train.steps_per_epoch

    def train_batches(self, epoch: int, state: dict | None = None):
        """This process's batches of ``epoch`` on the device, one ahead: ``(put(batch), state
        after it)``; after ``state`` (a loader state a checkpoint holds) when given — a
        :class:`~twintricks.checkpoint.CheckpointError` when it does not fit this loader."""
        from twintricks.checkpoint import CheckpointError

        try:
            iterator = self.train.iterator(epoch, state=state)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint field `data.iterator` does not resume this data: {exc}") from None
        with Prefetch(iterator, self.put) as stream:
            for arrays, batch, after in stream:
                self.skipped.update(dict.fromkeys(batch.skipped))
                yield arrays, after

    def eval_batches(self):
        """This process's rows of every evaluation batch on the device (the last padded; an image
        skipped as bad is not ``valid`` either)."""
        with Prefetch(self.test.iterator(0), self.put) as stream:
            for arrays, batch, _ in stream:
                self.skipped.update(dict.fromkeys(batch.skipped))
                yield arrays

    def close(self) -> None:
        """Stop the loaders' workers."""
        self.train.close()
        self.test.close()


def describe(data: StreamedDataset) -> dict:
    """What ``config.json`` and the checkpoint record of the data: each split's
    ``describe()`` (kind, path, images, classes, index fingerprint, files skipped at index time)
    and the image size."""
    return {"train": data.train.describe(), "test": data.test.describe(), "image_size": data.image_size}


def resume_state(payload: dict, in_epoch: int) -> dict | None:
    """The training loader's state a checkpoint of a streamed run holds (``data.iterator``: taken
    after the ``in_epoch``-th batch of the epoch in progress), or ``None`` at an epoch's end. A
    :class:`~twintricks.checkpoint.CheckpointError` when it is missing or says another step (the
    loader checks the rest — epoch, seed, batch size, the data's fingerprint — when it resumes)."""
    from twintricks.checkpoint import CheckpointError

    if not in_epoch:
        return None
    data = payload.get("data")
    it = data.get("iterator") if isinstance(data, dict) else None
    if not isinstance(it, dict) or type(it.get("step")) is not int or it.get("step") != in_epoch:
        raise CheckpointError(
            f"checkpoint field `data.iterator` must be the loader's state after step {in_epoch} of the epoch, got "
            f"{str(it)[:80]}"
        )
    return it


_END = object()


class Prefetch:
    """Iterate ``iterator`` (an :class:`twintricks.data.EpochIterator`) one batch ahead in a
    thread: yields ``(put(batch), batch, state)`` where ``state`` is the iterator's
    ``get_state()`` right after that batch (so a checkpoint taken after training on it resumes with
    the next one, although the thread has already taken another).

    ``put`` moves a batch to the device (it runs in the thread, so the copy overlaps the step).
    An error of the loader (a bad image, a dead worker) is raised in the consumer, at the batch
    where it happened. :meth:`close` (also on leaving a ``with`` block, or garbage collection of a
    half-read epoch) stops the thread and the iterator's workers.
    """

    def __init__(self, iterator, put: Callable, *, depth: int = 1):
        self._it, self._put = iterator, put
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="twintricks-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for batch in self._it:
                if not self._offer((self._put(batch), batch, self._it.get_state())):
                    return
            self._offer(_END)
        except BaseException as exc:  # handed to the consumer
            self._offer(exc)

    def _offer(self, item) -> bool:
        """Queue ``item`` unless :meth:`close` was called (then False)."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator:
        return self

    def __next__(self):
        item = self._queue.get()
        if item is _END:
            self.close()
            raise StopIteration
        if isinstance(item, BaseException):
            self.close()
            raise item
        return item

    def close(self) -> None:
        """Stop the thread and the iterator's workers (idempotent)."""
        self._stop.set()
        inside = threading.current_thread() is self._thread
        for wait in (2.0, 10.0):
            while True:  # unblock a put waiting on a full queue
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            if not inside and self._thread.is_alive():
                self._thread.join(timeout=wait)
            if wait == 2.0:  # a thread still waiting on the loader ends when its workers stop
                close = getattr(self._it, "close", None)
                if close is not None:
                    close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self._stop.set()
        except Exception:
            pass
