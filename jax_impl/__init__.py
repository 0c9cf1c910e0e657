"""The tricks as pure JAX functions (flax, optax). Images are ``[N, H, W, C]``.

Never imports torch or torchvision. The public names mirror :mod:`torch_impl` one for one.
"""

from jax_impl import data, models, ops, train
from jax_impl.losses import (
    smooth_labels,
    soft_target_cross_entropy,
    label_smoothing_cross_entropy,
    distillation_loss,
    kd_loss,
)
from jax_impl.mixing import (
    MixupParams,
    sample_mixup_params,
    mixup,
    random_mixup,
    RicapParams,
    sample_ricap_params,
    ricap,
    random_ricap,
)
from jax_impl.erasing import (
    CutoutParams,
    sample_cutout_params,
    cutout,
    random_cutout,
)
from jax_impl.cropping import (
    ResizedCropParams,
    sample_resized_crop_params,
    resized_crop,
    FlipParams,
    sample_flip_params,
    hflip,
    random_resized_crop_flip,
)
from jax_impl.policies import (
    AutoAugmentParams,
    sample_autoaugment_params,
    autoaugment,
    random_autoaugment,
)
from twintricks.policies import OPS, POLICIES
from jax_impl.optim import (
    ScaleByAdaBoundState,
    scale_by_adabound,
    adabound,
    amsbound,
    adaboundw,
)

__all__ = [
    "smooth_labels",
    "soft_target_cross_entropy",
    "label_smoothing_cross_entropy",
    "distillation_loss",
    "kd_loss",
    "MixupParams",
    "sample_mixup_params",
    "mixup",
    "random_mixup",
    "RicapParams",
    "sample_ricap_params",
    "ricap",
    "random_ricap",
    "CutoutParams",
    "sample_cutout_params",
    "cutout",
    "random_cutout",
    "ResizedCropParams",
    "sample_resized_crop_params",
    "resized_crop",
    "FlipParams",
    "sample_flip_params",
    "hflip",
    "random_resized_crop_flip",
    "POLICIES",
    "OPS",
    "AutoAugmentParams",
    "sample_autoaugment_params",
    "autoaugment",
    "random_autoaugment",
    "ScaleByAdaBoundState",
    "scale_by_adabound",
    "adabound",
    "amsbound",
    "adaboundw",
    "ops",
    "models",
    "data",
    "train",
]
