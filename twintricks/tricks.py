"""The training recipe's tricks as data: their options, order, streams and exclusions.

:data:`TRICKS` lists every trick :class:`twintricks.recipe.TrainConfig` can switch on, in the
order a training step applies them (:data:`STAGES`):

1. ``geometry`` — on the uint8 batch: random resized crop + horizontal flip;
2. ``colour`` — on the uint8 batch: AutoAugment, RandAugment, TrivialAugmentWide, AugMix (their
   ops mix colour and geometric ops);
3. ``normalise`` — no trick: ``x/255``, then the data set's channel mean and std;
4. ``erasing`` — on the normalised batch: Cutout (fill 0 = the mean), then random erasing (as timm,
   on normalised images: its constant fill 0 is the mean, its random fills are standard-normal
   values in normalised units);
5. ``targets`` — label smoothing (folded into the soft targets when a ``mixing`` trick makes them;
   else the loss smooths the integer labels itself);
6. ``mixing`` — mixup, RICAP, or CutMix (alone, or switching with mixup as timm's ``Mixup``):
   mixed images and ``[N, K]`` soft targets;
7. ``loss`` — knowledge distillation against a frozen teacher's logits.

Each :class:`Trick` declares its :class:`Option`\\ s (the :class:`~twintricks.recipe.TrainConfig`
fields, their defaults, help text, checks and ``twintricks train`` flags — the config and the
command line are generated from them), whether it makes soft targets, the tricks it cannot be
combined with, the tricks it runs itself when both are on (``takes_over``), and a fixed *stream
id*. Each trick draws its parameters from its own random
stream: in jax the step's key folded with the id (``jax.random.fold_in``), in torch a
``torch.Generator`` seeded with :func:`stream_seed` ``(seed, id)``. So enabling, disabling or
adding a trick never changes another trick's draws for a seed. Ids are never reused or renumbered
(that would change the draws of existing recipes); a new trick takes the next free one.

A trick's *id* (:attr:`Trick.name`) names it everywhere: its recipe entry and step-parameter key,
its backends' wiring, its parity checks (:attr:`parity.compare.Check.trick`), its bench rows
(:attr:`twintricks_bench.cases.Row.trick`) and its row in the README's trick table. Its wiring sits
beside its kernels: the backend module :attr:`Trick.module` of ``torch_impl`` and of ``jax_impl``
holds a ``TRICK_IMPLS`` dict with a :class:`TrickImpl` (how the trainer samples and applies it)
under its id, and each backend's ``train.py`` collects them with :func:`collect_impls`;
``tests/test_completeness.py`` fails when a trick lacks any of its entries. Nothing here imports a
framework.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from twintricks.checks import check_choice, check_int, check_ordered_pair, check_real
from twintricks.erasing import ERASING_MODES
from twintricks.mixing import MIXUP_CUTMIX_MODES
from twintricks.policies import INTERPOLATIONS
from twintricks.models import MODELS
from twintricks.policies import POLICY_NAMES

__all__ = [
    "Option",
    "Trick",
    "OptionConflict",
    "flag_names",
    "TrickImpl",
    "STAGES",
    "TRICKS",
    "DATA_STREAM",
    "POLICIES",
    "trick_named",
    "stream_seed",
    "collect_impls",
    "TrickImpls",
    "target_classes",
    "real",
    "integer",
    "choice",
    "pair",
    "reals",
    "optional",
]

POLICIES = POLICY_NAMES

STAGES = ("geometry", "colour", "normalise", "erasing", "targets", "mixing", "loss")
#: Stream id 0 is reserved: model initialisation and the epochs' data order draw from the run's
#: seed itself (torch: ``torch.manual_seed(seed)`` and a generator seeded with ``seed``; jax: splits
#: of ``jax.random.key(seed)``); trick ids start at 1.
DATA_STREAM = 0

Check = Callable[[str, Any], Any]


# ----------------------------------------------------------------------------- checks


def real(*, low=None, high=None, low_inclusive=True, high_inclusive=True) -> Check:
    """A check for a finite real number in the interval (returns it as ``float``)."""

    def check(name, value):
        value = check_real(name, value, low=low, high=high, low_inclusive=low_inclusive, high_inclusive=high_inclusive)
        if not math.isfinite(value):
            raise ValueError(f"`{name}` must be a finite number, got {value!r}")
        return value

    return check


def integer(*, low=None, high=None) -> Check:
    """A check for an integer in ``[low, high]``."""
    return lambda name, value: check_int(name, value, low=low, high=high)


def choice(choices: Sequence[str]) -> Check:
    """A check for one of ``choices``."""
    return lambda name, value: check_choice(name, value, tuple(choices))


def pair(*, low=None, high=None, strict_low=False) -> Check:
    """A check for an ordered ``(min, max)`` pair of reals (returns a tuple)."""
    return lambda name, value: check_ordered_pair(name, tuple(value), low=low, high=high, strict_low=strict_low)


def reals(item: Check) -> Check:
    """A check for a sequence of values, each passing ``item`` (returns a tuple)."""

    def check(name, value):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise TypeError(f"`{name}` must be a sequence of numbers, got {value!r}")
        return tuple(item(f"{name}[{i}]", v) for i, v in enumerate(value))

    return check


def optional(inner: Check) -> Check:
    """``None`` or a value passing ``inner``."""
    return lambda name, value: None if value is None else inner(name, value)


# ----------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Option:
    """One setting of a training run: a :class:`~twintricks.recipe.TrainConfig` field and its
    ``twintricks train`` flag.

    Attributes:
        name: the config field (and ``config.json`` key).
        default: its default value (tuples for multi-valued options).
        help: the flag's help text.
        type: the value's type (``float``, ``int``, ``str``, ``bool``; for tuples the item type).
        check: ``check(name, value)`` returns the value normalised or raises ``ValueError`` /
            ``TypeError`` naming the field; ``None``: no check.
        flag: the command-line flag (default ``--`` + the name with ``-`` for ``_``). A ``bool``
            option is a switch: ``store_true`` when its default is ``False``, else ``store_false``
            (give the ``--no-...`` flag).
        metavar, choices, nargs: as in ``argparse``.
    """

    name: str
    default: Any
    help: str
    type: type = float
    check: Check | None = None
    flag: str | None = None
    metavar: Any = None
    choices: tuple | None = None
    nargs: Any = None

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


class OptionConflict(ValueError):
    """Options that are fine one by one but not together. The message names them as
    ```field```, so the command line can name its flags instead (:func:`flag_names`)."""


def flag_names(message: str, options) -> str:
    """``message`` with each ```field``` of ``options`` written as its flag (``--field-name``)."""
    for o in options:
        message = message.replace(f"`{o.name}`", o.cli_flag)
    return message


def _randaugment_bins(config) -> None:
    if config.randaugment and config.randaugment_magnitude >= config.randaugment_bins:
        raise OptionConflict(
            f"`randaugment_magnitude` must be below `randaugment_bins` ({config.randaugment_bins}): the bins are "
            f"0..{config.randaugment_bins - 1}, got {config.randaugment_magnitude}"
        )


def _pairs_need_even_batch(config) -> None:
    if config.cutmix and config.mix_mode == "pair" and config.batch_size % 2:
        raise OptionConflict(f"`mix_mode` pair mixes image i with N-1-i: `batch_size` must be even, got {config.batch_size}")


def _teacher_settings(config) -> None:
    """The teacher's settings without a teacher would do nothing (its model, width, temperature, weight)."""
    if config.teacher is None:
        given = [o.name for o in trick_named("distillation").options[1:] if getattr(config, o.name) != o.default]
        if given:
            names = ", ".join(f"`{n}`" for n in given)
            raise OptionConflict(f"{names} set(s) the distillation teacher, but there is no `teacher`: it would do nothing")


