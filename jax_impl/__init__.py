"""The tricks as pure JAX functions (flax, optax). Images are ``[N, H, W, C]``.

Never imports torch or torchvision. The public names mirror :mod:`torch_impl` one for one.
"""

from jax_impl import autoaugment, cropping, data, erasing, losses, mixing, models, ops, optim, train
from jax_impl.autoaugment import *  # noqa: F401,F403
from jax_impl.cropping import *  # noqa: F401,F403
from jax_impl.erasing import *  # noqa: F401,F403
from jax_impl.losses import *  # noqa: F401,F403
from jax_impl.mixing import *  # noqa: F401,F403
from jax_impl.optim import *  # noqa: F401,F403

__all__ = [
    *losses.__all__,
    *mixing.__all__,
    *erasing.__all__,
    *cropping.__all__,
    *autoaugment.__all__,
    *optim.__all__,
    "ops",
    "models",
    "data",
    "train",
]
