"""The batch-mixing tricks in JAX, one module per trick: :mod:`~jax_impl.mixing._mixup`,
:mod:`~jax_impl.mixing._ricap` and :mod:`~jax_impl.mixing._cutmix` (CutMix and timm-style
mixup/CutMix switching), on the helpers of :mod:`~jax_impl.mixing._common`. Images ``[N, H, W, C]``.

Each trick is a sampler ``sample_<trick>_params(key, ...)`` returning a NamedTuple (field names
identical to :mod:`torch_impl.mixing`'s), a deterministic kernel ``<trick>(images, targets,
params, ...)`` returning ``(images, soft_targets)``, and a ``random_<trick>(key, ...)`` wrapper
that does both (like dm-pix). Targets are ``[N]`` integer labels (with ``num_classes``) or
``[N, K]`` soft targets, so the tricks compose with label smoothing; the returned targets are
``[N, K]`` soft targets for :func:`jax_impl.losses.soft_target_cross_entropy`.

Kernels use gathers and broadcasting only, with static shapes, so they ``jit`` once per input
shape; the parameter records may be traced. Which checks run under ``jit``:

* at trace time, always: shapes, dtypes, and every hyperparameter given as a Python value;
* on concrete values only (eager, or arrays closed over inside ``jit``, which are read with
  NumPy): the ranges of the labels and of the parameter records;
* not at all for a traced hyperparameter: mixup's and CutMix's ``alpha`` and timm's
  ``mixup_alpha``, ``cutmix_alpha``, ``prob`` and ``switch_prob`` may be traced (``jit``,
  ``vmap``, a schedule); a traced one must be a real scalar, and its value is used as it is (an
  ``alpha <= 0`` turns that trick off, as 0 does; a probability outside [0, 1] acts as 0 or 1).

The other hyperparameters (``beta``, ``batch_size``, ``image_size``, ``per_sample``,
``per_image_offsets``, ``mode``, ``correct_lam``, ``cutmix_minmax``, ``label_smoothing``) are
Python values (static).

This package re-exports each trick module's ``__all__`` (and :mod:`jax_impl` re-exports this
package's), so ``jax_impl.mixing.mixup`` and ``jax_impl.mixup`` are the kernel; the modules are
private (``_mixup``...) so that no module shares a name with a function. ``TRICK_IMPLS`` gathers the
trainer's entries the modules declare beside their kernels.

NaN and inf in float images are propagated, unchecked, as :mod:`torch_impl.mixing` says (and as
timm's ``Mixup`` does); soft targets are checked by the losses
(:func:`~jax_impl.losses.soft_target_cross_entropy`), not by the kernels.
"""

from jax_impl.mixing import _cutmix, _mixup, _ricap
from twintricks.exports import reexport

__all__ = reexport(globals(), ("_mixup", "_ricap", "_cutmix"))

#: the trainer's entries of the mixing tricks (:class:`twintricks.tricks.TrickImpl`), by trick id
TRICK_IMPLS = {**_mixup.TRICK_IMPLS, **_ricap.TRICK_IMPLS, **_cutmix.TRICK_IMPLS}