@dataclass(frozen=True)
class Trick:
    """One trick of the training recipe.

    Attributes:
        name: the trick's id: its key in the backends' ``TRICK_IMPLS``, in a step's parameter dict
            and in a checkpoint's random streams, the ``trick`` of its parity checks and bench
            rows, and its row in the README's trick table.
        title: what the trick is called in prose.
        stage: its place in :data:`STAGES`.
        stream: its fixed random-stream id (``None``: it draws nothing).
        module: the backend module that holds the trick's kernels and its :class:`TrickImpl` in
            ``TRICK_IMPLS`` (the same name in ``torch_impl`` and ``jax_impl``: ``"erasing"``, or
            the package ``"mixing"``, which gathers its per-trick modules' entries).
        options: its config fields; the first one switches it on (the trick is off while that
            field is ``False``, ``0``, ``None``).
        example: settings of its options that switch it on (a :class:`~twintricks.recipe.TrainConfig`
            keyword dict), used by the tests that run every trick (``tests/test_train.py``).
        soft_targets: it turns the targets into ``[N, K]`` soft targets.
        excludes: tricks that cannot run with this one, and ``exclusion`` why (list the pair on
            both sides).
        takes_over: tricks this one runs itself when both are switched on (reading their
            options): those then draw and apply nothing of their own
            (:meth:`~twintricks.recipe.TrainConfig.enabled_tricks` leaves them out).
        options_need_switch: its other options are refused while it is off (they would silently
            do nothing; e.g. ``--mix-prob`` without ``--cutmix``).
        cross_check: a check of its options together (``cross_check(config)``, run by
            :class:`~twintricks.recipe.TrainConfig`), raising :class:`OptionConflict`: what one
            option's own check cannot see (RandAugment's magnitude below its bin count).
    """

    name: str
    title: str
    stage: str
    stream: int | None
    module: str
    options: tuple[Option, ...]
    example: dict
    soft_targets: bool = False
    excludes: tuple[str, ...] = ()
    exclusion: str = ""
    takes_over: tuple[str, ...] = ()
    options_need_switch: bool = False
    cross_check: Callable[[Any], None] | None = None

    @property
    def switch(self) -> Option:
        return self.options[0]

    def enabled(self, config) -> bool:
        """Whether ``config`` (a :class:`~twintricks.recipe.TrainConfig`) switches this trick on."""
        return bool(getattr(config, self.switch.name))


