"""The streaming input pipeline: data sets of any size, decoded and cropped per image, on grain.

Framework-free (NumPy, Pillow, grain, array_record; never torch or jax): it yields uint8 NHWC
RGB batches that each backend only moves to its device (torch transposes to NCHW there).

.. code-block:: python

    from twintricks.data import STREAMING_DATASETS, open_source, Loader, Batch, BadImageError

    source = open_source("folder", "/data/imagenet", split="train")   # or "shards", "packed"
    loader = Loader(source, train=True, batch_size=256, image_size=224, seed=0,
                    process_index=rank, process_count=world)
    it = loader.iterator(epoch)
    for batch in it:                  # loader.steps_per_epoch batches of this process's rows
        batch.images                  # uint8 [b, 224, 224, 3]; labels int32 [b]; index int64 [b]
        state = it.get_state()        # JSON-able; loader.iterator(epoch, state=state) resumes
    loader.close()                    # (also a context manager)

Sources (:func:`open_source`; ``split`` is ``"train"`` or ``"test"``):

* ``"folder"``: ``PATH/train/<class>/<image>``, ``PATH/test/<class>/…`` or ``val/``
  (:class:`~twintricks.data.sources.FolderSource`), read lazily: the index holds paths and labels.
* ``"shards"``: webdataset tar shards ``PATH/train-*.tar`` (``key.jpg`` + ``key.cls``), indexed
  once and read at recorded offsets (:class:`~twintricks.data.shards.ShardSource`).
* ``"packed"``: ArrayRecord files written by ``twintricks data pack SRC DST``
  (:func:`~twintricks.data.pack.pack`, :class:`~twintricks.data.packed.PackedSource`).

All three are random-access: every guarantee below holds for each (see
:mod:`twintricks.data.shards` for what that costs tar shards).

Every source has ``classes``, ``num_classes``, ``len()``, ``fingerprint`` (a digest of the
index: names, sizes, labels — never times), ``skipped`` (``[(file, reason)]`` left out at index
time under ``on_bad_image="skip"``) and ``describe()`` (a JSON-able dict for ``config.json``).

The loader (:class:`~twintricks.data.pipeline.Loader`): with ``train=True`` each epoch is a
permutation of the index drawn from ``(seed, epoch)``, ``steps_per_epoch = len // batch_size``
(the short tail dropped), and each image is decoded, cropped with torchvision's
``RandomResizedCrop`` law *from the original*, resized to ``image_size`` (antialiased bilinear)
and flipped with p = 0.5, every draw keyed by ``(seed, epoch, global index)``
(:mod:`~twintricks.data.transforms`): the same image gets the same crop at any world size, worker
count or resume point. With ``train=False``: index order, shorter side to
``floor(image_size / 0.875)``, centre crop, ``steps_per_epoch = ceil(len / batch_size)``, the
last batch padded (``Batch.valid``). ``batch_size`` is the global batch; process ``p`` of ``P``
gets rows ``[p·b, (p+1)·b)``, ``b = batch_size / P``. A loader runs one grain pipeline over
consecutive epochs, so its worker processes start once: take one ``iterator()`` at a time (a
later call supersedes an earlier one), and ``loader.close()`` at the end.

Bad data: ``on_bad_image="error"`` (default) raises a one-line
:class:`~twintricks.data.errors.BadImageError` naming the file — at :func:`open_source` for
what the index can tell (no image extension, 0 bytes, not a regular file, a dangling link, an
empty class folder), when decoded otherwise (corrupt or truncated, not an image, unreadable, a
decompression bomb); ``"skip"`` leaves the file out at index time, or at decode time fills its
training row with the next usable image *with that image's label* (an evaluation row is marked
invalid), and lists it in ``source.skipped`` / ``Batch.skipped``. A worker that dies ends the
epoch with :class:`~twintricks.data.errors.LoaderWorkerError`, never a hang.

.. warning::
    The resize is Pillow's antialiased bilinear, within two levels of torchvision's uint8 kernel
    (1–3 % of values one level off on photographs; see :mod:`~twintricks.data.transforms`).
    EXIF orientation is not applied, as in ``ImageFolder``.

References:
    torchvision ``datasets.ImageFolder``, ``transforms.v2.RandomResizedCrop`` and the ImageNet
    reference recipe's evaluation (resize 256, centre crop 224); grain (google/grain).
"""

from __future__ import annotations

from twintricks.data.decode import IMAGE_EXTENSIONS, decode_rgb
from twintricks.data.errors import ON_BAD_IMAGE, BadImageError, LoaderWorkerError
from twintricks.data.kinds import STREAMING_DATASETS, open_source
from twintricks.data.pack import pack
from twintricks.data.packed import PackedSource
from twintricks.data.pipeline import Batch, EpochIterator, Loader
from twintricks.data.shards import ShardSource
from twintricks.data.sources import SPLITS, FolderSource, Source

__all__ = [
    "STREAMING_DATASETS", "ON_BAD_IMAGE", "SPLITS", "IMAGE_EXTENSIONS",
    "open_source", "pack", "Source", "FolderSource", "ShardSource", "PackedSource", "Loader", "EpochIterator", "Batch",
    "BadImageError", "LoaderWorkerError", "decode_rgb",
]
