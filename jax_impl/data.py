"""The training data on the device: held whole (:class:`DeviceData`) or streamed (:class:`StreamData`).

In memory (``--dataset digits|cifar10``): the whole training and test sets are put on the device
once as uint8 ``[N, H, W, C]``; an epoch is a ``jax.random.permutation`` and a batch a
``dynamic_slice`` of it followed by a gather — inside the jitted training step, so no CPU data
loader is involved and nothing leaves the device.

Streamed (``--dataset folder|shards|packed``): :mod:`twintricks.streaming`'s loaders (grain,
:mod:`twintricks.data`) decode and crop this process's rows of each global batch in their worker
processes into uint8 NHWC batches; a thread one batch ahead (:class:`twintricks.streaming.Prefetch`)
places each on the device — on a mesh of several devices as one global array split along its
``"data"`` axis (``jax.make_array_from_process_local_data``: each process gives its rows, each
device gets its share) — while the device runs the previous step.

Batch shapes are static, so the step compiles once:

* training **drops** the last short batch of an epoch (``len(train) // batch_size`` steps; the
  dropped images differ from epoch to epoch because the permutation does);
* evaluation **pads** the last batch (repeating image 0) and masks the padding out of the sums,
  so every test image is counted exactly once.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from twintricks.checks import check_int, check_ndim, check_same_leading
from twintricks.recipe import steps_per_epoch
from twintricks.streaming import StreamedDataset, StreamLoaders

__all__ = ["DeviceData", "StreamData", "gather_json", "epoch_permutation", "batch_indices", "eval_batches"]


class DeviceData:
    """Train and test images (uint8 ``[N, H, W, C]``) and labels (int32 ``[N]``) on ``device``.

    Built from a :class:`twintricks.datasets.ImageDataset` (already NHWC).
    """

    def __init__(self, dataset, device=None):
        device = device or jax.devices()[0]
        put = lambda a: jax.device_put(np.ascontiguousarray(a), device)  # noqa: E731
        self.train_images = put(dataset.train_images)
        self.train_labels = put(dataset.train_labels.astype(np.int32))
        self.test_images = put(dataset.test_images)
        self.test_labels = put(dataset.test_labels.astype(np.int32))
        self.num_classes = dataset.num_classes

    @property
    def num_train(self) -> int:
        return self.train_images.shape[0]

    def steps_per_epoch(self, batch_size: int) -> int:
        """Full batches per epoch (the last short batch is dropped); at least one is required."""
        return steps_per_epoch(self.num_train, batch_size)


class StreamData(StreamLoaders):
    """A streamed data set (:class:`twintricks.streaming.StreamedDataset`) feeding this process's
    devices (:class:`twintricks.streaming.StreamLoaders`): each of the ``jax.process_count()``
    processes reads its rows of each global batch, placed as one global array by ``sharding`` —
    a ``jax.Device``, or a ``NamedSharding`` splitting the batch axis over a mesh
    (:func:`jax_impl.distributed.batch_sharding`). ``eval_batch_size`` is the global evaluation
    batch (a multiple of the mesh's devices)."""

    def __init__(self, data: StreamedDataset, config, sharding, *, eval_batch_size: int):
        self.sharding = sharding
        super().__init__(data, config, eval_batch_size=eval_batch_size, process_index=jax.process_index(),
                         process_count=jax.process_count())

    def put(self, batch):
        arrays = (batch.images, batch.labels, batch.valid)
        if isinstance(self.sharding, jax.Device):
            return tuple(jax.device_put(a, self.sharding) for a in arrays)
        return tuple(jax.make_array_from_process_local_data(self.sharding, a) for a in arrays)


def gather_json(obj) -> list:
    """``obj`` (JSON-able) of every process of a ``jax.distributed`` job, in process order (a
    collective: every process calls it); ``[obj]`` for one process."""
    if jax.process_count() == 1:
        return [obj]
    import json

    from jax.experimental import multihost_utils

    data = np.frombuffer(json.dumps(obj).encode(), np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.asarray([data.size], np.int64))).reshape(-1)
    padded = np.zeros(int(sizes.max()), np.uint8)
    padded[: data.size] = data
    every = np.asarray(multihost_utils.process_allgather(padded)).reshape(len(sizes), -1)
    return [json.loads(bytes(every[p, : sizes[p]])) for p in range(len(sizes))]


def epoch_permutation(key, n: int) -> jax.Array:
    """A uniform random permutation of ``range(n)`` (int32)."""
    n = check_int("n", n, low=0)
    return jax.random.permutation(key, n).astype(jnp.int32)


def batch_indices(perm: jax.Array, step, batch_size: int) -> jax.Array:
    """Indices of batch ``step`` of an epoch, ``perm[step·B:(step+1)·B]``; ``step`` may be traced
    (checked when it is a Python int)."""
    if not hasattr(perm, "dtype") or getattr(perm, "ndim", 0) != 1 or not jnp.issubdtype(perm.dtype, jnp.integer):
        raise TypeError(f"`perm` must be a 1-D integer array, got {type(perm).__name__} "
                        f"{getattr(perm, 'dtype', '')} {list(getattr(perm, 'shape', ()))}")
    batch_size = check_int("batch_size", batch_size, low=1)
    if not hasattr(step, "dtype"):
        step = check_int("step", step, low=0)
        if (step + 1) * batch_size > perm.shape[0]:
            raise ValueError(f"`step` {step}: batch {step} of `batch_size` {batch_size} ends past the {perm.shape[0]} "
                             "indices of `perm`")
    return jax.lax.dynamic_slice_in_dim(perm, step * batch_size, batch_size)


def eval_batches(images, labels, batch_size: int):
    """Yield ``(images, labels, valid)`` batches of exactly ``batch_size`` (the last padded with
    image 0; ``valid`` is a bool mask of the real ones)."""
    if not hasattr(images, "shape") or not hasattr(labels, "dtype"):
        raise TypeError(f"`images` and `labels` must be arrays, got {type(images).__name__} and {type(labels).__name__}")
    check_ndim("labels", labels, 1, "[N]")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"`labels` must be integer class indices, got {labels.dtype}")
    check_same_leading(["images", "labels"], [images, labels])
    batch_size = check_int("batch_size", batch_size, low=1)
    n = images.shape[0]
    for start in range(0, n, batch_size):
        idx = jnp.arange(start, start + batch_size)
        valid = idx < n
        idx = jnp.where(valid, idx, 0)
        yield images[idx], labels[idx], valid
