"""The batch-mixing tricks in PyTorch, one module per trick: :mod:`~torch_impl.mixing._mixup`,
:mod:`~torch_impl.mixing._ricap` and :mod:`~torch_impl.mixing._cutmix` (CutMix and timm-style
mixup/CutMix switching), on the helpers of :mod:`~torch_impl.mixing._common`. Images ``[N, C, H, W]``.

Each trick is a sampler ``sample_<trick>_params`` returning a NamedTuple (field names identical
to :mod:`jax_impl.mixing`'s), a deterministic kernel ``<trick>(images, targets, params, ...)`` that
returns ``(images, soft_targets)``, and an ``nn.Module`` that does both. Targets are ``[N]``
integer labels (with ``num_classes``) or ``[N, K]`` soft targets (e.g. smoothed labels), so the
tricks compose with label smoothing; the returned targets are ``[N, K]`` soft targets for
:func:`torch_impl.losses.soft_target_cross_entropy`.

This package re-exports each trick module's ``__all__`` (and :mod:`torch_impl` re-exports this
package's), so ``torch_impl.mixing.mixup`` and ``torch_impl.mixup`` are the kernel; the modules are
private (``_mixup``...) so that no module shares a name with a function. ``TRICK_IMPLS`` gathers the
trainer's entries the modules declare beside their kernels.

NaN and inf: float images are not checked for them (a check would read every pixel of every
batch); the kernels propagate them, as torchvision's ``MixUp``/``CutMix`` and timm's ``Mixup`` do:
a blend carries a non-finite pixel into both images it mixes, a pasted box carries it into its
receiver. Soft targets given to a kernel are not checked either; the losses check theirs
(finite, ``>= 0``, summing to 1; :func:`~torch_impl.losses.soft_target_cross_entropy`). The same in
both backends.
"""

from torch_impl.mixing import _cutmix, _mixup, _ricap
from twintricks.exports import reexport

__all__ = reexport(globals(), ("_mixup", "_ricap", "_cutmix"))

#: the trainer's entries of the mixing tricks (:class:`twintricks.tricks.TrickImpl`), by trick id
TRICK_IMPLS = {**_mixup.TRICK_IMPLS, **_ricap.TRICK_IMPLS, **_cutmix.TRICK_IMPLS}
