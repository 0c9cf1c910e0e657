"""The tricks as pure JAX functions (flax, optax). Images ``[N, H, W, C]``.

Never imports torch or torchvision. The public names mirror :mod:`torch_impl` one for one.

Exports are written once, in each module's ``__all__``: this package re-exports the ``__all__``
of every module in :data:`MODULES` (and the policy tables), so ``jax_impl.mixup`` is
:func:`jax_impl.mixing._mixup.mixup`; ``tests/test_completeness.py`` checks that the README's
names are among them.
"""

from twintricks.exports import reexport

#: The modules whose ``__all__`` this package re-exports, in this order (the same names in torch_impl).
MODULES = ("losses", "mixing", "erasing", "cropping", "policies", "optim")

__all__ = reexport(globals(), MODULES)

from twintricks.policies import OPS, POLICIES  # noqa: E402
from jax_impl import data, models, ops, train  # noqa: E402

__all__ += ["POLICIES", "OPS", "ops", "models", "data", "train"]
