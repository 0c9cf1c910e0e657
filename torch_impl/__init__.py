"""The tricks as PyTorch functions and ``nn.Module``s. Images are ``[N, C, H, W]``.

Never imports jax, flax or optax. The public names mirror :mod:`jax_impl` one for one.
"""

from torch_impl import data, models, ops, train
from torch_impl.losses import (
    smooth_labels,
    soft_target_cross_entropy,
    label_smoothing_cross_entropy,
    distillation_loss,
    kd_loss,
    LabelSmoothingCrossEntropy,
    SoftTargetCrossEntropy,
    DistillationLoss,
)
from torch_impl.mixing import (
    MixupParams,
    sample_mixup_params,
    mixup,
    Mixup,
    RicapParams,
    sample_ricap_params,
    ricap,
    RICAP,
)
from torch_impl.erasing import (
    CutoutParams,
    sample_cutout_params,
    cutout,
    Cutout,
)
from torch_impl.cropping import (
    ResizedCropParams,
    sample_resized_crop_params,
    resized_crop,
    FlipParams,
    sample_flip_params,
    hflip,
    RandomResizedCropFlip,
)
from torch_impl.policies import (
    AutoAugmentParams,
    sample_autoaugment_params,
    autoaugment,
    AutoAugment,
)
from twintricks.policies import OPS, POLICIES
from torch_impl.optim import (
    AdaBound,
    AMSBound,
    AdaBoundW,
)

__all__ = [
    "smooth_labels",
    "soft_target_cross_entropy",
    "label_smoothing_cross_entropy",
    "distillation_loss",
    "kd_loss",
    "LabelSmoothingCrossEntropy",
    "SoftTargetCrossEntropy",
    "DistillationLoss",
    "MixupParams",
    "sample_mixup_params",
    "mixup",
    "Mixup",
    "RicapParams",
    "sample_ricap_params",
    "ricap",
    "RICAP",
    "CutoutParams",
    "sample_cutout_params",
    "cutout",
    "Cutout",
    "ResizedCropParams",
    "sample_resized_crop_params",
    "resized_crop",
    "FlipParams",
    "sample_flip_params",
    "hflip",
    "RandomResizedCropFlip",
    "POLICIES",
    "OPS",
    "AutoAugmentParams",
    "sample_autoaugment_params",
    "autoaugment",
    "AutoAugment",
    "AdaBound",
    "AMSBound",
    "AdaBoundW",
    "ops",
    "models",
    "data",
    "train",
]