class TrickImpl(NamedTuple):
    """How one backend's trainer runs one trick: its entry in ``TRICK_IMPLS`` of the backend module
    :attr:`Trick.module`, beside the trick's kernels.

    ``sample`` draws the step's parameters (a params record, or a tuple of them) for a batch of
    ``batch_size`` images: ``sample(batch_size, trainer, generator)`` in ``torch_impl`` (on the
    trick's ``torch.Generator``), ``sample(key, batch_size, trainer)`` in ``jax_impl`` (from the
    trick's key). ``apply(x, targets, params, trainer)`` returns the new ``(x, targets)``. Both
    read the trick's settings from ``trainer.config`` and the batch's geometry from the trainer
    (``image_size`` ``(H, W)``, ``channels``, ``num_classes``, ``device`` in torch). ``None``: the
    trick draws nothing / is not applied to the batch (it acts in the trainer's loss).
    """

    sample: Callable | None = None
    apply: Callable | None = None


def target_classes(targets, trainer) -> int | None:
    """The ``num_classes`` a mixing kernel needs: the trainer's for integer labels (the kernel
    one-hot encodes them), ``None`` for ``[N, K]`` soft targets (taken as they are)."""
    return None if targets.ndim == 2 else trainer.num_classes


#: ``crop_scale`` when none is given: torchvision's ``RandomResizedCrop`` default (the ImageNet
#: recipe) for streamed images, and a milder floor for the 32 px in-memory sets, where a crop of
#: 8% of the image would be a few pixels wide (the value this project has always used there).
CROP_SCALE_STREAMED = (0.08, 1.0)
CROP_SCALE_IN_MEMORY = (0.35, 1.0)


