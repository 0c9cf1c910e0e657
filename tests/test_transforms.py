"""torch modules as torchvision v2 transforms, and their random streams in DataLoader workers.

The behaviour lives in :mod:`torch_impl.transform`. The v2 tests put our modules in
``v2.Compose`` pipelines beside torchvision's own transforms (and next to ``v2.MixUp`` called
the same way), and check the values against the plain ``[N, C, H, W]`` batch call with the same
seed, which the other test files check against the kernels and the references. The worker tests
run a real ``DataLoader(num_workers=2)``.
"""

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info
from torchvision import tv_tensors
from torchvision.transforms import v2

from torch_impl import (
    RICAP,
    AugMix,
    AutoAugment,
    Cutout,
    CutMix,
    Mixup,
    MixupCutmix,
    RandAugment,
    RandomErasing,
    RandomResizedCropFlip,
    TrivialAugmentWide,
)
from torch_impl.transform import RandomTransform

K = 5


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


IMAGE_MODULES = {
    "RandomResizedCropFlip": lambda g: RandomResizedCropFlip((12, 10), scale=(0.2, 1.0), generator=g),
    "AutoAugment": lambda g: AutoAugment("imagenet", generator=g),
    "RandAugment": lambda g: RandAugment(num_ops=3, generator=g),
    "TrivialAugmentWide": lambda g: TrivialAugmentWide(generator=g),
    "AugMix": lambda g: AugMix(generator=g),
    "Cutout": lambda g: Cutout(n_holes=2, length=6, generator=g),
    "RandomErasing": lambda g: RandomErasing(p=1.0, value=7, generator=g),
}
MIXING_MODULES = {
    "Mixup": lambda g: Mixup(alpha=1.0, num_classes=K, generator=g),
    "RICAP": lambda g: RICAP(beta=0.3, num_classes=K, generator=g),
    "CutMix": lambda g: CutMix(alpha=1.0, num_classes=K, generator=g),
    "MixupCutmix": lambda g: MixupCutmix(mixup_alpha=0.8, cutmix_alpha=1.0, num_classes=K, generator=g),
}


def _uint8(shape, seed=1):
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=_gen(seed))


def _to_float(x):
    return v2.functional.to_dtype(x, torch.float32, scale=True)  # what the pipelines' last step does


# ------------------------------------------------------------------------------------------
# v2.Compose
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(IMAGE_MODULES))
def test_single_image_in_v2_compose(name):
    """ToImage -> ours -> ToDtype on one [C, H, W] image, alone and in an (image, label) sample."""
    make = IMAGE_MODULES[name]
    image = _uint8((3, 20, 24))
    expected = _to_float(make(_gen())(image[None])[0])  # the batch of one, plain
    pipeline = v2.Compose([v2.ToImage(), make(_gen()), v2.ToDtype(torch.float32, scale=True)])
    out = pipeline(image)
    assert type(out) is tv_tensors.Image and out.dtype == torch.float32
    torch.testing.assert_close(out.as_subclass(torch.Tensor), expected, rtol=0, atol=0)

    pipeline = v2.Compose([v2.ToImage(), make(_gen()), v2.ToDtype(torch.float32, scale=True)])
    out, label = pipeline(image, 3)  # v2's (image, label) convention: the label passes through
    assert type(out) is tv_tensors.Image and label == 3
    torch.testing.assert_close(out.as_subclass(torch.Tensor), expected, rtol=0, atol=0)


@pytest.mark.parametrize("name", list(IMAGE_MODULES))
def test_tv_tensors_batch_and_extra_items_pass_through(name):
    make = IMAGE_MODULES[name]
    batch = _uint8((4, 3, 20, 24))
    expected = _to_float(make(_gen())(batch))
    labels, boxes_meta = torch.arange(4), {"id": "abc"}
    sample = {"image": tv_tensors.Image(batch), "label": labels, "meta": boxes_meta, "extra": torch.ones(2)}
    pipeline = v2.Compose([make(_gen()), v2.ToDtype(torch.float32, scale=True)])
    out = pipeline(sample)
    assert set(out) == set(sample)
    assert type(out["image"]) is tv_tensors.Image
    torch.testing.assert_close(out["image"].as_subclass(torch.Tensor), expected, rtol=0, atol=0)
    # what is not the image is passed through untouched, as v2 does (containers are rebuilt, as in v2)
    assert out["label"] is labels and out["extra"] is sample["extra"] and out["meta"] == boxes_meta
    # a plain tensor beside a tv_tensors.Image is not the image (v2's rule)
    plain_first = (torch.zeros(3, 4, 4), tv_tensors.Image(batch))
    kept, img = make(_gen())(plain_first)
    assert kept is plain_first[0] and type(img) is tv_tensors.Image


