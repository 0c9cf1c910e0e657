"""The behaviour every random torch module shares: torchvision v2 habits and DataLoader workers.

:class:`RandomTransform` is the base class of the convenience modules (``RandomResizedCropFlip``,
``Cutout``, ``AutoAugment``, ``Mixup``, ``RICAP``, ...). A subclass writes its ``forward`` for
the plain case only, ``forward(images)`` or ``forward(images, labels)`` on an ``[N, C, H, W]``
batch; the base class wraps it (in ``__init_subclass__``) so that the module also behaves as a
torchvision ``transforms.v2`` transform does:

* **Samples.** Image modules accept, like v2 transforms, any nested tuple/list/dict sample, e.g.
  ``(image, label)`` in a ``Dataset`` under ``v2.Compose``. The image is the ``tv_tensors.Image``
  in the sample or, when there is none, the first plain tensor (v2's rule); everything else
  passes through untouched. Mixing modules (``forward(images, labels)``) accept
  ``(images, labels)`` as two arguments or as one tuple, or a dict, and find the labels as
  ``v2.MixUp``'s default ``labels_getter`` does (the second item of a tuple, or a dict's
  ``"labels"``-like key); the labels come back as ``[N, K]`` soft targets, like ``v2.MixUp``'s.
* **Single images.** An image module given one ``[C, H, W]`` image treats it as a batch of one
  and returns ``[C, H', W']``. Mixing modules need a batch (as ``v2.MixUp``).
* **tv_tensors.** A ``tv_tensors.Image`` in gives a ``tv_tensors.Image`` out (the kernels run on
  the plain tensor, then the result is wrapped again, as ``tv_tensors.wrap``).
* **Memory format.** A ``channels_last`` batch gives a ``channels_last`` result.

The wrapper never changes the draws or the values: a plain ``[N, C, H, W]`` tensor goes straight
to the subclass's ``forward`` after a type test and a memory-format test, which
``torch.compile(fullgraph=True)`` traces (a single image or a v2 sample takes the general path,
which flattens it with ``torch.utils._pytree`` as v2 does).

.. warning::
   Unlike a v2 transform, a sample may hold only one image to transform (several
   ``tv_tensors.Image`` would each need the same draws: ``ValueError``), and bounding boxes, masks,
   keypoints, videos and PIL images are refused (convert PIL images with ``v2.ToImage()`` first)
   rather than passed through unchanged, since passing them through would leave them out of step
   with a cropped or erased image.

**DataLoader workers.** A module given ``generator=`` holds a ``torch.Generator``, and every
forked ``DataLoader`` worker gets a copy of it in the same state, so all workers would draw the
same parameters (and, since workers are forked again each epoch from the unchanged main-process
copy, every epoch would repeat them). So, at its first call inside a worker
(``torch.utils.data.get_worker_info()`` is not None), a module reseeds that worker's copy of its
generator, in place, with a seed derived from the generator's state and the worker's seed
``worker_info.seed`` (``base_seed + worker_id``, the seed torch gives the worker's global
generator; ``base_seed`` is drawn for each epoch from the DataLoader's ``generator`` or torch's
global generator). Hence:

* each worker draws its own stream, and each epoch new ones, as torch's global generator does;
* the same module seed and the same DataLoader seed (``torch.manual_seed`` or
  ``DataLoader(generator=...)``) reproduce every worker's draws; a different module seed changes
  them;
* with ``num_workers=0`` (no worker), or outside a DataLoader, nothing changes: ``generator`` is
  used as given, and it is the only source of randomness;
* modules sharing one generator share its reseeded stream (it is reseeded once per worker).

The functional samplers (``sample_<trick>_params(..., generator=)``) use the generator they are
given as is; with ``generator=None`` torch's global generator is used, which torch already seeds
per worker.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import sys
import weakref
from collections.abc import Mapping

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_unflatten

from torch_impl._checks import looks_channels_last

__all__ = ["RandomTransform"]


# ------------------------------------------------------------------------------------------
# DataLoader workers
# ------------------------------------------------------------------------------------------

# generator -> (pid, worker id, worker seed) of the worker that reseeded it (in this process)
_RESEEDED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def worker_seed(generator: torch.Generator, seed: int) -> int:
    """A 63-bit seed from a generator's state and a worker's seed (SHA-256 of both)."""
    state = generator.get_state().cpu().numpy().tobytes()
    digest = hashlib.sha256(state + int(seed).to_bytes(16, "little", signed=True)).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _reseed_for_worker(module: nn.Module) -> None:
    """Inside a DataLoader worker, give ``module.generator`` this worker's stream (once)."""
    generator = getattr(module, "generator", None)
    if not isinstance(generator, torch.Generator):
        return
    info = torch.utils.data.get_worker_info()
    if info is None:
        return
    key = (os.getpid(), info.id, info.seed)
    if _RESEEDED.get(generator) == key:
        return
    generator.manual_seed(worker_seed(generator, info.seed))
    _RESEEDED[generator] = key