TRICKS: tuple[Trick, ...] = (
    Trick(
        "crop_flip",
        "random resized crop + horizontal flip",
        stage="geometry",
        stream=1,
        module="cropping",
        options=(
            Option("crop_flip", False, "random resized crop + horizontal flip", type=bool),
            Option("crop_scale", None, "crop area as a fraction of the image (default: 0.08 1.0, torchvision's "
                   "RandomResizedCrop, for folder/shards/packed; 0.35 1.0 for the 32 px digits/cifar10)",
                   check=optional(pair(low=0.0, high=1.0, strict_low=True)), metavar=("MIN", "MAX"), nargs=2),
        ),
        example={"crop_flip": True},
    ),
    Trick(
        "autoaugment",
        "AutoAugment",
        stage="colour",
        stream=2,
        module="policies",
        options=(
            Option("autoaugment", None, "AutoAugment policy (one sub-policy per image)", type=str,
                   check=optional(choice(POLICIES)), metavar="POLICY", choices=POLICIES),
            Option("autoaugment_interpolation", "nearest", "AutoAugment: interpolation of the geometric ops (bilinear: torchvision's reference recipe)", type=str,
                   check=choice(INTERPOLATIONS), choices=INTERPOLATIONS, metavar="MODE"),
        ),
        example={"autoaugment": "cifar10"},
        options_need_switch=True,
    ),
    Trick(
        "randaugment",
        "RandAugment",
        stage="colour",
        stream=8,
        module="policies",
        options=(
            Option("randaugment", False, "RandAugment (torchvision v2's ops and bins; ops and signs drawn per image)", type=bool),
            Option("randaugment_ops", 2, "RandAugment: operations per image", type=int, check=integer(low=0), metavar="N"),
            Option("randaugment_magnitude", 9, "RandAugment: the magnitude bin (below --randaugment-bins)", type=int,
                   check=integer(low=0), metavar="M"),
            Option("randaugment_bins", 31, "RandAugment: number of magnitude bins", type=int, check=integer(low=2), metavar="B"),
            Option("randaugment_interpolation", "nearest", "RandAugment: interpolation of the geometric ops (bilinear: torchvision's reference recipe)", type=str,
                   check=choice(INTERPOLATIONS), choices=INTERPOLATIONS, metavar="MODE"),
        ),
        example={"randaugment": True},
        options_need_switch=True,
        cross_check=_randaugment_bins,
    ),
    Trick(
        "trivialaugment",
        "TrivialAugmentWide",
        stage="colour",
        stream=9,
        module="policies",
        options=(
            Option("trivialaugment", False, "TrivialAugmentWide (one op, bin and sign drawn per image)", type=bool),
            Option("trivialaugment_bins", 31, "TrivialAugmentWide: number of magnitude bins", type=int, check=integer(low=2),
                   metavar="B"),
            Option("trivialaugment_interpolation", "nearest", "TrivialAugmentWide: interpolation of the geometric ops (bilinear: torchvision's reference recipe)", type=str,
                   check=choice(INTERPOLATIONS), choices=INTERPOLATIONS, metavar="MODE"),
        ),
        example={"trivialaugment": True},
        options_need_switch=True,
    ),
    Trick(
        "augmix",
        "AugMix",
        stage="colour",
        stream=10,
        module="policies",
        options=(
            Option("augmix", False, "AugMix (chains and Dirichlet/Beta weights drawn per image)",
                   type=bool),
            Option("augmix_severity", 3, "AugMix: ops draw their bin below this (1..10)", type=int,
                   check=integer(low=1, high=10), metavar="S"),
            Option("augmix_width", 3, "AugMix: augmentation chains per image", type=int, check=integer(low=1), metavar="W"),
            Option("augmix_depth", -1, "AugMix: ops per chain (<= 0: drawn in 1..3)", type=int, check=integer(), metavar="D"),
            Option("augmix_alpha", 1.0, "AugMix: Dirichlet/Beta concentration", check=real(low=0.0, low_inclusive=False),
                   metavar="ALPHA"),
            Option("augmix_all_ops", True, "AugMix: leave out Brightness, Color, Contrast and Sharpness", type=bool,
                   flag="--no-augmix-all-ops"),
            Option("augmix_interpolation", "nearest", "AugMix: interpolation of the geometric ops (bilinear: torchvision's reference recipe)", type=str,
                   check=choice(INTERPOLATIONS), choices=INTERPOLATIONS, metavar="MODE"),
        ),
        example={"augmix": True, "augmix_width": 2},
        options_need_switch=True,
    ),
    Trick(
        "cutout",
        "Cutout",
        stage="erasing",
        stream=3,
        module="erasing",
        options=(
            Option("cutout", 0, "Cutout: side of the square hole in pixels", type=int, check=integer(low=0), metavar="LENGTH"),
            Option("cutout_holes", 1, "Cutout: holes per image", type=int, check=integer(low=0)),
        ),
        example={"cutout": 8, "cutout_holes": 2},
        options_need_switch=True,
    ),
    Trick(
        "random_erasing",
        "random erasing",
        stage="erasing",
        stream=7,
        module="erasing",
        options=(
            Option("random_erasing", 0.0, "random erasing (torchvision/timm RandomErasing, per image): probability "
                   "P of erasing an image; boxes of 0.02-0.33 of the image area, aspect 0.3-3.3", check=real(low=0.0, high=1.0),
                   metavar="P"),
            Option("random_erasing_mode", "const", "random erasing fill (timm's modes, on the normalised image): "
                   "const 0 (the mean), rand (a normal colour per box), pixel (normal noise per pixel)", type=str,
                   check=choice(ERASING_MODES), choices=ERASING_MODES),
            Option("random_erasing_count", 1, "random erasing: at most N boxes per image (timm's max_count; the "
                   "count is uniform in 1..N)", type=int, check=integer(low=1), metavar="N"),
        ),
        example={"random_erasing": 0.5, "random_erasing_mode": "rand", "random_erasing_count": 2},
        options_need_switch=True,
    ),
    Trick(
        "label_smoothing",
        "label smoothing",
        stage="targets",
        stream=None,
        module="losses",
        options=(
            Option("label_smoothing", 0.0, "label smoothing ε", check=real(low=0.0, high=1.0), metavar="E"),
        ),
        example={"label_smoothing": 0.1},
    ),
    Trick(
        "mixup",
        "mixup",
        stage="mixing",
        stream=4,
        module="mixing",
        options=(Option("mixup", 0.0, "mixup: Beta(α, α) of the mixing weight", check=real(low=0.0), metavar="ALPHA"),),
        example={"mixup": 1.0},
        soft_targets=True,
        excludes=("ricap",),
        exclusion="both mix the batch",
    ),
    Trick(
        "ricap",
        "RICAP",
        stage="mixing",
        stream=5,
        module="mixing",
        options=(Option("ricap", 0.0, "RICAP: Beta(β, β) of the patch boundary", check=real(low=0.0), metavar="BETA"),),
        example={"ricap": 0.3},
        soft_targets=True,
        excludes=("mixup", "cutmix"),
        exclusion="both mix the batch",
    ),
    Trick(
        "cutmix",
        "CutMix (with mixup: switching as timm's Mixup)",
        stage="mixing",
        stream=6,
        module="mixing",
        options=(
            Option("cutmix", 0.0, "CutMix: Beta(α, α) of the pasted box's share, timm's Mixup(cutmix_alpha); with "
                   "--mixup too, each draw is CutMix or mixup (timm's switching)", check=real(low=0.0), metavar="ALPHA"),
            Option("cutmix_minmax", None, "CutMix box sides uniform in [MIN·H, MAX·H) instead of from α (timm's "
                   "cutmix_minmax; sets α to 1)", check=optional(pair(low=0.0, high=1.0)), metavar=("MIN", "MAX"),
                   nargs=2),
            Option("mix_prob", 1.0, "mixup/CutMix: probability that a draw mixes at all (timm's prob)",
                   check=real(low=0.0, high=1.0), metavar="P"),
            Option("mix_switch_prob", 0.5, "mixup/CutMix: probability of CutMix when both are on (timm's switch_prob)",
                   check=real(low=0.0, high=1.0), metavar="P"),
            Option("mix_mode", "batch", "mixup/CutMix: one draw per batch, per pair (i, N-1-i) or per image "
                   "(timm's mode; pair needs an even batch)", type=str, check=choice(MIXUP_CUTMIX_MODES),
                   choices=MIXUP_CUTMIX_MODES),
        ),
        example={"cutmix": 1.0},
        soft_targets=True,
        excludes=("ricap",),
        exclusion="both mix the batch",
        takes_over=("mixup",),
        options_need_switch=True,
        cross_check=_pairs_need_even_batch,
    ),
    Trick(
        "distillation",
        "knowledge distillation",
        stage="loss",
        stream=None,
        module="losses",
        options=(
            Option("teacher", None, "a trained teacher: a twintricks checkpoint (either backend), a safetensors "
                   "file of a torch state_dict, or a torch state_dict file (read with weights_only=True)",
                   type=str, metavar="FILE"),
            Option("teacher_model", None, "the teacher's model when --teacher is a state_dict (default: read off "
                   "the weights; a checkpoint names its own)", type=str, check=optional(choice(MODELS)),
                   metavar="MODEL", choices=MODELS),
            Option("teacher_width", None, "the teacher's base width when --teacher is a state_dict (default: read "
                   "off the weights)", type=int, check=optional(integer(low=1)), metavar="W"),
            Option("kd_temperature", 4.0, "distillation temperature", check=real(low=0.0, low_inclusive=False), metavar="T"),
            Option("kd_alpha", 0.9, "weight of the distillation term (1 - A on the cross-entropy)",
                   check=real(low=0.0, high=1.0), metavar="A"),
        ),
        example={"teacher": "(a trained model)", "kd_temperature": 3.0, "kd_alpha": 0.7},
        cross_check=_teacher_settings,
    ),
)


