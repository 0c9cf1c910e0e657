"""The tricks as PyTorch functions and ``nn.Module``s. Images are ``[N, C, H, W]``.

Never imports jax, flax or optax. The public names mirror :mod:`jax_impl` one for one.
"""

from torch_impl import autoaugment, cropping, data, erasing, losses, mixing, models, ops, optim, train
from torch_impl.autoaugment import *  # noqa: F401,F403
from torch_impl.cropping import *  # noqa: F401,F403
from torch_impl.erasing import *  # noqa: F401,F403
from torch_impl.losses import *  # noqa: F401,F403
from torch_impl.mixing import *  # noqa: F401,F403
from torch_impl.optim import *  # noqa: F401,F403

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
