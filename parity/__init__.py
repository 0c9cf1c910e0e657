"""Cross-framework verification: conversion, hypothesis strategies, the trick registry and its checks.

The only library package that imports both PyTorch and JAX (the command line in
:mod:`twintricks_cli` and the harness in :mod:`twintricks_bench` use it). Importing ``parity``
imports neither framework; each check imports them when it runs.

Check your own port (the README's section of that name has a worked example):

* :func:`check` — a torch function against a jax function on hypothesis-drawn inputs
  (:mod:`parity.functions`);
* :func:`check_module` — a torch ``nn.Module`` against a flax linen or NNX module, with weight
  conversion (:func:`map_weights`, :func:`torch_to_flax`, :func:`flax_to_torch`) and the first
  differing layer named on a disagreement (:mod:`parity.modules`);
* :func:`check_optimizer` — a torch optimizer against an optax transformation, and optimizer
  state conversion both ways (:mod:`parity.optim_state`); :mod:`parity.runs` moves a training
  run between the two trainers;
* :func:`function_check`, :func:`module_check`, :func:`optimizer_check` build the same checks
  as :class:`Trick` records for a :class:`Registry`: ``twintricks parity --checks MODULE`` runs a
  module's ``CHECKS`` list (or its ``register(registry)``), see :func:`load_checks`.
"""

from parity.functions import check, function_check, run_check
from parity.modules import ConversionError, WeightMap, check_module, flax_to_torch, map_weights, module_check, torch_to_flax
from parity.optim_state import check_optimizer, optax_to_torch_state, optimizer_check, torch_to_optax_state
from parity.registry import Check, ParityError, Registry, Report, Trick, load_checks

__all__ = [
    "check",
    "function_check",
    "run_check",
    "check_module",
    "module_check",
    "map_weights",
    "torch_to_flax",
    "flax_to_torch",
    "ConversionError",
    "WeightMap",
    "check_optimizer",
    "optimizer_check",
    "torch_to_optax_state",
    "optax_to_torch_state",
    "Registry",
    "Check",
    "Trick",
    "Report",
    "ParityError",
    "load_checks",
]
