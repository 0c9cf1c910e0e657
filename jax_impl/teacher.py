"""A trained distillation teacher for :class:`jax_impl.train.Trainer`, from any teacher file
(:func:`twintricks.teacher.read_teacher`: a checkpoint of either backend, a safetensors or torch
``state_dict`` file), as linen variables ``{"params", "batch_stats"}`` checked against the model.
"""

from __future__ import annotations

import jax

from jax_impl.models import create_model, init_model
from twintricks.checkpoint import CheckpointError
from twintricks.teacher import check_model, convert, one_line, read_teacher
from twintricks.weights import torch_state_dict_to_flax

__all__ = ["load_teacher"]


def _shapes(tree) -> dict:
    return {jax.tree_util.keystr(p): tuple(getattr(x, "shape", ())) for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def load_teacher(path: str, num_classes: int, *, model: str | None = None, width: int | None = None, in_channels: int = 3):
    """``(model_name, width, variables)`` of the teacher in ``path``: linen variables (converted
    from a torch ``state_dict`` or a torch checkpoint's), checked leaf by leaf, name and shape,
    against the model built with ``num_classes`` classes for ``in_channels`` input channels, so
    that a :class:`~twintricks.checkpoint.CheckpointError` says in one line what does not fit.
    ``model``/``width``: the teacher's model when the file does not name it (see
    :func:`twintricks.teacher.read_teacher`).
    """
    teacher = read_teacher(path, num_classes, model=model, width=width)
    weights = convert(teacher, "jax", to_jax=torch_state_dict_to_flax)
    what = check_model(teacher, num_classes)
    net = create_model(teacher.name, num_classes, width=teacher.width)
    want = jax.eval_shape(lambda: init_model(net, jax.random.key(0), (32, 32, in_channels)))
    try:
        w, g = _shapes(want), _shapes(weights)
    except Exception as exc:
        raise CheckpointError(f"{what}: {one_line(exc)}") from None
    bad = [f"missing {k}" for k in w if k not in g] + [f"unexpected {k}" for k in g if k not in w]
    bad += [f"{k} has shape {g[k]}, the model's is {w[k]}" for k in w if k in g and g[k] != w[k]]
    if bad:
        raise CheckpointError(f"{what}: " + "; ".join(bad[:4]) + (f"; and {len(bad) - 4} more" if len(bad) > 4 else ""))
    return teacher.name, teacher.width, weights
