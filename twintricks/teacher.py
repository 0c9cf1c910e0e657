"""A distillation teacher's file, read without running anything: which format it is, which model
its weights are for, and the weights as NumPy.

:func:`read_teacher` accepts

* a twintricks checkpoint written by either backend (:mod:`twintricks.checkpoint`); it names its
  model, width and framework;
* a safetensors file of a torch ``state_dict`` from elsewhere
  (``safetensors.torch.save_file(model.state_dict(), path)``);
* a torch file of a ``state_dict`` (``torch.save(model.state_dict(), path)``), read with
  ``torch.load(path, weights_only=True)``, torch's restricted unpickler: this needs torch
  installed, whatever the backend (the one place this package imports torch, when it is asked
  to read such a file).

Each backend's loader (:func:`torch_impl.teacher.load_teacher`, :func:`jax_impl.teacher.load_teacher`)
converts the weights to its layout (:mod:`twintricks.weights`) and checks them against the model
it builds. Every problem is a one-line :class:`~twintricks.checkpoint.CheckpointError` naming the
file and what does not fit.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twintricks.checkpoint import CheckpointError, is_safetensors, load_checkpoint, read_safetensors
from twintricks.models import MODELS

__all__ = ["TEACHER_KINDS", "TeacherFile", "read_teacher", "plain_state_dict", "check_model", "convert", "one_line"]

TEACHER_KINDS = "a twintricks checkpoint, a safetensors file of a torch state_dict, or a torch state_dict file"


@dataclass(frozen=True)
class TeacherFile:
    """What a teacher file holds: its model's ``name`` and ``width``, the ``framework`` whose
    layout ``weights`` are in (``"torch"``: a torch-named ``state_dict`` of NumPy arrays;
    ``"jax"``: linen variables ``{"params", "batch_stats"}``)."""

    path: str
    name: str
    width: int | None
    framework: str
    weights: dict


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (torch's weights-only refusal: the line that says what
    it refused)."""
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    for x in lines:
        if "unsupported" in x.lower():
            return x
    return " ".join(" ".join(lines).split())[:300] if lines else type(exc).__name__


def _is_twintricks_file(path, head: bytes) -> bool:
    """A format-1 checkpoint, or a safetensors file whose header is unreadable (load_checkpoint
    then says why) or carries twintricks' metadata. ``head``: the file's first bytes."""
    if head.startswith(b"TWINTRICKS-CKPT1"):
        return True
    if not is_safetensors(head):
        return False
    (n,) = struct.unpack("<Q", head[:8])
    try:
        with open(path, "rb") as f:
            f.seek(8)
            header = json.loads(f.read(min(n, 1 << 28)).decode("utf-8"))
        return header.get("__metadata__", {}).get("format") == "twintricks-checkpoint"
    except Exception:
        return True


def _read_torch_file(path: str) -> dict:
    try:
        import torch
    except ImportError:
        raise CheckpointError(
            f"teacher {path!r} is a torch file, which needs torch installed to read (pip install 'twintricks[torch]'); "
            "or save the state_dict with safetensors.torch.save_file"
        ) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)  # torch's restricted unpickler
    except Exception as exc:
        raise CheckpointError(f"teacher {path!r} cannot be read as a torch state_dict (weights_only=True): {one_line(exc)}") from None
    if not (isinstance(obj, dict) and obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())):
        inner = [k for k, v in obj.items() if isinstance(v, dict)] if isinstance(obj, dict) else []
        hint = f" (a dict holding {inner[:4]}: save model.state_dict() itself)" if inner else ""
        raise CheckpointError(f"teacher {path!r} holds a {type(obj).__name__}, not a state_dict of tensors by name{hint}")
    return {k: v.detach().cpu().float().numpy() if v.is_floating_point() else v.detach().cpu().numpy() for k, v in obj.items()}


def plain_state_dict(sd: dict) -> dict:
    """Torch-named weights as NumPy: DataParallel's ``module.`` prefix dropped, floating arrays as
    float32 (what the models hold; ``load_state_dict`` would cast the same way), BatchNorm's
    ``num_batches_tracked`` added as 0 where missing (it does not affect the forward pass)."""
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    out = {}
    for k, v in sd.items():
        v = np.asarray(v)
        out[k] = v.astype(np.float32) if v.dtype.kind in "fV" and v.dtype != np.float32 else v
    for k in list(out):
        if k.endswith(".running_mean"):
            out.setdefault(k[: -len("running_mean")] + "num_batches_tracked", np.array(0, np.int64))
    return out


def _first_conv(sd: dict) -> str | None:
    return next((k for k in ("conv1.conv.weight", "conv1.weight") if k in sd), None)


