"""Golden outputs: record the bytes every sampler, kernel, module / random wrapper and the trainers'
draws and augmentations give (both backends, 3 seeds, uint8 and float32), then compare a later
checkout against them — the check that a refactoring left the kernels byte-identical.

    python benchmarks/golden_outputs.py record /tmp/golden.npz    # at the commit before the change
    python benchmarks/golden_outputs.py compare /tmp/golden.npz   # after it: exit 1 if any array differs

Uses only the public top-level API (torch_impl.X, jax_impl.X) and the Trainers, so it runs on both
sides of a change that moves code. About 8 minutes on a loaded 2-core CPU (7,784 arrays).
"""
import sys
import numpy as np
import torch
import jax, jax.numpy as jnp
import torch_impl as T
import jax_impl as J

out = {}
def put(name, x):
    if isinstance(x, (tuple, list)):
        for i, v in enumerate(x):
            put(f"{name}[{i}]", v)
        return
    if isinstance(x, dict):
        for k, v in x.items():
            put(f"{name}.{k}", v)
        return
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    assert name not in out, name
    out[name] = x

def tg(seed): return torch.Generator().manual_seed(seed)
def imgs(seed, shape=(6, 3, 12, 10), dtype="u8"):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    if dtype == "f32": a = (a / 255.0).astype(np.float32)
    return a
def t_im(a): return torch.from_numpy(a.copy())
def j_im(a): return jnp.asarray(a.transpose(0, 2, 3, 1))
def to_j(rec):
    cls = getattr(J, type(rec).__name__)
    return cls(*(jnp.asarray(f.numpy().astype(np.int32) if f.dtype == torch.int64 else f.numpy()) for f in rec))

