"""The training data on the device: held whole (:class:`DeviceData`) or streamed (:class:`StreamData`).

In memory (``--dataset digits|cifar10``): the whole training and test sets are copied to the
device once as uint8 ``[N, C, H, W]`` (CIFAR-10 is 184 MB as uint8); an epoch is a
``torch.randperm`` drawn on the device from the run's ``torch.Generator`` and a batch is a gather
of ``batch_size`` indices, so no CPU data loader is involved (never slower than streaming the
same 32×32 images on a CPU, ``benchmarks/memory_vs_stream.py``; on a GPU it has no host work).

Streamed (``--dataset folder|shards|packed``): :mod:`twintricks.streaming`'s loaders (grain,
:mod:`twintricks.data`) decode and crop this process's rows of each global batch in their worker
processes into uint8 NHWC batches; a thread one batch ahead (:class:`twintricks.streaming.Prefetch`)
pins each batch's host memory (CUDA), copies it with ``non_blocking=True`` and transposes it to
uint8 ``[N, C, H, W]`` on the device, while the device runs the previous step.

Batch shapes are static, so a compiled step never recompiles:

* training **drops** the last short batch of an epoch (``len(train) // batch_size`` steps; the
  dropped images differ from epoch to epoch because the permutation does);
* evaluation **pads** the last batch (repeating image 0) and masks the padding out of the sums,
  so every test image is counted exactly once.
"""

from __future__ import annotations

import numpy as np
import torch

from twintricks.checks import check_int, check_ndim, check_same_leading
from twintricks.recipe import steps_per_epoch
from twintricks.streaming import StreamedDataset, StreamLoaders

__all__ = ["DeviceData", "StreamData", "to_device", "epoch_permutation", "batch_indices", "eval_batches"]


class DeviceData:
    """Train and test images (uint8 ``[N, C, H, W]``) and labels (int64 ``[N]``) on ``device``.

    Built from a :class:`twintricks.datasets.ImageDataset` (NHWC NumPy; transposed here once).
    """

    def __init__(self, dataset, device="cpu"):
        self.device = torch.device(device)

        def put(images, labels):
            x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(self.device)
            return x, torch.from_numpy(labels.astype(np.int64)).to(self.device)

        self.train_images, self.train_labels = put(dataset.train_images, dataset.train_labels)
        self.test_images, self.test_labels = put(dataset.test_images, dataset.test_labels)
        self.num_classes = dataset.num_classes

    @property
    def num_train(self) -> int:
        return self.train_images.shape[0]

    def steps_per_epoch(self, batch_size: int) -> int:
        """Full batches per epoch (the last short batch is dropped); at least one is required."""
        return steps_per_epoch(self.num_train, batch_size)


def to_device(batch, device: torch.device):
    """A :class:`twintricks.data.Batch` (uint8 NHWC NumPy) on ``device``: ``(images, labels,
    valid)`` as uint8 ``[b, C, H, W]``, int64 ``[b]`` and bool ``[b]``. On CUDA the host arrays are
    pinned and copied with ``non_blocking=True``; the NHWC → NCHW transposition runs on the device."""
    arrays = (torch.from_numpy(batch.images), torch.from_numpy(batch.labels.astype(np.int64)), torch.from_numpy(batch.valid))
    if device.type == "cuda":
        arrays = tuple(a.pin_memory() for a in arrays)
    images, labels, valid = (a.to(device, non_blocking=True) for a in arrays)
    return images.permute(0, 3, 1, 2).contiguous(), labels, valid


class StreamData(StreamLoaders):
    """A streamed data set (:class:`twintricks.streaming.StreamedDataset`) feeding one process's
    ``device`` (:class:`twintricks.streaming.StreamLoaders`, with :func:`to_device`). ``rank`` of
    ``world_size`` processes reads only its rows of every global batch; the evaluation batch is
    ``config.eval_batch_size`` (at most the test set) rounded up to a multiple of the processes."""

    def __init__(self, data: StreamedDataset, config, device, *, rank: int = 0, world_size: int = 1):
        self.device = torch.device(device)
        eval_batch = -(-min(config.eval_batch_size, len(data.test)) // world_size) * world_size
        super().__init__(data, config, eval_batch_size=eval_batch, process_index=rank, process_count=world_size)

    def put(self, batch):
        return to_device(batch, self.device)


def _describe(x) -> str:
    return f"{type(x).__name__} of shape {tuple(x.shape)} and dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__


def epoch_permutation(n: int, *, generator: torch.Generator, device=None) -> torch.Tensor:
    """A uniform random permutation of ``range(n)`` drawn on the generator's device."""
    n = check_int("n", n, low=0)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"`generator` must be a torch.Generator, got {type(generator).__name__}")
    return torch.randperm(n, generator=generator, device=generator.device).to(device or generator.device)


def batch_indices(perm: torch.Tensor, step: int, batch_size: int) -> torch.Tensor:
    """Indices of batch ``step`` of an epoch: ``perm[step·B:(step+1)·B]`` (always ``B`` of them)."""
    if not isinstance(perm, torch.Tensor) or perm.ndim != 1 or perm.is_floating_point() or perm.dtype == torch.bool:
        raise TypeError(f"`perm` must be a 1-D integer torch.Tensor, got {_describe(perm)}")
    step, batch_size = check_int("step", step, low=0), check_int("batch_size", batch_size, low=1)
    if (step + 1) * batch_size > perm.shape[0]:
        raise ValueError(f"`step` {step}: batch {step} of `batch_size` {batch_size} ends past the {perm.shape[0]} "
                         "indices of `perm`")
    return perm[step * batch_size : (step + 1) * batch_size]


def eval_batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int):
    """Yield ``(images, labels, valid)`` batches of exactly ``batch_size`` (the last padded with
    image 0; ``valid`` is a bool mask of the real ones)."""
    if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError(f"`images` and `labels` must be torch.Tensors, got {_describe(images)} and {_describe(labels)}")
    check_ndim("labels", labels, 1, "[N]")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"`labels` must be integer class indices, got {labels.dtype}")
    check_same_leading(["images", "labels"], [images, labels])
    batch_size = check_int("batch_size", batch_size, low=1)
    n = images.shape[0]
    for start in range(0, n, batch_size):
        idx = torch.arange(start, start + batch_size, device=images.device)
        valid = idx < n
        idx = torch.where(valid, idx, torch.zeros_like(idx))
        yield images[idx], labels[idx], valid