def read_teacher(path: str, num_classes: int, *, model: str | None = None, width: int | None = None) -> TeacherFile:
    """Read the teacher file ``path`` (see the module docstring) for a data set of ``num_classes``.

    A checkpoint names its model and width (``model``/``width``, when given, must agree with it).
    For a ``state_dict`` file the model is ``model``/``width`` when given, else read off the
    weights (``conv1.conv.weight``: fastnet, ``conv1.weight`` with ``layer1.0.conv3.*``: resnet50 —
    torchvision's ``resnet50`` state_dict loads as it is —, with other ``layer1.*``: resnet18; the
    width is the first convolution's output channels); a ``module.`` prefix (DataParallel) is
    dropped. Nothing in the file is executed.
    """
    p = Path(path)
    if p.is_dir():
        raise CheckpointError(f"teacher {path!r} is a directory, not a checkpoint file")
    if not p.is_file():
        raise CheckpointError(f"teacher {path!r} does not exist" if not p.exists() else f"teacher {path!r} is not a regular file")
    try:
        with open(p, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise CheckpointError(f"teacher {path!r} cannot be read: {exc.strerror or exc}") from None
    if _is_twintricks_file(p, head):
        payload = load_checkpoint(p)  # refuses format-1 pickles, says how to convert a trusted one
        name, w, fw, weights = payload.get("model_name"), payload.get("width"), payload.get("framework"), payload.get("model")
        if fw not in ("torch", "jax") or not isinstance(weights, dict):
            raise CheckpointError(f"teacher {path!r} is a twintricks checkpoint without a torch or jax model")
        if payload.get("num_classes") != num_classes:
            raise CheckpointError(f"teacher {path!r} has {payload.get('num_classes')} classes, the data set has {num_classes}")
        if model is not None and model != name or width is not None and w is not None and width != w:
            given = " of width ".join(str(x) for x in (model, width) if x is not None)
            raise CheckpointError(f"teacher {path!r} is a {name} of width {w}, the teacher options say {given}")
        return TeacherFile(str(path), name, width if w is None else w, fw, weights)
    if is_safetensors(head):
        sd = read_safetensors(p)
    elif head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":  # torch.save's zip, or its older pickle format
        sd = _read_torch_file(str(p))
    else:
        raise CheckpointError(f"teacher {path!r} is not {TEACHER_KINDS}")
    sd = plain_state_dict(sd)
    conv = _first_conv(sd)
    name = model
    if name is None:
        if "conv1.conv.weight" in sd:
            name = "fastnet"
        elif "conv1.weight" in sd and "layer1.0.conv3.weight" in sd:
            name = "resnet50"  # Bottlenecks (torchvision's names)
        elif "conv1.weight" in sd and any(k.startswith("layer1.") for k in sd):
            name = "resnet18"
        else:
            raise CheckpointError(
                f"teacher {path!r}: cannot tell which model its weights are for (keys {sorted(sd)[:3]}...); "
                "give the teacher's model name"
            )
    w = width if width is not None else (int(sd[conv].shape[0]) if conv and sd[conv].ndim == 4 else None)
    fc = sd.get("fc.weight")
    if fc is not None and fc.ndim == 2 and fc.shape[0] != num_classes:
        raise CheckpointError(f"teacher {path!r} has {fc.shape[0]} classes, the data set has {num_classes}")
    return TeacherFile(str(path), name, w, "torch", sd)


def convert(teacher: TeacherFile, framework: str, to_torch=None, to_jax=None, *, then=None) -> dict:
    """``teacher.weights`` in ``framework``'s layout: ``to_torch(weights)`` from jax's,
    ``to_jax(weights)`` from torch's, as they are otherwise, then ``then(weights)`` when given; a
    one-line error when they cannot be converted."""
    try:
        weights = teacher.weights
        if framework == "torch" and teacher.framework == "jax":
            weights = to_torch(weights)
        elif framework == "jax" and teacher.framework == "torch":
            weights = to_jax(weights)
        return weights if then is None else then(weights)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(
            f"teacher {teacher.path!r} has weights that cannot be converted for {framework}: {one_line(exc)}"
        ) from None


def check_model(teacher: TeacherFile, num_classes: int) -> str:
    """Raise when the teacher names no model of :data:`twintricks.models.MODELS` or a bad width;
    else the prefix of a does-not-fit message for the backend's check of its weights."""
    name, width = teacher.name, teacher.width
    if name not in MODELS or not (width is None or type(width) is int and width >= 1):
        raise CheckpointError(f"teacher {teacher.path!r} names an unknown model {name!r} of width {width!r}")
    return f"teacher {teacher.path!r} does not fit a {name} of width {width} with {num_classes} classes"