labels = np.array([0, 3, 1, 2, 3, 0]); K = 4
tl = torch.from_numpy(labels); jl = jnp.asarray(labels, jnp.int32)
HW = (12, 10)
for seed in (0, 1, 7):
    for dt in ("u8", "f32"):
        a = imgs(seed, dtype=dt)
        x, xj = t_im(a), j_im(a)
        pre = f"s{seed}.{dt}"
        # mixing
        for ps in (False, True):
            p = T.sample_mixup_params(6, alpha=0.4, per_sample=ps, generator=tg(seed)); put(f"{pre}.mixup.p{ps}", p)
            put(f"{pre}.mixup.t{ps}", T.mixup(x, tl, p, num_classes=K)); put(f"{pre}.mixup.j{ps}", J.mixup(xj, jl, to_j(p), num_classes=K))
            put(f"{pre}.Mixup.{ps}", T.Mixup(0.4, K, per_sample=ps, generator=tg(seed))(x, tl))
            put(f"{pre}.jsample_mixup.{ps}", J.sample_mixup_params(jax.random.key(seed), 6, alpha=0.4, per_sample=ps))
            put(f"{pre}.random_mixup.{ps}", J.random_mixup(jax.random.key(seed), xj, jl, alpha=0.4, num_classes=K, per_sample=ps))
        for po in (False, True):
            p = T.sample_ricap_params(6, HW, beta=0.3, per_image_offsets=po, generator=tg(seed)); put(f"{pre}.ricap.p{po}", p)
            put(f"{pre}.ricap.t{po}", T.ricap(x, tl, p, num_classes=K)); put(f"{pre}.ricap.j{po}", J.ricap(xj, jl, to_j(p), num_classes=K))
            put(f"{pre}.RICAP.{po}", T.RICAP(0.3, K, per_image_offsets=po, generator=tg(seed))(x, tl))
            put(f"{pre}.jsample_ricap.{po}", J.sample_ricap_params(jax.random.key(seed), 6, HW, beta=0.3, per_image_offsets=po))
            put(f"{pre}.random_ricap.{po}", J.random_ricap(jax.random.key(seed), xj, jl, beta=0.3, num_classes=K, per_image_offsets=po))
        for ps in (False, True):
            p = T.sample_cutmix_params(6, HW, alpha=1.0, per_sample=ps, generator=tg(seed)); put(f"{pre}.cutmix.p{ps}", p)
            put(f"{pre}.cutmix.t{ps}", T.cutmix(x, tl, p, num_classes=K)); put(f"{pre}.cutmix.j{ps}", J.cutmix(xj, jl, to_j(p), num_classes=K))
            put(f"{pre}.CutMix.{ps}", T.CutMix(1.0, K, per_sample=ps, generator=tg(seed))(x, tl))
            put(f"{pre}.jsample_cutmix.{ps}", J.sample_cutmix_params(jax.random.key(seed), 6, HW, alpha=1.0, per_sample=ps))
            put(f"{pre}.random_cutmix.{ps}", J.random_cutmix(jax.random.key(seed), xj, jl, alpha=1.0, num_classes=K, per_sample=ps))
        for mode in ("batch", "pair", "elem"):
            for cfg_i, cfg in enumerate([dict(mixup_alpha=1.0, cutmix_alpha=1.0), dict(mixup_alpha=0.0, cutmix_alpha=1.0, cutmix_minmax=(0.2, 0.8)),
                                         dict(mixup_alpha=0.5, cutmix_alpha=0.0, prob=0.7), dict(mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.6, switch_prob=0.3, correct_lam=False)]):
                for rep in range(4):
                    s = seed * 100 + rep
                    p = T.sample_mixup_cutmix_params(6, HW, mode=mode, generator=tg(s), **cfg); put(f"{pre}.mc.{mode}.{cfg_i}.{rep}.p", p)
                    put(f"{pre}.mc.{mode}.{cfg_i}.{rep}.t", T.mixup_cutmix(x, tl, p, num_classes=K, label_smoothing=0.1))
                    put(f"{pre}.mc.{mode}.{cfg_i}.{rep}.j", J.mixup_cutmix(xj, jl, to_j(p), num_classes=K, label_smoothing=0.1))
                    put(f"{pre}.MC.{mode}.{cfg_i}.{rep}", T.MixupCutmix(**cfg, mode=mode, label_smoothing=0.1, num_classes=K, generator=tg(s))(x, tl))
                    put(f"{pre}.jmc.{mode}.{cfg_i}.{rep}", J.sample_mixup_cutmix_params(jax.random.key(s), 6, HW, mode=mode, **cfg))
                    put(f"{pre}.rmc.{mode}.{cfg_i}.{rep}", J.random_mixup_cutmix(jax.random.key(s), xj, jl, mode=mode, num_classes=K, label_smoothing=0.1, **cfg))
        # erasing
        p = T.sample_cutout_params(6, HW, n_holes=2, generator=tg(seed)); put(f"{pre}.cutout.p", p)
        put(f"{pre}.cutout.t", T.cutout(x, p, length=5, fill=3)); put(f"{pre}.cutout.j", J.cutout(xj, to_j(p), length=5, fill=3))
        put(f"{pre}.Cutout", T.Cutout(2, 5, fill=3, generator=tg(seed))(x))
        put(f"{pre}.random_cutout", J.random_cutout(jax.random.key(seed), xj, n_holes=2, length=5, fill=3))
        for mode in ("const", "rand", "pixel"):
            p = T.sample_random_erasing_params(6, HW, 3, p=0.7, mode=mode, max_count=2, generator=tg(seed)); put(f"{pre}.re.{mode}.p", p)
            put(f"{pre}.re.{mode}.t", T.erase(x if dt == "f32" else x.float(), p))
            put(f"{pre}.RE.{mode}", T.RandomErasing(p=0.7, mode=mode, max_count=2, generator=tg(seed))(x.float()))
            put(f"{pre}.jre.{mode}", J.sample_random_erasing_params(jax.random.key(seed), 6, HW, 3, p=0.7, mode=mode, max_count=2))
            put(f"{pre}.rre.{mode}", J.random_erasing(jax.random.key(seed), xj.astype(jnp.float32), p=0.7, mode=mode, max_count=2))
        # cropping
        p = T.sample_resized_crop_params(6, HW, scale=(0.3, 1.0), generator=tg(seed)); f = T.sample_flip_params(6, generator=tg(seed + 5))
        put(f"{pre}.crop.p", p); put(f"{pre}.flip.p", f)
        put(f"{pre}.crop.t", T.resized_crop(x, p, size=(9, 11), flip=f)); put(f"{pre}.crop.j", J.resized_crop(xj, to_j(p), size=(9, 11), flip=to_j(f)))
        put(f"{pre}.hflip.t", T.hflip(x, f)); put(f"{pre}.hflip.j", J.hflip(xj, to_j(f)))
        put(f"{pre}.RRCF", T.RandomResizedCropFlip(size=HW, generator=tg(seed))(x))
        put(f"{pre}.rrcf", J.random_resized_crop_flip(jax.random.key(seed), xj, size=HW))
        put(f"{pre}.jcrop", J.sample_resized_crop_params(jax.random.key(seed), 6, HW)); put(f"{pre}.jflip", J.sample_flip_params(jax.random.key(seed), 6))
        # policies (uint8 only path + float)
        p = T.sample_autoaugment_params(6, policy="cifar10", generator=tg(seed)); put(f"{pre}.aa.p", p)
        put(f"{pre}.aa.t", T.autoaugment(x, p, policy="cifar10")); put(f"{pre}.aa.j", J.autoaugment(xj, to_j(p), policy="cifar10"))
        put(f"{pre}.AA", T.AutoAugment("cifar10", generator=tg(seed))(x)); put(f"{pre}.raa", J.random_autoaugment(jax.random.key(seed), xj, policy="cifar10"))
        p = T.sample_randaugment_params(6, num_ops=2, generator=tg(seed)); put(f"{pre}.ra.p", p)
        put(f"{pre}.ra.t", T.randaugment(x, p)); put(f"{pre}.ra.j", J.randaugment(xj, to_j(p)))
        p = T.sample_trivialaugment_wide_params(6, generator=tg(seed)); put(f"{pre}.ta.p", p)
        put(f"{pre}.ta.t", T.trivialaugment_wide(x, p)); put(f"{pre}.ta.j", J.trivialaugment_wide(xj, to_j(p)))
        p = T.sample_augmix_params(6, generator=tg(seed)); put(f"{pre}.am.p", p)
        put(f"{pre}.am.t", T.augmix(x, p)); put(f"{pre}.am.j", J.augmix(xj, to_j(p)))
        put(f"{pre}.jra", J.sample_randaugment_params(jax.random.key(seed), 6)); put(f"{pre}.jta", J.sample_trivialaugment_wide_params(jax.random.key(seed), 6))
        put(f"{pre}.jam", J.sample_augmix_params(jax.random.key(seed), 6)); put(f"{pre}.jaa", J.sample_autoaugment_params(jax.random.key(seed), 6, policy="cifar10"))
    # losses
    rng = np.random.default_rng(seed)
    lg = rng.normal(size=(6, K)).astype(np.float32) * 3; te = rng.normal(size=(6, K)).astype(np.float32)
    put(f"s{seed}.ls.t", T.label_smoothing_cross_entropy(torch.from_numpy(lg), tl, smoothing=0.1))
    put(f"s{seed}.ls.j", J.label_smoothing_cross_entropy(jnp.asarray(lg), jl, smoothing=0.1))
    put(f"s{seed}.sl.t", T.smooth_labels(tl, K, 0.2)); put(f"s{seed}.sl.j", J.smooth_labels(jl, K, 0.2))
    put(f"s{seed}.kd.t", T.kd_loss(torch.from_numpy(lg), torch.from_numpy(te), tl, temperature=3.0, alpha=0.7))
    put(f"s{seed}.kd.j", J.kd_loss(jnp.asarray(lg), jnp.asarray(te), jl, temperature=3.0, alpha=0.7))