# ------------------------------------------------------------------------------------------
# Samples, tv_tensors, single images, memory format
# ------------------------------------------------------------------------------------------


def _tv_tensors():
    """torchvision's ``tv_tensors`` module if the user has imported it (a tv_tensor implies so)."""
    return sys.modules.get("torchvision.tv_tensors")


def _is_tv_image(x) -> bool:
    tv = _tv_tensors()
    return tv is not None and isinstance(x, tv.Image)


def _refuse_unsupported(name: str, leaves) -> None:
    tv = _tv_tensors()
    for leaf in leaves:
        if type(leaf).__module__.split(".")[0] == "PIL":
            raise TypeError(f"{name} takes tensors, not PIL images: put v2.ToImage() before it")
        if tv is not None and isinstance(leaf, tv.TVTensor) and not isinstance(leaf, tv.Image):
            raise TypeError(
                f"{name} transforms images only; it does not support {type(leaf).__name__} "
                "(bounding boxes, masks, keypoints and videos would be left out of step with the image)"
            )


def _image_index(name: str, leaves, skip=None) -> int:
    """v2's rule: the ``tv_tensors.Image`` in the sample, else the first plain tensor."""
    images = [i for i, leaf in enumerate(leaves) if _is_tv_image(leaf)]
    if len(images) > 1:
        raise ValueError(f"{name} transforms one image (or batch) per sample, got {len(images)} tv_tensors.Image")
    if images:
        return images[0]
    for i, leaf in enumerate(leaves):
        if isinstance(leaf, torch.Tensor) and leaf is not skip:
            return i
    kinds = sorted({type(x).__name__ for x in leaves})  # the distinct types: a nested list is not printed whole
    found = f"found none among {len(leaves)} item(s) of type {', '.join(kinds)[:200]}" if leaves else "got an empty sample"
    raise TypeError(
        f"`images` must be a torch.Tensor ([N, C, H, W], one [C, H, W] image, or a v2 sample holding one); {name} {found}"
    )


def _is_channels_last(x: torch.Tensor) -> bool:
    """A 4-D tensor laid out channels_last and not also contiguous (the ambiguous case)."""
    return x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def _keep_memory_format(images: torch.Tensor, out):
    if isinstance(out, torch.Tensor) and out.ndim == 4 and _is_channels_last(images):
        return out.contiguous(memory_format=torch.channels_last)
    return out


def _plain(x: torch.Tensor) -> torch.Tensor:
    return x.as_subclass(torch.Tensor) if _is_tv_image(x) else x


def _like(out, like):
    """``out`` with the tv_tensors type of ``like`` (``tv_tensors.wrap``), or as is."""
    if _is_tv_image(like) and isinstance(out, torch.Tensor):
        return _tv_tensors().wrap(out, like=like)
    return out


def _apply_images(module, forward, images):
    """``forward`` (the subclass's batch forward) on ``[N, C, H, W]`` or one ``[C, H, W]`` image."""
    if not isinstance(images, torch.Tensor):
        return forward(module, images)  # the subclass's check says what it expected
    plain = _plain(images)
    if plain.ndim == 3:
        if looks_channels_last((1, *plain.shape)):
            raise ValueError(
                f"`images` must be [C, H, W] (channels first), got shape {tuple(plain.shape)}, which looks like "
                f"[H, W, C] with C={plain.shape[2]}: use image.permute(2, 0, 1)"
            )
        batch = plain.unsqueeze(0)
        out = _keep_memory_format(batch, forward(module, batch)).squeeze(0)
    elif plain.ndim == 4:
        out = _keep_memory_format(plain, forward(module, plain))
    else:
        raise ValueError(
            f"`images` must be one image [C, H, W] or a batch [N, C, H, W], got shape {tuple(plain.shape)}"
        )
    return _like(out, images)