def trick_named(name: str) -> Trick:
    """The :class:`Trick` called ``name``."""
    for t in TRICKS:
        if t.name == name:
            return t
    raise ValueError(f"`trick` must be one of {[t.name for t in TRICKS]}, got {name!r}")


def stream_seed(seed: int, stream: int) -> int:
    """A 63-bit seed for stream ``stream`` of a run seeded with ``seed`` (NumPy's SeedSequence
    hash of the pair: deterministic across machines and versions, different for every pair)."""
    check_int("seed", seed, low=0)
    check_int("stream", stream, low=0)
    hi, lo = np.random.SeedSequence([seed, stream]).generate_state(2, np.uint32)
    return ((int(hi) << 32) | int(lo)) >> 1


class TrickImpls(dict):
    """A backend's :class:`TrickImpl`\\ s by trick id (:func:`collect_impls`); looking up a recipe
    trick without one raises ``LookupError`` naming the entry to add."""

    def __init__(self, package: str, impls: dict):
        super().__init__(impls)
        self.package = package

    def __missing__(self, name):
        module = f"{self.package}.{trick_named(name).module}"
        raise LookupError(f"recipe trick {name!r} has no TrickImpl in {self.package}: add {module}.TRICK_IMPLS[{name!r}]")


def collect_impls(package: str) -> TrickImpls:
    """Every recipe trick's :class:`TrickImpl` in backend ``package`` (``"torch_impl"`` or
    ``"jax_impl"``), by id, in :data:`TRICKS` order: read from ``TRICK_IMPLS`` of the module
    ``package.<trick.module>``, where the trick's kernels are. A trick without an entry is left
    out (the trainer refuses to run it, naming the entry to add; ``tests/test_completeness.py``
    fails on it)."""
    impls = {}
    for t in TRICKS:
        impl = getattr(importlib.import_module(f"{package}.{t.module}"), "TRICK_IMPLS", {}).get(t.name)
        if isinstance(impl, TrickImpl):
            impls[t.name] = impl
    return TrickImpls(package, impls)


def _validate_table() -> None:
    names = [t.name for t in TRICKS]
    streams = [t.stream for t in TRICKS if t.stream is not None]
    stages = [STAGES.index(t.stage) for t in TRICKS]
    assert len(set(names)) == len(names), "trick names must be unique"
    assert len(set(streams)) == len(streams) and DATA_STREAM not in streams, "stream ids must be unique"
    assert stages == sorted(stages), "TRICKS must be listed in stage order"
    assert all(e in names for t in TRICKS for e in t.excludes), "excludes must name tricks"
    assert all(t.name in trick_named(e).excludes for t in TRICKS for e in t.excludes), "excludes must be mutual"
    assert all(o in names and o != t.name for t in TRICKS for o in t.takes_over), "takes_over must name other tricks"
    for t in TRICKS:
        own = {o.name for o in t.options}
        assert set(t.example) <= own and t.switch.name in t.example, f"{t.name}: example must set its own options, its switch too"
        assert t.example[t.switch.name] not in (False, 0, None), f"{t.name}: example must switch it on"


_validate_table()
