"""A data set held on the device as uint8 ``[N, C, H, W]``, with batches cut on the device.

The whole training and test sets are copied to the device once (CIFAR-10 is 184 MB as uint8);
an epoch is a ``torch.randperm`` drawn on the device from the run's ``torch.Generator`` and a
batch is a gather of ``batch_size`` indices, so no CPU data loader is involved.

Batch shapes are static, so a compiled step never recompiles:

* training **drops** the last short batch of an epoch (``len(train) // batch_size`` steps; the
  dropped images differ from epoch to epoch because the permutation does);
* evaluation **pads** the last batch (repeating image 0) and masks the padding out of the sums,
  so every test image is counted exactly once.
"""

from __future__ import annotations

import numpy as np
import torch

from twintricks.recipe import steps_per_epoch

__all__ = ["DeviceData", "epoch_permutation", "batch_indices", "eval_batches"]


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


def epoch_permutation(n: int, *, generator: torch.Generator, device=None) -> torch.Tensor:
    """A uniform random permutation of ``range(n)`` drawn on the generator's device."""
    return torch.randperm(n, generator=generator, device=generator.device).to(device or generator.device)


def batch_indices(perm: torch.Tensor, step: int, batch_size: int) -> torch.Tensor:
    """Indices of batch ``step`` of an epoch: ``perm[step·B:(step+1)·B]`` (always ``B`` of them)."""
    return perm[step * batch_size : (step + 1) * batch_size]


def eval_batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int):
    """Yield ``(images, labels, valid)`` batches of exactly ``batch_size`` (the last padded with
    image 0; ``valid`` is a bool mask of the real ones)."""
    n = images.shape[0]
    for start in range(0, n, batch_size):
        idx = torch.arange(start, start + batch_size, device=images.device)
        valid = idx < n
        idx = torch.where(valid, idx, torch.zeros_like(idx))
        yield images[idx], labels[idx], valid
