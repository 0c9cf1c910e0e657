"""A trained distillation teacher for :class:`torch_impl.train.Trainer`, from any teacher file
(:func:`twintricks.teacher.read_teacher`: a checkpoint of either backend, a safetensors or torch
``state_dict`` file), as a torch-named ``state_dict`` of NumPy arrays checked against the model.
"""

from __future__ import annotations

import torch

from torch_impl.models import create_model
from twintricks.checkpoint import CheckpointError
from twintricks.teacher import check_model, convert, one_line, plain_state_dict, read_teacher
from twintricks.weights import flax_to_torch_state_dict

__all__ = ["load_teacher"]


def load_teacher(path: str, num_classes: int, *, model: str | None = None, width: int | None = None, in_channels: int = 3):
    """``(model_name, width, state_dict)`` of the teacher in ``path``: the weights in torch's names
    and layout (converted from a jax checkpoint's), loaded name by name and shape by shape into the
    model built with ``num_classes`` classes and ``in_channels`` input channels, so that a
    :class:`~twintricks.checkpoint.CheckpointError` says in one line what does not fit.
    ``model``/``width``: the teacher's model when the file does not name it (see
    :func:`twintricks.teacher.read_teacher`).
    """
    teacher = read_teacher(path, num_classes, model=model, width=width)
    weights = convert(teacher, "torch", to_torch=flax_to_torch_state_dict, then=plain_state_dict)
    what = check_model(teacher, num_classes)
    net = create_model(teacher.name, num_classes, width=teacher.width, in_channels=in_channels)
    try:
        net.load_state_dict({k: torch.as_tensor(v) for k, v in weights.items()})
    except (RuntimeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{what}: {one_line(exc)}") from None
    return teacher.name, teacher.width, weights
