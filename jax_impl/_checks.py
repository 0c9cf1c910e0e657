"""Dtype and value checks for jax arrays (shape and scalar checks are in :mod:`twintricks.checks`).

Shapes and dtypes are static, so those checks run at trace time, inside ``jax.jit`` too. Value
checks that read array contents (labels in range, float images in [0, 1]) need concrete data:
they run in eager mode and are skipped for tracers (inside ``jit``/``vmap``), as documented in
each function that relies on them.

Arrays are jax arrays or anything NumPy reads (NumPy arrays, scalars). A PyTorch tensor is
refused with a ``TypeError`` that says what is expected (it is recognised by its type's module
name, so this package never imports torch).

Layout: images are ``[N, H, W, C]``. A channels-first array ``[N, C, H, W]`` passed by mistake has
the same rank, and most ops would return a result on the wrong axes, so :func:`check_images`
rejects the shapes where the mistake is detectable: the channel axis ``C`` is longer than 4 (more than RGBA)
while axis 1 (``H``) is 1 or 3 and ``W`` is not (``(8, 3, 32, 32)`` is an NCHW batch of 32x32 RGB
images, not 32-channel images 3 pixels high). Every other shape is accepted as NHWC: any batch
with 1 or 3 channels, any batch whose height is not 1 or 3 (whatever its channel count), and the
ambiguous shapes whose height and width are both 1 or 3. The rule mirrors
:func:`torch_impl._checks.check_images`'s.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from twintricks.checks import check_distribution_summary, check_ndim

__all__ = [
    "check_images",
    "check_floating",
    "check_labels",
    "check_record",
    "is_concrete",
    "hyperparameter",
    "check_soft_targets",
    "check_not_torch",
    "looks_channels_first",
]

_FOREIGN = ("torch", "torchvision")  # packages whose tensors NumPy cannot read as a dtype


def is_concrete(x) -> bool:
    """True when ``x``'s values are known (not a tracer under jit/vmap/grad). A concrete array
    closed over inside ``jit`` is concrete too: read its values with NumPy (``np.asarray``), never
    with a ``jnp`` reduction, which ``jit`` would trace."""
    return not isinstance(x, jax.core.Tracer)


def hyperparameter(name: str, value, check, placeholder: float):
    """A hyper-parameter that may be traced: a Python number or a concrete 0-d array is checked by
    ``check(name, number)`` and returned as that function returns it; a tracer (under ``jit``,
    ``vmap`` or ``grad``) must be a real scalar (per example under ``vmap``) and is returned as
    float32, its value unchecked (unknown at trace time). ``placeholder`` is a valid value that
    stands in for the tracer where a caller needs a Python number to check the other arguments.

    Returns ``(value, placeholder_or_checked_value)``.
    """
    if isinstance(value, jax.core.Tracer):
        if value.shape != () or not (jnp.issubdtype(value.dtype, jnp.floating) or jnp.issubdtype(value.dtype, jnp.integer)):
            raise TypeError(f"`{name}` must be a real scalar, got a traced array {value.dtype}{list(value.shape)}")
        return value.astype(jnp.float32), placeholder
    if hasattr(value, "shape") and hasattr(value, "dtype") and not isinstance(value, bool):
        check_not_torch(name, value)
        if np.shape(value) != () or np.asarray(value).dtype.kind not in "iuf":
            raise TypeError(f"`{name}` must be a real number, got an array {np.asarray(value).dtype}{list(np.shape(value))}")
        value = np.asarray(value).item()
    checked = check(name, value)
    return checked, checked


def check_not_torch(name: str, x, layout: str = "") -> None:
    """Refuse a PyTorch tensor (``TypeError``): jax_impl takes jax or NumPy arrays.

    Detected by the module of the value's type, without importing torch.
    """
    if type(x).__module__.split(".")[0] in _FOREIGN:
        want = f" {layout}" if layout else ""
        hint = (
            " (an NCHW torch batch converts with parity.convert.images_from_torch, or "
            "t.permute(0, 2, 3, 1).cpu().numpy())" if layout else " (convert with t.cpu().numpy())"
        )
        raise TypeError(
            f"`{name}` must be a jax or NumPy array{want}, got a {type(x).__module__.split('.')[0]} "
            f"{type(x).__name__}{hint}"
        )


def _dtype(x, name: str = "x"):
    check_not_torch(name, x)
    dt = getattr(x, "dtype", None)
    try:
        return np.dtype(dt if dt is not None else np.asarray(x).dtype)
    except TypeError:
        raise TypeError(f"`{name}` must be a jax or NumPy array, got {type(x).__name__} with dtype {dt!r}") from None


_IMAGE_CHANNELS = (1, 3)  # grey and RGB: the channel counts that identify the channel axis
_MAX_CHANNELS = 4  # up to RGBA: a channel axis this short may be real (2- and 4-channel images)


def looks_channels_first(shape) -> bool:
    """True when an ``[N, H, W, C]`` shape is detectably an ``[N, C, H, W]`` batch.

    ``C`` (axis 3) is more than 4, ``H`` (axis 1) is 1 or 3, and ``W`` (axis 2) is not: see the module
    docstring for why ambiguous shapes are accepted.
    """
    _, h, w, c = shape
    return c > _MAX_CHANNELS and h in _IMAGE_CHANNELS and w not in _IMAGE_CHANNELS


def check_images(name: str, images, *, allow_float: bool = True) -> tuple[int, int, int, int]:
    """Check an ``[N, H, W, C]`` batch of uint8 (or float, if allowed) images; return its shape.

    Raises ``TypeError`` for a torch tensor and ``ValueError`` for a shape that is detectably
    channels-first (:func:`looks_channels_first`).
    """
    check_not_torch(name, images, "[N, H, W, C]")
    if not hasattr(images, "shape") or not hasattr(images, "dtype"):
        raise TypeError(f"`{name}` must be an array [N, H, W, C], got {type(images).__name__}")
    check_ndim(name, images, 4, "[N, H, W, C]")
    dt = _dtype(images, name)
    if dt != np.uint8 and not (allow_float and jnp.issubdtype(dt, jnp.floating)):
        want = "uint8 or floating" if allow_float else "uint8"
        raise TypeError(f"`{name}` must have dtype {want}, got {dt}")
    if looks_channels_first(images.shape):
        raise ValueError(
            f"`{name}` must be [N, H, W, C] (channels last), got shape {tuple(images.shape)}, which looks like "
            f"[N, C, H, W] with C={images.shape[1]}: use images.transpose(0, 2, 3, 1)"
        )
    return tuple(images.shape)


def check_floating(name: str, x) -> None:
    """Check ``x`` is a floating-point array (logits, soft targets)."""
    check_not_torch(name, x)
    if not hasattr(x, "dtype"):
        raise TypeError(f"`{name}` must be an array, got {type(x).__name__}")
    if not jnp.issubdtype(_dtype(x, name), jnp.floating):
        raise TypeError(f"`{name}` must have a floating dtype, got {_dtype(x, name)}")


def check_labels(name: str, labels, num_classes: int) -> None:
    """Check ``labels`` are ``[N]`` integer class indices in ``[0, num_classes)``.

    The range check needs concrete values: it runs eagerly and is skipped under jit/vmap.
    """
    check_not_torch(name, labels)
    if not hasattr(labels, "dtype"):
        raise TypeError(f"`{name}` must be an array, got {type(labels).__name__}")
    check_ndim(name, labels, 1, "[N] of class indices")
    if not jnp.issubdtype(_dtype(labels, name), jnp.integer):
        raise TypeError(f"`{name}` must have an integer dtype, got {_dtype(labels, name)}")
    if is_concrete(labels) and labels.size:
        values = np.asarray(labels)  # NumPy: a concrete array closed over inside jit is read, not traced
        lo, hi = int(values.min()), int(values.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"`{name}` must lie in [0, {num_classes}), got values in [{lo}, {hi}]")


def check_record(name: str, record, record_type) -> None:
    """``record`` must be a ``record_type`` params NamedTuple whose fields are jax or NumPy arrays
    (``TypeError`` naming ``name``, or ``name.field`` for a PyTorch tensor inside it)."""
    if not isinstance(record, record_type):
        raise TypeError(f"`{name}` must be a {record_type.__name__}, got {type(record).__name__}")
    for field, value in zip(record._fields, record):
        check_not_torch(f"{name}.{field}", value)


def check_soft_targets(name: str, targets, axis: int = -1) -> None:
    """Soft targets are distributions along ``axis``: finite, ``>= 0``, summing to 1
    (:func:`twintricks.checks.check_distribution_summary`). Needs concrete values: runs eagerly
    (and on arrays closed over inside ``jit``, read with NumPy), skipped for tracers."""
    if not is_concrete(targets) or not targets.size:
        return
    t = np.asarray(targets, dtype=np.float64)
    finite = bool(np.isfinite(t).all())
    worst = float(np.abs(t.sum(axis) - 1).max()) if finite else 0.0
    check_distribution_summary(name, finite, float(t.min()), worst, t.shape[axis], float(jnp.finfo(targets.dtype).eps))
