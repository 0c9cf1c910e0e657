"""The kinds of streaming data set, and opening one by kind."""

from __future__ import annotations

from twintricks.checks import check_choice
from twintricks.data.packed import PackedSource
from twintricks.data.shards import ShardSource
from twintricks.data.sources import FolderSource, Source

__all__ = ["STREAMING_DATASETS", "open_source"]

#: The ``--dataset`` kinds that stream from disk.
STREAMING_DATASETS = ("folder", "shards", "packed")


def open_source(kind: str, path, *, split: str, on_bad_image: str = "error") -> Source:
    """One split of a data set on disk, indexed (see :mod:`twintricks.data`).

    Args:
        kind: one of :data:`STREAMING_DATASETS`.
        path: the data set's folder.
        split: ``"train"`` or ``"test"`` (``"test"`` also finds ``val/``).
        on_bad_image: ``"error"`` or ``"skip"`` for what the index can tell.

    Raises:
        ValueError: a bad argument or a path that is not such a data set, named;
            :class:`~twintricks.data.errors.BadImageError` (a ``ValueError``) for a bad file under ``"error"``.
    """
    check_choice("kind", kind, STREAMING_DATASETS)
    cls = {"folder": FolderSource, "shards": ShardSource, "packed": PackedSource}[kind]
    return cls(path, split=split, on_bad_image=on_bad_image)
