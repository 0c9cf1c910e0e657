"""AutoAugment-family metadata, framework-free: the image operations, their magnitude bins, the policies.

Both backends (:mod:`torch_impl.policies`, :mod:`jax_impl.policies`), ``parity`` and the benchmarks
read these; nothing here imports torch or jax.

* :data:`OPS`: every operation a policy can name, in the order of their integer ids (a backend's
  per-image ``op`` arrays index into it); :data:`OP_KINDS` says what per-image argument each takes
  and :data:`OP_FUNCTIONS` names the backend function (``torch_impl.ops.<name>`` /
  ``jax_impl.ops.<name>``) that applies it;
* :data:`SIGNED_OPS` (the magnitude is negated with probability 1/2), :data:`GEOMETRIC_OPS` (one
  affine warp each) and :data:`LUT_OPS` (on uint8 images a per-image lookup table (LUT) of the
  256 values applies them);
* :func:`magnitude_bins`: torchvision's magnitude bins of an op for an image size;
* :data:`POLICIES`: AutoAugment's policies by name (:data:`POLICY_NAMES`), each a tuple of
  sub-policies of two ``(op, probability, magnitude bin)``; :func:`policy_arrays` flattens one
  for an image size.

* the other policy families, torchvision v2's RandAugment, TrivialAugmentWide and AugMix
  (:data:`FAMILIES`): their op sets (:data:`FAMILY_OPS`, in torchvision's order, ``"Identity"``
  included), their magnitude bins (:func:`family_bins`) and :func:`family_arrays`, the per-op
  tables the backends index with each image's (op, bin, sign).

References:
    Cubuk, Zoph, Mané, Vasudevan, Le. "AutoAugment: Learning Augmentation Strategies from Data",
    CVPR 2019. Cubuk, Zoph, Shlens, Le. "RandAugment: Practical automated data augmentation with a
    reduced search space", CVPR Workshops 2020. Müller, Hutter. "TrivialAugment: Tuning-free Yet
    State-of-the-Art Data Augmentation", ICCV 2021. Hendrycks, Mu, Cubuk, Zoph, Gilmer,
    Lakshminarayanan. "AugMix: A Simple Data Processing Method to Improve Robustness and
    Uncertainty", ICLR 2020. torchvision ``transforms.v2`` (``_auto_augment.py``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from twintricks.checks import check_choice, check_int, check_real

__all__ = [
    "OPS",
    "OP_KINDS",
    "OP_FUNCTIONS",
    "SIGNED_OPS",
    "GEOMETRIC_OPS",
    "LUT_OPS",
    "STATIC_LUT_OPS",
    "PLACEHOLDER_MAGNITUDES",
    "POLICIES",
    "POLICY_NAMES",
    "PolicyArrays",
    "magnitude_bins",
    "policy_arrays",
    "policy_name",
    "FAMILIES",
    "FAMILY_OPS",
    "RANDAUGMENT_OPS",
    "TRIVIALAUGMENT_WIDE_OPS",
    "AUGMIX_OPS",
    "AUGMIX_PARTIAL_OPS",
    "AUGMIX_NUM_BINS",
    "AUGMIX_MAX_DEPTH",
    "FamilyArrays",
    "family_bins",
    "family_arrays",
    "check_family_op",
    "check_num_bins",
    "check_randaugment_args",
    "check_augmix_args",
    "check_interpolation",
    "INTERPOLATIONS",
    "check_augmix_weights",
]

#: The operations, in the order their integer ids refer to.
OPS = (
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
    "Rotate",
    "Brightness",
    "Color",
    "Contrast",
    "Sharpness",
    "Posterize",
    "Solarize",
    "AutoContrast",
    "Equalize",
    "Invert",
)

#: What each operation's per-image argument is: ``"geometric"`` (a shear factor, pixels or
#: degrees), ``"enhance"`` (a blend magnitude ``m``, factor ``1 + m``), ``"bits"``,
#: ``"threshold"`` (a fraction of the maximum), or None (no argument).
OP_KINDS = {
    "ShearX": "geometric",
    "ShearY": "geometric",
    "TranslateX": "geometric",
    "TranslateY": "geometric",
    "Rotate": "geometric",
    "Brightness": "enhance",
    "Color": "enhance",
    "Contrast": "enhance",
    "Sharpness": "enhance",
    "Posterize": "bits",
    "Solarize": "threshold",
    "AutoContrast": None,
    "Equalize": None,
    "Invert": None,
}

#: The backends' function for each operation (``torch_impl.ops.shear_x``, ...).
OP_FUNCTIONS = {
    "ShearX": "shear_x",
    "ShearY": "shear_y",
    "TranslateX": "translate_x",
    "TranslateY": "translate_y",
    "Rotate": "rotate",
    "Brightness": "brightness",
    "Color": "color",
    "Contrast": "contrast",
    "Sharpness": "sharpness",
    "Posterize": "posterize",
    "Solarize": "solarize",
    "AutoContrast": "autocontrast",
    "Equalize": "equalize",
    "Invert": "invert",
}

#: Operations whose magnitude a policy negates with probability 1/2.
SIGNED_OPS = frozenset({"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast", "Sharpness"})
#: Operations that are one affine warp (nearest, ``fill`` outside).
GEOMETRIC_OPS = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
#: Operations that map every uint8 value through a function of the value and per-image
#: (per-channel) statistics: a per-image LUT of the 256 values applies them.
LUT_OPS = ("Brightness", "Contrast", "Posterize", "Solarize", "AutoContrast", "Equalize", "Invert")
#: The :data:`LUT_OPS` whose LUT depends on the magnitude alone, no image statistics (tabulated
#: once per magnitude).
STATIC_LUT_OPS = ("Brightness", "Posterize", "Solarize", "Invert")
#: The magnitude an op's kernel gets on the images that did not draw it, where a batched form runs
#: a kernel on more images than drew it and then keeps only theirs by a select: a value in the
#: op's range (Posterize's 8 bits, Solarize's threshold 1.0), 0.0 for every other op. Placeholders,
#: not identities: Solarize at 1.0 still inverts 255.
PLACEHOLDER_MAGNITUDES = {"Posterize": 8.0, "Solarize": 1.0}


def _f32(x: float) -> float:
    """Round a Python float to the nearest float32 (ties to even), in plain Python."""
    if x == 0.0 or not math.isfinite(x):
        return x
    mant, exp = math.frexp(x)
    return math.ldexp(round(mant * 2.0**24), exp - 24)


def _linspace(start: float, end: float, steps: int) -> tuple[float, ...]:
    """``torch.linspace(start, end, steps)`` (float32) in plain Python: ``start + step·i`` for the
    first half (``i < steps // 2``) and ``end - step·(steps - 1 - i)`` for the second, each fused
    and rounded once to float32."""
    start, end = _f32(start), _f32(end)
    step = _f32((end - start) / (steps - 1))
    half = steps // 2
    return tuple(_f32(start + step * i) if i < half else _f32(end - step * (steps - 1 - i)) for i in range(steps))


def _posterize_bins(top: int, levels: int, num_bins: int) -> tuple[float, ...]:
    """torchvision's ``(top - arange(num_bins) / ((num_bins - 1) / levels)).round().int()`` as floats
    (round half to even, like ``torch.round``; equal to torch's float32 evaluation for every
    ``num_bins`` in 2..199, checked in ``tests/test_policy_families.py``)."""
    return tuple(float(round(top - i / ((num_bins - 1) / levels))) for i in range(num_bins))


def magnitude_bins(op: str, height: int, width: int, num_bins: int = 10) -> tuple[float, ...] | None:
    """torchvision's ``num_bins`` magnitude bins of ``op`` for an image of that size (float32 values,
    as Python floats), or None for an operation without a magnitude."""
    if op in ("ShearX", "ShearY"):
        return _linspace(0.0, 0.3, num_bins)
    if op == "TranslateX":
        return _linspace(0.0, 150.0 / 331.0 * width, num_bins)
    if op == "TranslateY":
        return _linspace(0.0, 150.0 / 331.0 * height, num_bins)
    if op == "Rotate":
        return _linspace(0.0, 30.0, num_bins)
    if op in ("Brightness", "Color", "Contrast", "Sharpness"):
        return _linspace(0.0, 0.9, num_bins)
    if op == "Posterize":
        return _posterize_bins(8, 4, num_bins)
    if op == "Solarize":
        return _linspace(1.0, 0.0, num_bins)
    return None


#: torchvision's three AutoAugment policies: 25 sub-policies of two ``(op, probability, magnitude bin)``.
POLICIES = {
    "imagenet": (
        (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
        (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
        (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
        (("Solarize", 0.6, 3), ("Equalize", 0.6, None)),
        (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
        (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
        (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
        (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
        (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
        (("Equalize", 0.0, None), ("Equalize", 0.8, None)),
        (("Invert", 0.6, None), ("Equalize", 1.0, None)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
        (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
        (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
        (("ShearX", 0.6, 5), ("Equalize", 1.0, None)),
        (("Color", 0.4, 0), ("Equalize", 0.6, None)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Invert", 0.6, None), ("Equalize", 1.0, None)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
    ),
    "cifar10": (
        (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
        (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
        (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
        (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
        (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
        (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
        (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
        (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
        (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
        (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
        (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
        (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
        (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
        (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
        (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
        (("Color", 0.9, 9), ("Equalize", 0.6, None)),
        (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
        (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
        (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
        (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
        (("Equalize", 0.8, None), ("Invert", 0.1, None)),
        (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
    ),
    "svhn": (
        (("ShearX", 0.9, 4), ("Invert", 0.2, None)),
        (("ShearY", 0.9, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.6, None), ("Solarize", 0.6, 6)),
        (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Equalize", 0.6, None), ("Rotate", 0.9, 3)),
        (("ShearX", 0.9, 4), ("AutoContrast", 0.8, None)),
        (("ShearY", 0.9, 8), ("Invert", 0.4, None)),
        (("ShearY", 0.9, 5), ("Solarize", 0.2, 6)),
        (("Invert", 0.9, None), ("AutoContrast", 0.8, None)),
        (("Equalize", 0.6, None), ("Rotate", 0.9, 3)),
        (("ShearX", 0.9, 4), ("Solarize", 0.3, 3)),
        (("ShearY", 0.8, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.9, None), ("TranslateY", 0.6, 6)),
        (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Contrast", 0.3, 3), ("Rotate", 0.8, 4)),
        (("Invert", 0.8, None), ("TranslateY", 0.0, 2)),
        (("ShearY", 0.7, 6), ("Solarize", 0.4, 8)),
        (("Invert", 0.6, None), ("Rotate", 0.8, 4)),
        (("ShearY", 0.3, 7), ("TranslateX", 0.9, 3)),
        (("ShearX", 0.1, 6), ("Invert", 0.6, None)),
        (("Solarize", 0.7, 2), ("TranslateY", 0.6, 7)),
        (("ShearY", 0.8, 4), ("Invert", 0.8, None)),
        (("ShearX", 0.7, 9), ("TranslateY", 0.8, 3)),
        (("ShearY", 0.8, 5), ("AutoContrast", 0.7, None)),
        (("ShearX", 0.7, 2), ("Invert", 0.1, None)),
    ),
}

#: The policies' names, in :data:`POLICIES`' order.
POLICY_NAMES = tuple(POLICIES)


def policy_name(policy) -> str:
    """``policy`` checked against :data:`POLICY_NAMES` (torchvision's ``AutoAugmentPolicy`` enum works too)."""
    return check_choice("policy", getattr(policy, "value", policy), POLICY_NAMES)


class PolicyArrays(NamedTuple):
    """One policy flattened for an image size: per (sub-policy, slot) lists ``[25][2]``.

    Attributes:
        op_id: index into :data:`OPS`.
        prob: probability that the operation fires.
        magnitude: the unsigned magnitude of its bin (0.0 for operations without one).
        signed: whether the magnitude is negated with probability 1/2 (:data:`SIGNED_OPS`).
    """

    op_id: list
    prob: list
    magnitude: list
    signed: list


def policy_arrays(policy: str, height: int, width: int) -> PolicyArrays:
    """:data:`POLICIES` ``[policy]`` as :class:`PolicyArrays` for ``height × width`` images (plain Python)."""
    subs = POLICIES[policy]
    return PolicyArrays(
        op_id=[[OPS.index(op) for op, _, _ in sub] for sub in subs],
        prob=[[p for _, p, _ in sub] for sub in subs],
        magnitude=[[0.0 if b is None else magnitude_bins(op, height, width)[b] for op, _, b in sub] for sub in subs],
        signed=[[op in SIGNED_OPS for op, _, _ in sub] for sub in subs],
    )


# --------------------------------------------------------------------------------------------
# RandAugment, TrivialAugmentWide, AugMix (torchvision v2's op sets and bins)
# --------------------------------------------------------------------------------------------

#: The three families, by the names the backends' functions use.
FAMILIES = ("randaugment", "trivialaugment_wide", "augmix")

#: RandAugment's ops in torchvision v2's order (its ``_AUGMENTATION_SPACE``): AutoAugment's ops
#: without Invert, and Identity. Same magnitude ranges as AutoAugment's over ``num_magnitude_bins``.
RANDAUGMENT_OPS = ("Identity", *(op for op in OPS if op != "Invert"))
#: TrivialAugmentWide's ops (RandAugment's, in the same order) with wider magnitude ranges.
TRIVIALAUGMENT_WIDE_OPS = RANDAUGMENT_OPS
#: AugMix's ops with ``all_ops=True``, in torchvision's order: the nine of ``all_ops=False``
#: (:data:`AUGMIX_PARTIAL_OPS`, a prefix, so op ids mean the same with either) then the four
#: colour enhancements.
AUGMIX_OPS = (
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
    "Rotate",
    "Posterize",
    "Solarize",
    "AutoContrast",
    "Equalize",
    "Brightness",
    "Color",
    "Contrast",
    "Sharpness",
)
AUGMIX_PARTIAL_OPS = AUGMIX_OPS[:9]
#: AugMix's bins per op (torchvision's ``_PARAMETER_MAX``); ``severity`` draws among the first ones.
AUGMIX_NUM_BINS = 10
#: The deepest chain AugMix draws when ``chain_depth <= 0`` (depth uniform in 1..3).
AUGMIX_MAX_DEPTH = 3

FAMILY_OPS = {"randaugment": RANDAUGMENT_OPS, "trivialaugment_wide": TRIVIALAUGMENT_WIDE_OPS, "augmix": AUGMIX_OPS}

# Magnitude ranges ``(start, end)`` of the ops whose bins are a linspace; None: no magnitude.
_WIDE_RANGES = {
    "ShearX": (0.0, 0.99),
    "ShearY": (0.0, 0.99),
    "TranslateX": (0.0, 32.0),
    "TranslateY": (0.0, 32.0),
    "Rotate": (0.0, 135.0),
    "Brightness": (0.0, 0.99),
    "Color": (0.0, 0.99),
    "Contrast": (0.0, 0.99),
    "Sharpness": (0.0, 0.99),
    "Solarize": (1.0, 0.0),
}


def check_family_op(family: str, op: str) -> str:
    """``op`` checked against the family's op names (ValueError naming ``op`` otherwise)."""
    family = check_choice("family", family, FAMILIES)
    return check_choice("op", op, FAMILY_OPS[family])


def family_bins(family: str, op: str, num_bins: int, height: int, width: int) -> tuple[float, ...] | None:
    """torchvision v2's ``num_bins`` magnitude bins of ``op`` in ``family`` for an image of that size
    (float32 values as Python floats; integers for Posterize), or None for ops without a magnitude.

    * ``"randaugment"``: AutoAugment's ranges (:func:`magnitude_bins`) over ``num_bins``;
    * ``"trivialaugment_wide"``: shears and enhancements up to 0.99, translations up to 32 pixels
      whatever the size, rotations up to 135°, Posterize ``8 - i/((num_bins - 1)/6)`` rounded
      (8 down to 2 bits), Solarize 1 → 0;
    * ``"augmix"``: AutoAugment's ranges but translations up to a third of the side and Posterize
      ``4 - i/((num_bins - 1)/4)`` rounded (4 down to 0 bits); torchvision always uses
      :data:`AUGMIX_NUM_BINS` bins here.
    """
    op = check_family_op(family, op)
    num_bins = check_int("num_bins", num_bins, low=2)
    if op in ("Identity", "AutoContrast", "Equalize"):
        return None
    if family == "randaugment":
        return magnitude_bins(op, height, width, num_bins)
    if family == "trivialaugment_wide":
        if op == "Posterize":
            return _posterize_bins(8, 6, num_bins)
        return _linspace(*_WIDE_RANGES[op], num_bins)
    if op == "TranslateX":
        return _linspace(0.0, width / 3.0, num_bins)
    if op == "TranslateY":
        return _linspace(0.0, height / 3.0, num_bins)
    if op == "Posterize":
        return _posterize_bins(4, 4, num_bins)
    return magnitude_bins(op, height, width, num_bins)


class FamilyArrays(NamedTuple):
    """A family's ops for one bin count and image size, indexed by the family's op id ``k``.

    Attributes:
        op_id: ``[K]`` index into :data:`OPS` (-1 for Identity).
        magnitude: ``[K][num_bins]`` unsigned magnitudes (0.0 for ops without one).
        signed: ``[K]`` whether the magnitude is negated with probability 1/2 (:data:`SIGNED_OPS`).
    """

    op_id: list
    magnitude: list
    signed: list


def family_arrays(family: str, num_bins: int, height: int, width: int) -> FamilyArrays:
    """The family's ops as :class:`FamilyArrays` for ``num_bins`` bins and ``height × width`` images."""
    family = check_choice("family", family, FAMILIES)
    ops = FAMILY_OPS[family]
    mags = []
    for op in ops:
        bins = family_bins(family, op, num_bins, height, width)
        mags.append([0.0] * num_bins if bins is None else list(bins))
    return FamilyArrays(
        op_id=[-1 if op == "Identity" else OPS.index(op) for op in ops],
        magnitude=mags,
        signed=[op in SIGNED_OPS for op in ops],
    )


def check_num_bins(num_magnitude_bins) -> int:
    """``num_magnitude_bins``: an integer >= 2 (torchvision's Posterize bins divide by ``num_bins - 1``)."""
    return check_int("num_magnitude_bins", num_magnitude_bins, low=2)


def check_randaugment_args(num_ops, magnitude, num_magnitude_bins) -> tuple[int, int, int]:
    """RandAugment's arguments: ``num_ops >= 0``, ``num_magnitude_bins >= 2``, ``magnitude`` a bin
    index in ``[0, num_magnitude_bins)`` (ValueError naming the argument otherwise)."""
    num_ops = check_int("num_ops", num_ops, low=0)
    bins = check_num_bins(num_magnitude_bins)
    return num_ops, check_int("magnitude", magnitude, low=0, high=bins - 1), bins


def check_augmix_args(severity, mixture_width, chain_depth, alpha, all_ops) -> tuple[int, int, int, float, bool]:
    """AugMix's arguments: ``severity`` in ``[1, 10]``, ``mixture_width >= 1``, ``chain_depth`` an
    integer (``<= 0``: drawn in 1..3), ``alpha > 0``, ``all_ops`` a bool."""
    severity = check_int("severity", severity, low=1, high=AUGMIX_NUM_BINS)
    width = check_int("mixture_width", mixture_width, low=1)
    depth = check_int("chain_depth", chain_depth)
    alpha = check_real("alpha", alpha, low=0.0, low_inclusive=False)
    if not isinstance(all_ops, bool):
        raise TypeError(f"`all_ops` must be a bool, got {type(all_ops).__name__} {all_ops!r}")
    return severity, width, depth, alpha, all_ops


#: The interpolations of the geometric ops: torchvision's ``affine``/``rotate`` offer these two.
INTERPOLATIONS = ("nearest", "bilinear")


def check_interpolation(interpolation) -> str:
    """``interpolation``: ``"nearest"`` or ``"bilinear"`` (a string, any case, or torchvision's
    ``InterpolationMode``) → the lower-case name.

    Bicubic (and the PIL-only box, hamming, lanczos) is refused: torchvision's ``affine`` and
    ``rotate`` refuse it for tensors (``grid_sample`` offers it, torchvision's geometric kernels
    do not), so there would be no torchvision outcome to equal.
    """
    name = getattr(interpolation, "value", interpolation)
    if not isinstance(name, str):
        raise TypeError(
            f"`interpolation` must be 'nearest' or 'bilinear' (a string or torchvision's InterpolationMode), "
            f"got {type(interpolation).__name__} {interpolation!r}"
        )
    if name.lower() not in INTERPOLATIONS:
        raise ValueError(
            f"`interpolation` must be 'nearest' or 'bilinear' (torchvision's affine and rotate offer no other "
            f"for tensors), got {interpolation!r}"
        )
    return name.lower()


def check_augmix_weights(weights, eps: float) -> None:
    """AugMix's ``params.weights`` ``[N, 1 + W]`` (a float64 NumPy array of the record's values):
    finite, ``>= 0``, and each row summing to 1 within ``(W + 3)·eps`` (ValueError naming
    ``params.weights`` otherwise).

    ``eps``: the machine epsilon of the record's dtype. The tolerance's reason: the sampler's
    weights are ``[m_0, m_1·w_1, …, m_1·w_W]`` with ``m`` and ``w`` Dirichlet draws normalised in
    that dtype, so each of the ``1 + W`` entries carries at most about one rounding of its own and
    one inherited from its normalisation, and their sum a few more; ``(W + 3)·eps`` covers that and
    nothing a user could mean (a row summing to 0.999 saturates no pixel, but it is not AugMix).
    A NaN weight blackens the image, a negative one or a sum far from 1 saturates pixels, and the
    two backends then disagree (issue 22).
    """
    import numpy as np  # (framework-free: NumPy only)

    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0:
        return
    if not np.isfinite(w).all():
        raise ValueError("`params.weights` must be finite, got NaN or inf")
    if (w < 0).any():
        raise ValueError(f"`params.weights` must be >= 0, got a minimum of {float(w.min())!r}")
    tol = (w.shape[-1] + 2) * eps  # (1 + W) + 2 = W + 3
    err = np.abs(w.sum(axis=-1) - 1.0)
    if (err > tol).any():
        i = int(err.argmax())
        raise ValueError(
            f"`params.weights` rows must sum to 1 (within {tol:.2g}, float rounding), got {float(w.sum(axis=-1).flat[i])!r} in row {i}"
        )
