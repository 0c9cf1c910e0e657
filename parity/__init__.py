"""Cross-framework verification: conversion, hypothesis strategies, the trick registry and its checks.

:mod:`parity.strategies` (``from parity import strategies``) holds the public hypothesis
strategies for images, labels, logits, keys, trick records and arrays.

Install with ``pip install "twintricks[parity]"`` (hypothesis, torch, jax, flax, optax); importing
``parity`` without them is an ImportError naming that extra.

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

import importlib.util as _util
import sys as _sys

#: what the checks need beyond twintricks itself: the ``parity`` extra of the distribution
EXTRA = "twintricks[parity]"
_NEEDS = ("hypothesis", "numpy", "torch", "jax", "flax", "optax")


def _missing(name: str) -> bool:
    if name in _sys.modules:
        return _sys.modules[name] is None
    try:
        return _util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


_absent = [n for n in _NEEDS if _missing(n)]
if _absent:
    raise ImportError(
        f"parity needs {', '.join(_absent)} (not installed): pip install \"{EXTRA}\" brings hypothesis, torch, jax, "
        "flax and optax"
    )

from parity.functions import check, function_check, run_check  # noqa: E402
from parity.modules import (  # noqa: E402
    ConversionError,
    WeightMap,
    check_module,
    flax_to_torch,
    map_weights,
    module_check,
    torch_to_flax,
)
from parity.optim_state import check_optimizer, optax_to_torch_state, optimizer_check, torch_to_optax_state  # noqa: E402
from parity.registry import Check, ParityError, Registry, Report, Trick, load_checks  # noqa: E402

__all__ = [
    "EXTRA",
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
