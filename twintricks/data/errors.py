"""What the input pipeline raises for bad data and dead workers, and the ``on_bad_image`` policy.

* :class:`BadImageError` (a ``ValueError``): one file of the data set cannot be used — its
  message is one line, ``"<file>: <reason>"``, naming the file as the index lists it.
* :class:`LoaderWorkerError` (a ``RuntimeError``): a loader worker process died (killed, out of
  memory, a crash in a native decoder); iteration ends with it instead of waiting forever.
"""

from __future__ import annotations

from twintricks.checks import check_choice

__all__ = ["ON_BAD_IMAGE", "BadImageError", "LoaderWorkerError", "check_on_bad_image"]

#: What to do with a file that cannot be used: raise (``"error"``, the default) or leave it out,
#: count it and list it (``"skip"``).
ON_BAD_IMAGE = ("error", "skip")


class BadImageError(ValueError):
    """A file of the data set that cannot be decoded or read: ``"<file>: <reason>"``.

    Attributes:
        file: the file as the source's index names it (relative to the data set's root).
        reason: what is wrong with it, e.g. ``"empty file (0 bytes)"``.
    """

    def __init__(self, file: str, reason: str):
        self.file, self.reason = str(file), str(reason)
        super().__init__(f"{self.file}: {self.reason}")

    def __reduce__(self):  # crosses process boundaries (grain workers) with its fields
        return type(self), (self.file, self.reason)


class LoaderWorkerError(RuntimeError):
    """A loader worker process died; the message gives its exit status and what to try."""


def check_on_bad_image(value) -> str:
    """``value`` if it is one of :data:`ON_BAD_IMAGE`, else ``ValueError`` naming ``on_bad_image``."""
    return check_choice("on_bad_image", value, ON_BAD_IMAGE)
