"""A data set held on the device as uint8 ``[N, H, W, C]``, with batches cut on the device.

The whole training and test sets are put on the device once; an epoch is a
``jax.random.permutation`` and a batch a ``dynamic_slice`` of it followed by a gather — inside
the jitted training step, so no CPU data loader is involved and nothing leaves the device.

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

from twintricks.recipe import steps_per_epoch

__all__ = ["DeviceData", "epoch_permutation", "batch_indices", "eval_batches"]


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


def epoch_permutation(key, n: int) -> jax.Array:
    """A uniform random permutation of ``range(n)`` (int32)."""
    return jax.random.permutation(key, n).astype(jnp.int32)


def batch_indices(perm: jax.Array, step, batch_size: int) -> jax.Array:
    """Indices of batch ``step`` of an epoch, ``perm[step·B:(step+1)·B]``; ``step`` may be traced."""
    return jax.lax.dynamic_slice_in_dim(perm, step * batch_size, batch_size)


def eval_batches(images, labels, batch_size: int):
    """Yield ``(images, labels, valid)`` batches of exactly ``batch_size`` (the last padded with
    image 0; ``valid`` is a bool mask of the real ones)."""
    n = images.shape[0]
    for start in range(0, n, batch_size):
        idx = jnp.arange(start, start + batch_size)
        valid = idx < n
        idx = jnp.where(valid, idx, 0)
        yield images[idx], labels[idx], valid
