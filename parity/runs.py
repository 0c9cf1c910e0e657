"""Move a training run between :class:`torch_impl.train.Trainer` and :class:`jax_impl.train.Trainer`.

The weights, the BatchNorm statistics, the optimizer state (moments and step count, see
:mod:`parity.optim_state`) and the step counter move through the trainers' public
``get_state``/``set_state``; the run continues where it was — same learning rate (both read the
schedule at the step count), same moments — instead of restarting its optimizer.

.. warning:: The random streams do not move: a ``torch.Generator``'s state has no meaning to
   ``jax.random``. The run continues with the receiving trainer's own stream (its seed), so the
   augmentation draws after the move differ from those the original run would have made.
"""

from __future__ import annotations

import jax
import numpy as np

from parity.modules import map_weights
from parity.optim_state import optax_to_torch_state, torch_to_optax_state

__all__ = ["torch_run_to_jax", "jax_run_to_torch"]


def _check_pair(torch_trainer, jax_trainer) -> None:
    t, j = torch_trainer.config, jax_trainer.config
    for field in ("model", "width", "optimizer"):
        if getattr(t, field) != getattr(j, field):
            raise ValueError(f"the trainers differ in {field}: torch {getattr(t, field)!r}, jax {getattr(j, field)!r}")
    if torch_trainer.num_classes != jax_trainer.num_classes:
        raise ValueError(f"the trainers differ in num_classes: {torch_trainer.num_classes} vs {jax_trainer.num_classes}")


def torch_run_to_jax(torch_trainer, jax_trainer) -> None:
    """Load ``torch_trainer``'s model, BatchNorm statistics, optimizer state and step into
    ``jax_trainer`` (same model, width and optimizer; ValueError otherwise)."""
    _check_pair(torch_trainer, jax_trainer)
    wm = map_weights(torch_trainer.model, jax_trainer.variables)
    state = torch_trainer.get_state()
    flat = {}
    for key in wm.torch_keys():
        coll, path, arr = wm.leaf_to_flax(key, state["model"][key])
        node = flat.setdefault(coll, {})
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = arr
    opt_state = torch_to_optax_state(state["optimizer"], jax_trainer.state["opt_state"], wm)
    target = jax_trainer.get_state()
    target.update(
        model=flat,
        optimizer=[np.asarray(a) for a in jax.tree_util.tree_leaves(jax.device_get(opt_state))],
        step=int(state["step"]),
    )
    jax_trainer.set_state(target)


def jax_run_to_torch(jax_trainer, torch_trainer) -> None:
    """Load ``jax_trainer``'s model, BatchNorm statistics, optimizer state and step into
    ``torch_trainer`` (the inverse of :func:`torch_run_to_jax`)."""
    import torch

    _check_pair(torch_trainer, jax_trainer)
    variables = jax.device_get(jax_trainer.variables)
    wm = map_weights(torch_trainer.model, variables)
    target = torch_trainer.get_state()
    flat = {}
    for key in wm.torch_keys():
        coll, path = wm.flax_key(key)
        node = variables[coll]
        for p in path:
            node = node[p]
        flat[key] = wm.leaf_to_torch(key, node).astype(target["model"][key].dtype)
    for key, value in target["model"].items():
        flat.setdefault(key, value)  # num_batches_tracked: flax keeps no counter
    opt = optax_to_torch_state(jax.device_get(jax_trainer.state["opt_state"]), torch_trainer.optimizer, wm)

    def host(x):
        if isinstance(x, torch.Tensor):
            return x.detach().cpu().numpy().copy()
        if isinstance(x, dict):
            return {k: host(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return type(x)(host(v) for v in x)
        return x

    target.update(model=flat, optimizer=host(opt), step=int(jax_trainer.step))
    torch_trainer.set_state(target)