def test_mixup_like_v2_mixup():
    """Called as v2.MixUp is, after the DataLoader: (images, labels) or one (images, labels) sample."""
    images = tv_tensors.Image(torch.rand(6, 3, 8, 8, generator=_gen(2)))
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    ours = Mixup(alpha=1.0, num_classes=K, generator=_gen())
    plain_images, plain_targets = Mixup(alpha=1.0, num_classes=K, generator=_gen())(
        images.as_subclass(torch.Tensor), labels
    )
    for theirs_out, our_out in (
        (v2.MixUp(num_classes=K)(images, labels), Mixup(alpha=1.0, num_classes=K, generator=_gen())(images, labels)),
        (v2.MixUp(num_classes=K)((images, labels)), ours((images, labels))),
    ):
        assert type(our_out) is type(theirs_out) is tuple
        for ours_x, theirs_x in zip(our_out, theirs_out):
            assert type(ours_x) is type(theirs_x) and ours_x.shape == theirs_x.shape and ours_x.dtype == theirs_x.dtype
        torch.testing.assert_close(our_out[0].as_subclass(torch.Tensor), plain_images, rtol=0, atol=0)
        torch.testing.assert_close(our_out[1], plain_targets, rtol=0, atol=0)
    # a dict sample: images and labels replaced, the rest passed through
    extra = object()
    out = Mixup(alpha=1.0, num_classes=K, generator=_gen())({"image": images, "labels": labels, "extra": extra})
    assert type(out["image"]) is tv_tensors.Image and out["labels"].shape == (6, K) and out["extra"] is extra
    torch.testing.assert_close(out["labels"], plain_targets, rtol=0, atol=0)
    # after the DataLoader in v2's documented recipe: RandomChoice between ours and theirs
    choice = v2.RandomChoice([v2.MixUp(num_classes=K), Mixup(num_classes=K, generator=_gen())])
    for _ in range(4):
        mixed, targets = choice(images, labels)
        assert type(mixed) is tv_tensors.Image and targets.shape == (6, K)


@pytest.mark.parametrize("name", list(MIXING_MODULES))
def test_mixing_modules_need_a_batch_and_labels(name):
    make = MIXING_MODULES[name]
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        make(_gen())(torch.rand(3, 8, 8), torch.tensor([1]))
    with pytest.raises(ValueError, match="labels"):
        make(_gen())({"image": torch.rand(2, 3, 8, 8)})
    with pytest.raises(TypeError, match="labels"):
        make(_gen())((torch.rand(2, 3, 8, 8), [0, 1]))


@pytest.mark.parametrize("name", list(IMAGE_MODULES) + list(MIXING_MODULES))
def test_channels_last_is_kept(name):
    make = {**IMAGE_MODULES, **MIXING_MODULES}[name]
    batch = torch.rand(4, 3, 16, 16, generator=_gen(3))
    cl = batch.contiguous(memory_format=torch.channels_last)
    assert not cl.is_contiguous()
    args = (torch.tensor([0, 1, 2, 3]),) if name in MIXING_MODULES else ()
    out_cl = make(_gen())(cl, *args)
    out = make(_gen())(batch, *args)
    if args:
        (out_cl, t_cl), (out, t) = out_cl, out
        torch.testing.assert_close(t_cl, t, rtol=0, atol=0)
    assert out_cl.is_contiguous(memory_format=torch.channels_last) and not out_cl.is_contiguous()
    assert out.is_contiguous()  # a contiguous batch stays contiguous
    torch.testing.assert_close(out_cl, out, rtol=0, atol=0)
    # a tv_tensors.Image in channels_last too, and one [C, H, W] image permuted from HWC memory
    img = make(_gen())(tv_tensors.Image(cl), *args)
    img = img[0] if args else img
    assert type(img) is tv_tensors.Image and img.is_contiguous(memory_format=torch.channels_last)
    if not args:
        single = batch[0].permute(1, 2, 0).contiguous().permute(2, 0, 1)  # [C, H, W] view of HWC memory
        out1 = make(_gen())(single)
        assert out1.shape[0] == 3 and out1.stride()[0] == 1
        torch.testing.assert_close(out1, make(_gen())(batch[:1])[0], rtol=0, atol=0)


