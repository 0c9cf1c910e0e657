"""The tricks as PyTorch functions and ``nn.Module``s. Images ``[N, C, H, W]``.

Never imports jax, flax or optax. The public names mirror :mod:`jax_impl` one for one.

Exports are written once, in each module's ``__all__``: this package re-exports the ``__all__``
of every module in :data:`MODULES` (and the policy tables), so ``torch_impl.mixup`` is
:func:`torch_impl.mixing._mixup.mixup`; ``tests/test_completeness.py`` checks that the README's
names are among them.
"""

from twintricks.exports import reexport

#: The modules whose ``__all__`` this package re-exports, in this order (the same names in jax_impl).
MODULES = ("losses", "mixing", "erasing", "cropping", "policies", "optim")

__all__ = reexport(globals(), MODULES)

from twintricks.policies import OPS, POLICIES  # noqa: E402
from torch_impl import data, models, ops, train  # noqa: E402

__all__ += ["POLICIES", "OPS", "ops", "models", "data", "train"]