def _find_labels(name: str, sample):
    """``v2.MixUp``'s default ``labels_getter``: a tuple's second item, or a dict's labels key."""
    if isinstance(sample, (tuple, list)):
        if len(sample) < 2:
            raise ValueError(f"{name} needs (images, labels), got a sequence of {len(sample)}")
        sample = sample[1]
    if isinstance(sample, torch.Tensor):
        return sample
    if isinstance(sample, Mapping):
        keys = [k for k in sample if isinstance(k, str)]
        for match in (lambda k: k.lower() == "labels", lambda k: "label" in k.lower()):
            found = [k for k in keys if match(k)]
            if found:
                return sample[found[0]]
        raise ValueError(f"{name} found no labels: the dict has no 'labels'-like key ({list(sample)})")
    raise TypeError(f"`labels` must be a torch.Tensor ([N] class indices or [N, K] soft targets), got {type(sample).__name__}")


def _image_forward(forward, signature):
    @functools.wraps(forward)
    def wrapped(self, *inputs, **kwargs):
        if kwargs:
            inputs = signature.bind(self, *inputs, **kwargs).args[1:]
        _reseed_for_worker(self)
        if len(inputs) == 1 and type(inputs[0]) is torch.Tensor:
            return _apply_images(self, forward, inputs[0])
        name = type(self).__name__
        sample = inputs if len(inputs) > 1 else inputs[0]
        leaves, spec = tree_flatten(sample)
        _refuse_unsupported(name, leaves)
        i = _image_index(name, leaves)
        leaves[i] = _apply_images(self, forward, leaves[i])
        return tree_unflatten(leaves, spec)

    return wrapped


def _mixing_forward(forward, signature):
    @functools.wraps(forward)
    def wrapped(self, *inputs, **kwargs):
        if kwargs:
            inputs = signature.bind(self, *inputs, **kwargs).args[1:]
        _reseed_for_worker(self)
        if len(inputs) == 2 and all(type(x) is torch.Tensor for x in inputs):
            images, labels = inputs
            out, targets = forward(self, images, labels)
            return _keep_memory_format(images, out), targets
        name = type(self).__name__
        if len(inputs) not in (1, 2):
            raise TypeError(f"{name} takes (images, labels) or one sample holding both, got {len(inputs)} arguments")
        sample = inputs if len(inputs) == 2 else inputs[0]
        labels = _find_labels(name, sample)
        if not isinstance(labels, torch.Tensor):
            raise TypeError(f"`labels` must be a torch.Tensor, got {type(labels).__name__}")
        leaves, spec = tree_flatten(sample)
        _refuse_unsupported(name, leaves)
        j = next(k for k, leaf in enumerate(leaves) if leaf is labels)
        i = _image_index(name, leaves, skip=labels)
        images = leaves[i]
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"`images` must be a torch.Tensor [N, C, H, W], got {type(images).__name__}")
        plain = _plain(images)
        out, targets = forward(self, plain, labels)
        leaves[i] = _like(_keep_memory_format(plain, out), images)
        leaves[j] = targets
        return tree_unflatten(leaves, spec)

    return wrapped


class RandomTransform(nn.Module):
    """Base class of the random torch modules: v2-style inputs and per-worker random streams.

    A subclass defines ``forward(images)`` (an image transform) or ``forward(images, labels)``
    returning ``(images, soft_targets)`` (a mixing transform) for a plain ``[N, C, H, W]``
    batch, and keeps its ``torch.Generator`` (or None) in ``self.generator``. The class wraps
    that ``forward`` to accept single images, v2 samples and ``tv_tensors``, keep
    ``channels_last``, and give each DataLoader worker its own stream: see the module docstring.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        forward = cls.__dict__.get("forward")
        if forward is None:
            return
        signature = inspect.signature(forward)
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        data = [p for p in list(signature.parameters.values())[1:] if p.kind in kinds and p.default is p.empty]
        if len(data) == 1:
            cls.forward = _image_forward(forward, signature)
        elif len(data) == 2:
            cls.forward = _mixing_forward(forward, signature)
        else:
            raise TypeError(
                f"{cls.__name__}.forward must take (images) or (images, labels), got {len(data)} data arguments"
            )