def test_bad_samples_are_refused_with_clear_errors():
    crop = RandomResizedCropFlip(8, generator=_gen())
    with pytest.raises(ValueError, match=r"one image \[C, H, W\] or a batch \[N, C, H, W\]"):
        crop(torch.rand(2, 2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\[C, H, W\] \(channels first\).*looks like \[H, W, C\]"):
        crop(torch.rand(32, 32, 3))
    with pytest.raises(ValueError, match="one image"):
        crop((tv_tensors.Image(torch.rand(3, 8, 8)), tv_tensors.Image(torch.rand(3, 8, 8))))
    box = tv_tensors.BoundingBoxes([[0, 0, 4, 4]], format="XYXY", canvas_size=(8, 8))
    with pytest.raises(TypeError, match="BoundingBoxes"):
        crop((tv_tensors.Image(torch.rand(3, 8, 8)), box))
    pil = v2.ToPILImage()(torch.zeros(3, 8, 8, dtype=torch.uint8))
    with pytest.raises(TypeError, match=r"PIL.*v2.ToImage\(\)"):
        crop(pil)
    with pytest.raises(TypeError, match=r"`images` must be a torch.Tensor .*found none among 2 item\(s\) of type int, str"):
        crop(("a", 1))


def test_keyword_calls_and_plain_batches_unchanged():
    x = _uint8((3, 3, 10, 12))
    a = Cutout(length=4, generator=_gen())(images=x)
    b = Cutout(length=4, generator=_gen())(x)
    assert type(a) is torch.Tensor and torch.equal(a, b)
    y = torch.tensor([0, 1, 2])
    m1 = Mixup(num_classes=K, generator=_gen())(images=x, targets=y)
    m2 = Mixup(num_classes=K, generator=_gen())(x, y)
    assert all(torch.equal(p, q) for p, q in zip(m1, m2))


def test_subclass_forward_must_take_images_or_images_and_labels():
    with pytest.raises(TypeError, match="must take"):

        class Bad(RandomTransform):
            def forward(self, a, b, c):
                return a


# ------------------------------------------------------------------------------------------
# DataLoader workers
# ------------------------------------------------------------------------------------------


class _Augmented(Dataset):
    """Item i: (worker id, i, the module applied to one fixed image)."""

    def __init__(self, module, n=8):
        self.module, self.n = module, n
        self.image = torch.ones(1, 1, 16, 16)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        info = get_worker_info()
        return (-1 if info is None else info.id), i, self.module(self.image)


def _run(module_seed, loader_seed, *, num_workers=2, epochs=1, persistent=False):
    """{(epoch, worker): [outputs in order]} of a DataLoader over _Augmented."""
    module = Cutout(n_holes=1, length=6, generator=_gen(module_seed))
    loader = DataLoader(
        _Augmented(module),
        batch_size=None,
        num_workers=num_workers,
        generator=_gen(loader_seed),
        persistent_workers=persistent,
    )
    draws = {}
    for epoch in range(epochs):
        for worker, _, out in loader:
            draws.setdefault((epoch, int(worker)), []).append(out)
    return {k: torch.stack(v) for k, v in draws.items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# forked workers run torch only; JAX (imported by other test modules) warns about any fork
FORK_OK = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")


@FORK_OK
def test_workers_get_their_own_streams_reproducibly():
    first = _run(0, 100, epochs=2)
    assert set(first) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    # each worker its own draws (forked copies of one generator would draw the same)
    assert not torch.equal(first[0, 0], first[0, 1])
    # each epoch new ones (workers are forked again from the unchanged main-process module)
    assert not torch.equal(first[0, 0], first[1, 0])
    # the same module seed and DataLoader seed reproduce every worker's draws
    assert _same(first, _run(0, 100, epochs=2))
    # the module's generator still matters, and so does the DataLoader's seed
    other_module = _run(1, 100)
    assert not torch.equal(first[0, 0], other_module[0, 0])
    assert not torch.equal(first[0, 0], _run(0, 101)[0, 0])


@FORK_OK
def test_persistent_workers_keep_their_stream_across_epochs():
    draws = _run(0, 100, epochs=2, persistent=True)
    assert not torch.equal(draws[0, 0], draws[0, 1])
    assert not torch.equal(draws[0, 0], draws[1, 0])  # the stream goes on, it does not restart
    assert _same(draws, _run(0, 100, epochs=2, persistent=True))


def test_no_workers_behaves_as_a_direct_call():
    """num_workers=0: the generator is used as given, whatever the DataLoader's seed."""
    draws = _run(0, 100, num_workers=0)
    assert set(draws) == {(0, -1)}
    module = Cutout(n_holes=1, length=6, generator=_gen(0))
    direct = torch.stack([module(torch.ones(1, 1, 16, 16)) for _ in range(8)])
    assert torch.equal(draws[0, -1], direct)
    assert _same(draws, _run(0, 999, num_workers=0))