# trainers: sample_aug + augment over configs
from twintricks.datasets import load_digits
from twintricks.recipe import TrainConfig
from torch_impl import train as ttrain
from jax_impl import train as jtrain
ds = load_digits().subset(train=32, test=16)
CFGS = [dict(crop_flip=True, autoaugment="cifar10", cutout=8, cutout_holes=2, mixup=0.4, label_smoothing=0.1),
        dict(randaugment=True, trivialaugment=True, augmix=True, ricap=0.3),
        dict(random_erasing=0.5, random_erasing_mode="rand", random_erasing_count=2, mixup=0.8, cutmix=1.0, mix_mode="elem", label_smoothing=0.1),
        dict(cutmix=1.0, cutmix_minmax=(0.3, 0.7), mix_mode="pair", mix_prob=0.8, random_erasing=1.0, random_erasing_mode="pixel"),
        dict(cutmix=1.0, mixup=0.5)]
for i, kw in enumerate(CFGS):
    cfg = TrainConfig(model="fastnet", width=4, batch_size=8, eval_batch_size=16, epochs=1, progress=False, seed=3, **kw)
    t = ttrain.Trainer(cfg, ds, device="cpu")
    j = jtrain.Trainer(cfg, ds)
    for step in range(2):
        aug = t.sample_aug(8); put(f"tr{i}.{step}.aug", aug)
        put(f"tr{i}.{step}.x", t.augment(t.data.train_images[:8], t.data.train_labels[:8], aug))
        key = jax.random.fold_in(jax.random.key(11), step)
        augj = j.sample_aug(key, 8); put(f"trj{i}.{step}.aug", augj)
        put(f"trj{i}.{step}.x", j.augment(jnp.asarray(ds.train_images[:8]), jnp.asarray(ds.train_labels[:8]), augj))

if sys.argv[1] == "record":
    np.savez(sys.argv[2], **out); print("recorded", len(out))
else:
    ref = np.load(sys.argv[2])
    bad = [k for k in ref.files if k not in out or out[k].dtype != ref[k].dtype or out[k].shape != ref[k].shape or not np.array_equal(out[k], ref[k], equal_nan=True)]
    extra = [k for k in out if k not in ref.files]
    print(f"{len(ref.files)} golden arrays, {len(bad)} differ, {len(extra)} new"); print(bad[:20])
    sys.exit(1 if bad else 0)
