"""The training recipe across frameworks: step parity per trick configuration, one random stream per
trick, resume after SIGKILL, checkpoint errors, the recipe as data, the CLI, and (slow) a short CIFAR-10
run from the shared archive.

Everything runs a tiny fastnet (width 4) on a few digits images so the file stays fast on 2 cores.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jax_impl
import torch_impl
from jax_impl import train as jtrain
from parity.convert import flax_to_torch_state_dict, nchw_to_nhwc, torch_state_dict_to_flax
from conftest import slow_scale
from torch_impl import train as ttrain
from twintricks.datasets import load_digits
from twintricks.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from twintricks.recipe import TrainConfig, fit
from twintricks.threads import xla_thread_flag
from twintricks.tricks import TRICKS

from conftest import CHILD_XLA_FLAGS
from conftest import CIFAR10_ARCHIVE as ARCHIVE


@pytest.fixture(scope="module")
def tiny():
    """32 train / 16 test digits images (every class present)."""
    return load_digits().subset(train=32, test=16)


def _config(**kw):
    base = dict(model="fastnet", width=4, batch_size=8, eval_batch_size=16, epochs=2, progress=False, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def _jax_record(record):
    """A torch_impl params NamedTuple (or a plain tuple of them) as the jax_impl NamedTuple(s) of
    the same name and fields."""
    if type(record) is tuple:
        return tuple(_jax_record(r) for r in record)
    cls = getattr(jax_impl, type(record).__name__)
    # a field in the images' layout (random erasing's per-pixel fill) goes NCHW -> NHWC
    return cls(*(jnp.asarray(nchw_to_nhwc(f.cpu().numpy()) if name == "fill" else f.cpu().numpy())
                 for name, f in zip(record._fields, record)))


def _pair(config, dataset):
    """A torch and a jax trainer starting from the same weights (torch's init, converted)."""
    t = ttrain.Trainer(config, dataset, device="cpu")
    j = jtrain.Trainer(config, dataset)
    v = torch_state_dict_to_flax(t.model.state_dict())
    j.state = {**j.state, "params": jax.tree_util.tree_map(jnp.asarray, v["params"]),
               "batch_stats": jax.tree_util.tree_map(jnp.asarray, v["batch_stats"])}
    j.state["opt_state"] = j.tx.init(j.state["params"])
    return t, j


def _flat(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}/"))
        else:
            out[prefix + k] = np.asarray(v)
    return out


# One configuration per trick (and per optimizer). The step-parity tolerance on updated weights:
# float32 gradients differ in the last bits (different conv/reduction orders in oneDNN and XLA);
# after one SGD step of lr 0.05 that is ~1e-7 absolute. Adam-type steps divide by sqrt(v)+eps,
# which for a parameter with a tiny gradient turns a last-bit gradient difference into a
# visible update difference, so they get the looser bound (still 100x below the step size lr).
CONFIGS = {  # every trick at least once, composed; SGD, AdamW and AdaBound (AMSBound/AdaBoundW
    # are flags of the same update, proven against torch step by step in tests/test_optim.py)
    "sgd+smoothing+mixup+step-schedule": (dict(label_smoothing=0.1, mixup=1.0, schedule="step", warmup_epochs=0.5), 2e-6),
    "adamw+cutout+ricap": (dict(optimizer="adamw", cutout=8, cutout_holes=2, ricap=0.3), 2e-5),
    "adabound+crop-flip+autoaugment": (dict(optimizer="adabound", crop_flip=True, autoaugment="cifar10"), 2e-5),
    "sgd+randaugment+trivialaugment+augmix": (dict(randaugment=True, trivialaugment=True, augmix=True, augmix_width=2), 2e-6),
    # timm-style switching, per image, with label smoothing; random erasing with a colour per box
    "sgd+smoothing+mixup-cutmix-switch+random-erasing": (
        dict(label_smoothing=0.1, mixup=0.8, cutmix=1.0, mix_mode="elem", random_erasing=0.5,
             random_erasing_mode="rand", random_erasing_count=2), 2e-6),
    # CutMix alone (timm's cutmix_minmax boxes, per pair, mixing 80% of the draws); per-pixel noise
    "adamw+cutmix-minmax+random-erasing-pixel": (
        dict(optimizer="adamw", cutmix=1.0, cutmix_minmax=(0.3, 0.7), mix_mode="pair", mix_prob=0.8,
             random_erasing=1.0, random_erasing_mode="pixel"), 2e-5),
}



def _switched_on(kw) -> set[str]:
    config = TrainConfig(**kw)
    return {t.name for t in TRICKS if t.enabled(config)}


# A random trick that no entry above switches on gets one of its own, from its example settings
# (distillation, which draws nothing, has test_step_parity_distillation).
CONFIGS.update({
    f"sgd+{t.name} (its example)": (t.example, 2e-6)
    for t in TRICKS
    if t.stream is not None and not any(t.name in _switched_on(kw) for kw, _ in CONFIGS.values())
})


def _check_the_draw_exercises_the_tricks(name, step, aug):
    """The fixed-seed draws of the new tricks' configurations are not trivial: some images erased
    and some not, both CutMix boxes and mixup blends (switching), a skipped pair (mix_prob)."""
    if "random_erasing" in aug and step == 0:
        erased = (aug["random_erasing"].height > 0).any(dim=1)
        assert erased.any() and (not erased.all() or name.endswith("pixel")), erased
    if "cutmix" in aug and step == 0:
        assert "mixup" not in aug  # taken over by the switch
        p = aug["cutmix"]
        if "switch" in name:
            assert p.use_cutmix.any() and (~p.use_cutmix & (p.lam < 1)).any(), p
        else:
            assert not p.use_cutmix.any() or (p.height > 0).any()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_step_parity(name, tiny):
    """Same weights, batch and trick parameters → same loss (rtol 1e-4) and updated weights, two steps."""
    kw, atol = CONFIGS[name]
    config = _config(**kw)
    t, j = _pair(config, tiny)
    images = t.data.train_images[:8]
    labels = t.data.train_labels[:8]
    images_j = jnp.asarray(tiny.train_images[:8])
    labels_j = jnp.asarray(tiny.train_labels[:8])
    for step in range(2):
        aug = t.sample_aug(8)
        _check_the_draw_exercises_the_tricks(name, step, aug)
        aug_j = {k: _jax_record(v) for k, v in aug.items()}
        lt, _ = t.train_step(images, labels, aug)
        lj, _ = j.train_step(images_j, labels_j, aug_j)
        np.testing.assert_allclose(float(lj), float(lt), rtol=1e-4)
    mine = _flat(torch_state_dict_to_flax(t.model.state_dict()))
    theirs = _flat(jax.device_get(j.variables))
    assert mine.keys() == theirs.keys()
    for k in mine:
        np.testing.assert_allclose(theirs[k], mine[k], rtol=1e-4, atol=atol, err_msg=k)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_epochs_with_every_trick_sample_in_the_step_and_compile_once(backend, tiny):
    """The sampling path (not fed by a test) works with every trick on, and jax compiles the step once."""
    config = _config(epochs=2, crop_flip=True, autoaugment="svhn", cutout=6, mixup=0.4, label_smoothing=0.1)
    trainer = (ttrain.Trainer(config, tiny, device="cpu") if backend == "torch" else jtrain.Trainer(config, tiny))
    losses = [trainer.train_epoch(e)["loss"] for e in range(2)]
    assert np.isfinite(losses).all() and trainer.step == 2 * (32 // 8)
    if backend == "jax":
        assert trainer._epoch_step._cache_size() == 1  # the second epoch reused the first compilation


def _records_equal(a, b):
    """Two params records (or tuples of them) of either framework hold the same values."""
    if type(a) is tuple:
        return all(_records_equal(x, y) for x, y in zip(a, b, strict=True))
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b, strict=True))


def _draws(backend, config, dataset, steps=3):
    """The trick parameters of the first ``steps`` steps (jax: from the same step keys)."""
    if backend == "torch":
        t = ttrain.Trainer(config, dataset, device="cpu")
        return [{k: jax.tree_util.tree_map(lambda a: a.numpy(), v) for k, v in t.sample_aug(8).items()} for _ in range(steps)]
    j = jtrain.Trainer(config, dataset)
    key, out = j.state["key"], []
    for _ in range(steps):
        key, sub = jax.random.split(key)
        out.append(j.sample_aug(sub, 8))
    return out


def _clashes(t) -> set:
    """The tricks ``t`` cannot run with (``excludes``), or runs itself or is run by (``takes_over``)."""
    return set(t.excludes) | set(t.takes_over) | {o.name for o in TRICKS if t.name in o.takes_over}


def _together():
    """The random tricks in a few sets, each trick in exactly one (some samplers are slow to draw
    eagerly: each draws twice in the test, alone and in its set), a set as many tricks as can run
    together; a trick left alone gets a companion it can run with. As option settings (the tricks'
    :attr:`~twintricks.tricks.Trick.example`\\ s, merged)."""
    left, sets = list(RANDOM), []
    while left:
        on = []
        for t in list(left):
            if not _clashes(t) & {o.name for o in on}:
                on.append(t)
                left.remove(t)
        if len(on) == 1:
            on.append(next(o for o in RANDOM[::-1] if o is not on[0] and not _clashes(on[0]) & {o.name}))
        sets.append({k: v for t in on for k, v in t.example.items()})
    return sets


RANDOM = [t for t in TRICKS if t.stream is not None]
MANY = _together()


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_each_trick_draws_from_its_own_stream(backend, tiny):
    """Enabling more tricks never changes another trick's draws for the same seed and step: each
    random trick of the recipe (from its example settings) draws alone what it draws with every
    other trick it can run with; and each step draws afresh."""
    many = [_draws(backend, _config(**kw), tiny) for kw in MANY]
    checked = set()
    for t in RANDOM:
        alone = _draws(backend, _config(**t.example), tiny)
        assert not _records_equal(alone[0][t.name], alone[1][t.name]), t.name  # each step draws afresh
        for draws in many:
            if t.name in draws[0]:
                assert all(_records_equal(a[t.name], b[t.name]) for a, b in zip(alone, draws)), t.name
                checked.add(t.name)
    assert checked == {t.name for t in RANDOM} and all(len(d[0]) > 1 for d in many)
    # a trick taken over draws nothing of its own: with CutMix on, the switch draws for mixup
    switch = _draws(backend, _config(mixup=1.0, cutmix=1.0), tiny)
    assert set(switch[0]) == {"cutmix"}


def test_config_and_command_line_come_from_one_declaration():
    """Every option is a TrainConfig field with its default, a train flag with the same default and
    help, and config.json round-trips."""
    import argparse

    from twintricks.recipe import OPTIONS
    from twintricks_cli.train import add_parser, config_from_args

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["train"])
    config = config_from_args(args)
    assert config == TrainConfig(out=config.out)  # the CLI's defaults are TrainConfig's
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    assert list(fields) == [o.name for o in OPTIONS]
    for o in OPTIONS:
        assert fields[o.name] == o.default
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    flags = parser.parse_args(["train", "--crop-scale", "0.5", "0.9", "--milestones", "0.3", "--no-nesterov",
                               "--cutout", "4", "--autoaugment", "svhn", "--lr", "0.1"])
    c = config_from_args(flags)
    assert (c.crop_scale, c.milestones, c.nesterov, c.cutout, c.autoaugment, c.lr) == ((0.5, 0.9), (0.3,), False, 4, "svhn", 0.1)
    assert [t.name for t in c.enabled_tricks()] == ["autoaugment", "cutout"]


def test_crop_scale_default_depends_on_the_data_set():
    """No --crop-scale: torchvision's RandomResizedCrop scale (0.08, 1) for streamed images, the
    milder (0.35, 1) for the 32 px in-memory sets; a given value is kept; config.json records the
    value used, so a resume reads it back unchanged."""
    assert TrainConfig(dataset="folder", data_dir="d", crop_flip=True).crop_scale == (0.08, 1.0)
    assert TrainConfig(dataset="packed", data_dir="d").crop_scale == (0.08, 1.0)
    assert TrainConfig(dataset="digits", crop_flip=True).crop_scale == (0.35, 1.0)
    assert TrainConfig(dataset="shards", data_dir="d", crop_scale=(0.5, 1)).crop_scale == (0.5, 1.0)
    streamed = TrainConfig(dataset="folder", data_dir="d", crop_flip=True)
    assert streamed.to_dict()["crop_scale"] == [0.08, 1.0]
    assert TrainConfig.from_dict({**streamed.to_dict(), "crop_scale": [0.2, 1.0]}).crop_scale == (0.2, 1.0)


def test_cutmix_and_random_erasing_options():
    """The switch's and random erasing's flags reach the config; CutMix takes mixup over; their
    settings without the trick on are refused (they would do nothing)."""
    import argparse

    from twintricks_cli.train import add_parser, config_from_args

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    c = config_from_args(parser.parse_args([
        "train", "--mixup", "0.8", "--cutmix", "1.0", "--mix-switch-prob", "0.3", "--mix-prob", "0.9", "--mix-mode",
        "pair", "--cutmix-minmax", "0.2", "0.8", "--random-erasing", "0.25", "--random-erasing-mode", "pixel",
        "--random-erasing-count", "3"]))
    assert (c.mixup, c.cutmix, c.mix_switch_prob, c.mix_prob, c.mix_mode, c.cutmix_minmax) == (0.8, 1.0, 0.3, 0.9, "pair", (0.2, 0.8))
    assert (c.random_erasing, c.random_erasing_mode, c.random_erasing_count) == (0.25, "pixel", 3)
    assert [t.name for t in c.enabled_tricks()] == ["random_erasing", "cutmix"] and c.soft_targets()
    assert TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert [t.name for t in TrainConfig(mixup=0.8).enabled_tricks()] == ["mixup"]
    with pytest.raises(ValueError, match="`mix_prob` is a setting of `cutmix`"):
        TrainConfig(mixup=0.8, mix_prob=0.5)
    with pytest.raises(ValueError, match="`random_erasing_mode` is a setting of `random_erasing`"):
        TrainConfig(random_erasing_mode="rand")
    with pytest.raises(ValueError, match="`cutmix` and `ricap`"):
        TrainConfig(cutmix=1.0, ricap=0.3)
    with pytest.raises(SystemExit, match="random_erasing"):
        config_from_args(parser.parse_args(["train", "--random-erasing", "1.5"]))


def test_a_checkpoint_older_than_an_option_resumes_with_its_default():
    """A checkpoint written before an option existed records no value for it: it ran with the
    default (trick off), so it resumes a run at the default and is refused for another value."""
    from twintricks.checkpoint import check_resume_compatible

    old = TrainConfig(mixup=0.4).to_dict()
    for name in ("cutmix", "cutmix_minmax", "mix_prob", "mix_switch_prob", "mix_mode", "random_erasing",
                 "random_erasing_mode", "random_erasing_count"):
        del old[name]
    check_resume_compatible({"framework": "jax", "config": old}, TrainConfig(mixup=0.4), "jax")
    with pytest.raises(CheckpointError, match="cutmix: checkpoint 0.0 vs now 1.0"):
        check_resume_compatible({"framework": "jax", "config": old}, TrainConfig(mixup=0.4, cutmix=1.0), "jax")


def test_step_parity_distillation(tiny):
    """A frozen teacher (a resnet18, converted) gives the same distillation step in both frameworks."""
    torch.manual_seed(0)
    teacher = torch_impl.models.create_model("resnet18", 10, width=4)
    teacher.eval()
    sd = {k: v.numpy() for k, v in teacher.state_dict().items()}
    config = _config(kd_temperature=3.0, kd_alpha=0.7, teacher="(in memory)")
    t = ttrain.Trainer(config, tiny, device="cpu", teacher=("resnet18", 4, sd))
    j = jtrain.Trainer(config, tiny, teacher=("resnet18", 4, torch_state_dict_to_flax(sd)))
    v = torch_state_dict_to_flax(t.model.state_dict())
    j.state = {**j.state, "params": v["params"], "batch_stats": v["batch_stats"]}
    j.state["opt_state"] = j.tx.init(j.state["params"])
    lt, _ = t.train_step(t.data.train_images[:8], t.data.train_labels[:8], {})
    lj, _ = j.train_step(jnp.asarray(tiny.train_images[:8]), jnp.asarray(tiny.train_labels[:8]), {})
    np.testing.assert_allclose(float(lj), float(lt), rtol=1e-4)
    # the teacher pulls: the loss differs from the no-teacher loss of the same student
    plain = ttrain.Trainer(_config(), tiny, device="cpu")  # same seed: the same initial student
    assert abs(float(plain.train_step(t.data.train_images[:8], t.data.train_labels[:8], {})[0]) - float(lt)) > 1e-3


def test_cross_framework_teacher_checkpoint(tiny, tmp_path):
    """A teacher checkpoint written by either backend loads into the other with the same eval logits."""
    from twintricks_cli.train import load_teacher

    config = _config(model="resnet18", width=2, epochs=1)
    t = ttrain.Trainer(config, tiny, device="cpu")
    t.train_step(t.data.train_images[:8], t.data.train_labels[:8], {})  # running stats away from init
    save_checkpoint(tmp_path / "t.ckpt", {**t.get_state(), "framework": "torch", "config": config.to_dict(), "epoch": 1})
    name, width, variables = load_teacher(str(tmp_path / "t.ckpt"), "jax", 10)
    assert (name, width) == ("resnet18", 2)
    x = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype(np.float32)
    t.model.eval()
    want = t.model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).detach().numpy()
    got = jax_impl.models.create_model(name, 10, width=width).apply(variables, jnp.asarray(x), train=False)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)  # float32 conv order
    # and back: the jax-format weights as a jax checkpoint, loaded for a torch student
    save_checkpoint(tmp_path / "j.ckpt", {"framework": "jax", "model_name": name, "width": width, "num_classes": 10,
                                          "model": variables, "config": config.to_dict(), "epoch": 1})
    _, _, sd = load_teacher(str(tmp_path / "j.ckpt"), "torch", 10)
    back = ttrain.Trainer(_config(), tiny, device="cpu", teacher=(name, width, sd))
    np.testing.assert_allclose(back.teacher(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).detach().numpy(), want,
                               rtol=1e-6, atol=1e-6)  # round trip of the weights is exact; same torch kernels
    with pytest.raises(CheckpointError, match="classes"):
        load_teacher(str(tmp_path / "t.ckpt"), "jax", 5)


def test_weight_conversion_round_trip_of_trained_model(tiny):
    """A trained torch model converted to jax (and back) predicts the same in eval mode (running stats too)."""
    config = _config(epochs=1)
    t = ttrain.Trainer(config, tiny, device="cpu")
    t.train_epoch(0)
    j = jtrain.Trainer(config, tiny)
    v = jax.tree_util.tree_map(jnp.asarray, torch_state_dict_to_flax(t.model.state_dict()))
    t.model.load_state_dict({k: torch.from_numpy(a) for k, a in flax_to_torch_state_dict(v).items()})  # round trip
    j.state = {**j.state, **v}
    assert abs(t.evaluate()["loss"] - j.evaluate()["loss"]) < 1e-5  # float32 eval of 16 images
    assert t.evaluate()["acc"] == j.evaluate()["acc"]


# ----------------------------------------------------------------------------- resume after SIGKILL

# the children's end: SIGKILL after step S of epoch E (1-based, argument "E:S"), whatever was saved before
_KILL_AND_FIT = textwrap.dedent(
    """
    if kill:
        kill_epoch, kill_step = map(int, kill.split(":"))
        train_epoch = trainer.train_epoch
        def killing(epoch, on_step=None):
            def hook(done):
                on_step(done)
                if (epoch + 1, done) == (kill_epoch, kill_step):
                    os.kill(os.getpid(), signal.SIGKILL)
            return train_epoch(epoch, on_step=hook)
        trainer.train_epoch = killing
    fit(trainer, cfg, out=out, log=lambda line: print(line, flush=True))
    """
)

_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from twintricks.datasets import ImageDataset
    from twintricks.recipe import TrainConfig, fit
    backend, out, kill, resume, data = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1", sys.argv[5]
    if backend == "torch":
        import torch; torch.set_num_threads(1)
        from torch_impl.train import Trainer
    else:
        from jax_impl.train import Trainer
    cfg = TrainConfig(backend=backend, model="fastnet", width=4, batch_size=16, eval_batch_size=16, epochs=3,
                      crop_flip=True, trivialaugment=True, cutout=6, random_erasing=0.5, mixup=0.4, cutmix=1.0,
                      progress=False, seed=5, save_every=3, resume=resume, out=out)
    with np.load(data) as z:
        ds = ImageDataset("digits", z["xa"], z["ya"], z["xb"], z["yb"], tuple("0123456789"))
    trainer = Trainer(cfg, ds)
    """
) + _KILL_AND_FIT


def _children_env(tmp_path) -> dict:
    """The environment of the kill/resume children: one CPU thread for XLA (torch sets its own),
    and a persistent compilation cache that the children share, so that only the first one
    compiles the step (the others load the same executable: the same results, minutes less)."""
    return {**os.environ, "XLA_FLAGS": f"{CHILD_XLA_FLAGS} {xla_thread_flag(1)}",
            "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "xla-cache"), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def _child(backend, out, kill, resume, data, env):
    return subprocess.run(
        [sys.executable, "-c", _CHILD, backend, str(out), kill, "1" if resume else "0", str(data)],
        capture_output=True, text=True, env=env, timeout=600,
    )


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_resume_after_sigkill_mid_epoch_is_bit_identical(backend, tmp_path):
    """``save_every=3`` with 4 steps per epoch: checkpoints at steps 3 (epoch 1, step 3), 4 (epoch
    end), 6 (epoch 2, step 2), 8... The run is SIGKILLed after step 7 (epoch 2, step 3), so the
    last checkpoint is from the middle of epoch 2; resumed, it redoes step 3 of epoch 2 with the
    same batch and draws and ends with bit-identical weights, optimizer step and metrics to an
    uninterrupted run (the three runs are subprocesses)."""
    ds = load_digits().subset(train=64, test=16)
    data = tmp_path / "data.npz"
    np.savez(data, xa=ds.train_images, ya=ds.train_labels, xb=ds.test_images, yb=ds.test_labels)
    env = _children_env(tmp_path)
    full = _child(backend, tmp_path / "full", "", False, data, env)
    assert full.returncode == 0, full.stderr[-3000:]
    killed = _child(backend, tmp_path / "cut", "2:3", False, data, env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    cut = load_checkpoint(tmp_path / "cut" / "checkpoint.ckpt")
    assert (cut["epoch"], cut["step_in_epoch"], cut["step"]) == (1, 2, 6)  # mid-epoch, one step before the kill
    assert cut["progress"]["correct"] >= 0 and len(cut["history"]) == 1
    resumed = _child(backend, tmp_path / "cut", "", True, data, env)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout and "at step 2 of epoch 2" in resumed.stdout
    a = load_checkpoint(tmp_path / "full" / "checkpoint.ckpt")
    b = load_checkpoint(tmp_path / "cut" / "checkpoint.ckpt")
    assert a["epoch"] == b["epoch"] == 3 and a["step"] == b["step"] == 12 and b["step_in_epoch"] == 0
    fa, fb = _flat(a["model"]), _flat(b["model"])
    assert fa.keys() == fb.keys()
    for k in fa:
        np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)
    # metrics.jsonl is rewritten from the checkpoint's history: one line per epoch, no duplicates;
    # the interrupted epoch's loss and accuracy are those of the uninterrupted run (its sums were saved)
    lines = [json.loads(x) for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2, 3]
    for x, y in zip(lines, a["history"]):
        assert (x["train_loss"], x["train_acc"], x["test_loss"]) == (y["train_loss"], y["train_acc"], y["test_loss"])


# ----------------------------------------------------------------------------- checkpoint errors


@pytest.fixture()
def saved_run(tiny, tmp_path):
    config = _config(epochs=1, out=str(tmp_path))
    fit(ttrain.Trainer(config, tiny, device="cpu"), config, out=tmp_path, log=lambda s: None)
    return config, tmp_path / "checkpoint.ckpt"


def test_corrupt_checkpoint_is_reported(saved_run, tiny):
    config, path = saved_run
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="corrupt"):
        fit(ttrain.Trainer(_config(epochs=2), tiny, device="cpu"), _config(epochs=1, resume=True), out=path.parent)
    path.write_bytes(b"not a checkpoint at all, just text" * 3)
    with pytest.raises(CheckpointError, match="not a twintricks checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(path.parent / "missing.ckpt")


def test_mismatched_checkpoint_is_reported(saved_run, tiny):
    config, path = saved_run
    other = _config(epochs=1, lr=0.01, resume=True)
    with pytest.raises(CheckpointError, match="lr: checkpoint 0.05 vs now 0.01"):
        fit(ttrain.Trainer(other, tiny, device="cpu"), other, out=path.parent, log=lambda s: None)
    same = _config(epochs=1, resume=True)
    jt = jtrain.Trainer(same, tiny)
    with pytest.raises(CheckpointError, match="written by the 'torch' backend"):
        fit(jt, same, out=path.parent, log=lambda s: None)
    # a payload whose weights do not fit the model (wider net) is refused by both backends
    payload = load_checkpoint(path)
    wide = ttrain.Trainer(_config(width=6), tiny, device="cpu").get_state()
    with pytest.raises(CheckpointError, match="does not fit"):
        ttrain.Trainer(same, tiny, device="cpu").set_state({**payload, "model": wide["model"]})
    jpayload = jt.get_state()
    wide_j = torch_state_dict_to_flax(wide["model"])
    with pytest.raises(CheckpointError, match="shape"):
        jt.set_state({**jpayload, "model": wide_j})


def test_checkpoint_is_written_atomically(tmp_path):
    """save_checkpoint leaves no temporary file and replaces the old file whole."""
    save_checkpoint(tmp_path / "c.ckpt", {"framework": "torch", "x": np.arange(3)})
    save_checkpoint(tmp_path / "c.ckpt", {"framework": "torch", "x": np.arange(5)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.ckpt"]
    np.testing.assert_array_equal(load_checkpoint(tmp_path / "c.ckpt")["x"], np.arange(5))


# ----------------------------------------------------------------------------- config and CLI


@pytest.mark.parametrize(
    "kw, match",
    [(dict(lr=-1.0), "`lr`"), (dict(mixup=1.0, ricap=0.3), "choose one"), (dict(optimizer="lamb"), "`optimizer`"),
     (dict(label_smoothing=1.5), "`label_smoothing`"), (dict(epochs=0), "`epochs`"), (dict(kd_temperature=0.0), "`kd_temperature`"),
     (dict(ricap=float("inf")), "`ricap`"), (dict(mixup=float("nan")), "`mixup`"), (dict(lr=float("inf")), "`lr`"),
     (dict(weight_decay=float("inf")), "`weight_decay`"), (dict(kd_temperature=float("inf")), "`kd_temperature`")],
)
def test_bad_config_is_a_clear_error(kw, match):
    with pytest.raises(ValueError, match=match):
        _config(**kw)


@pytest.fixture()
def keep_threads():
    """The CLI sets torch's thread count for the process: restore it after the test."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_cli_rejects_a_non_finite_trick_parameter():
    from twintricks_cli import main

    with pytest.raises(SystemExit, match="`ricap` must be"):
        main(["train", "--ricap", "inf"])


def _can_write_in(folder: Path) -> bool:
    try:
        (folder / "probe").write_text("x")
    except OSError:
        return False
    (folder / "probe").unlink()
    return True


def test_out_problems_fail_before_the_data_loads(tmp_path, monkeypatch, keep_threads):
    """--out that is a file, lies under a file, or cannot be written: a one-line error naming --out,
    before the data set is loaded."""
    import twintricks_cli.train as cli
    from twintricks_cli import main

    monkeypatch.setattr(cli, "_load_data", lambda config: pytest.fail("the data was loaded before --out was checked"))
    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    with pytest.raises(SystemExit, match=r"--out .*is a file, not a folder"):
        main(["train", "--threads", "1", "--out", str(a_file)])
    with pytest.raises(SystemExit, match=r"--out .*is under a file"):
        main(["train", "--threads", "1", "--out", str(a_file / "run")])
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    target = locked / "run"
    if _can_write_in(locked):  # root ignores file modes: a folder nobody can create instead
        target = Path("/sys/twintricks-test/run")
        if not Path("/sys").is_dir():
            pytest.skip("no unwritable location on this machine")
    with pytest.raises(SystemExit, match=r"--out .*cannot be written"):
        main(["train", "--threads", "1", "--out", str(target)])


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_a_diverging_run_stops_with_a_clear_error(backend, tiny, tmp_path):
    """A loss that becomes NaN/inf stops the run (no summary.json with a bare NaN, no NaN checkpoint)."""
    from twintricks.recipe import TrainingDiverged

    config = _config(epochs=2, lr=1e30, backend=backend)
    Trainer = ttrain.Trainer if backend == "torch" else jtrain.Trainer
    trainer = Trainer(config, tiny, device="cpu") if backend == "torch" else Trainer(config, tiny)
    with pytest.raises(TrainingDiverged, match=r"epoch 1: .*loss is nan.*--lr"):
        fit(trainer, config, out=tmp_path, log=lambda s: None)
    assert not (tmp_path / "summary.json").exists() and not (tmp_path / "checkpoint.ckpt").exists()


def test_cli_exits_non_zero_when_the_loss_diverges(tmp_path, capsys, keep_threads):
    from twintricks_cli import main

    with pytest.raises(SystemExit, match="diverged") as exc:
        main(["train", "--width", "4", "--epochs", "1", "--batch-size", "128", "--lr", "1e30", "--threads", "1",
              "--no-progress", "--out", str(tmp_path)])
    assert exc.value.code != 0
    assert not (tmp_path / "summary.json").exists()


def test_run_records_its_thread_count_and_resume_uses_it(tmp_path, capsys, monkeypatch, keep_threads):
    """torch's results depend on its thread count: config.json and summary.json record it, a resume
    without --threads uses the recorded count, a resume with another count warns."""
    import twintricks_cli.train as cli
    from twintricks_cli import main

    args = ["train", "--width", "4", "--epochs", "1", "--batch-size", "128", "--no-progress", "--out", str(tmp_path)]
    assert main([*args, "--threads", "1"]) == 0
    for name in ("config.json", "summary.json"):
        assert json.loads((tmp_path / name).read_text())["threads"] == 1
    monkeypatch.setattr(cli, "auto_threads", lambda: 2)  # what this machine would choose now
    capsys.readouterr()
    assert main([*args, "--resume"]) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["threads"] == 1
    assert "bit-identical" not in capsys.readouterr().out  # the recorded count was used: no warning
    assert main([*args, "--resume", "--threads", "2"]) == 0
    out = capsys.readouterr().out
    assert "started with 1 thread(s), it resumes with 2" in out and "not be bit-identical" in out


def test_bad_device_is_a_clear_error_in_both_backends(tiny, monkeypatch):
    with pytest.raises(ValueError, match="`device`.*'bogus'"):
        ttrain.Trainer(_config(device="bogus"), tiny)
    with pytest.raises(ValueError, match="`device`.*'bogus'"):
        jtrain.Trainer(_config(device="bogus"), tiny)
    if not jax.devices()[0].platform == "gpu":
        with pytest.raises(ValueError, match="`device` 'cuda'.*no"):
            jtrain.Trainer(_config(device="cuda"), tiny)
    assert jtrain.Trainer(_config(device="cpu"), tiny).device.platform == "cpu"  # honoured, not ignored
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="`device` 'cuda'.*no"):
        ttrain.Trainer(_config(device="cuda"), tiny)


def test_cli_bad_device_fails_before_the_data_loads(monkeypatch, keep_threads):
    import twintricks_cli.train as cli
    from twintricks_cli import main

    monkeypatch.setattr(cli, "_load_data", lambda config: pytest.fail("the data was loaded before --device was checked"))
    for backend in ("torch", "jax"):
        with pytest.raises(SystemExit, match="`device`.*'bogus'"):
            main(["train", "--backend", backend, "--device", "bogus", "--threads", "1"])


def test_batch_larger_than_data_is_a_clear_error(tiny):
    with pytest.raises(ValueError, match="larger than the training set"):
        ttrain.Trainer(_config(batch_size=64), tiny, device="cpu")


def test_cli_writes_its_outputs(tmp_path, capsys):
    from twintricks_cli import main

    out = tmp_path / "run"
    assert main(["train", "--backend", "torch", "--width", "4", "--epochs", "1", "--batch-size", "128",
                 "--threads", "1", "--no-progress", "--out", str(out)]) == 0
    assert {"config.json", "metrics.jsonl", "summary.json", "checkpoint.ckpt", "curves.png"} <= {p.name for p in out.iterdir()}
    summary = json.loads((out / "summary.json").read_text())
    assert {"final_test_acc", "wall_s", "images_per_s", "compile_s"} <= set(summary)
    assert "epoch   1/1" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="choose one"):
        main(["train", "--mixup", "1", "--ricap", "0.3", "--out", str(out)])


# ----------------------------------------------------------------------------- CIFAR-10 (slow)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_cifar10_short_run_trains(backend):
    """A few epochs on (a slow_scale()-sized part of) CIFAR-10 from the shared archive: well above chance."""
    if not ARCHIVE.is_file():
        pytest.skip(f"{ARCHIVE} not present on this machine")
    from twintricks.datasets import load_cifar10

    ds = load_cifar10(ARCHIVE)
    n = max(1000, int(20000 * slow_scale()))
    rng = np.random.default_rng(0)
    tr, te = rng.permutation(50000)[:n], rng.permutation(10000)[: max(500, n // 4)]
    from twintricks.datasets import ImageDataset

    small = ImageDataset("cifar10", ds.train_images[tr], ds.train_labels[tr], ds.test_images[te], ds.test_labels[te], ds.classes)
    config = TrainConfig(backend=backend, dataset="cifar10", width=16, epochs=3, batch_size=64, lr=0.05,
                         crop_flip=True, progress=False)
    Trainer = ttrain.Trainer if backend == "torch" else jtrain.Trainer
    summary = fit(Trainer(config, small), config, log=print)
    assert summary["final_test_acc"] > 0.25  # chance is 0.10


# ----------------------------------------------------------------------------- streamed data sets


def _stream_config(folder, **kw):
    base = dict(dataset="folder", data_dir=str(folder), image_size=16, workers=0, model="fastnet", width=2,
                batch_size=6, eval_batch_size=6, epochs=1, crop_flip=True, progress=False, seed=3)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """3 classes × 8 training and 3 test photo-like JPEGs of 24-64 px sides."""
    from data_images import make_folder

    return make_folder(tmp_path_factory.mktemp("stream") / "d", train=8, test=3)


def test_streamed_batches_are_the_same_bytes_in_torch_and_jax(image_folder):
    """For one seed, torch's batches (NCHW on its device) and jax's (NHWC) are the loader's bytes,
    in the same order, epoch after epoch; the evaluation batches too. The trainers then run no
    crop of their own (the loader cropped each image from the original) and normalise with
    ImageNet's statistics. Without --crop-flip the training view is fixed: the centred square."""
    from twintricks.recipe import device_tricks
    from twintricks.streaming import IMAGENET_MEAN, open_streamed

    cfg = _stream_config(image_folder, cutout=4)
    ds = open_streamed(cfg)
    t, j = ttrain.Trainer(cfg, ds, device="cpu"), jtrain.Trainer(cfg, ds)
    assert [x.name for x in device_tricks(cfg)] == ["cutout"] and [x.name for x in t.tricks] == ["cutout"]
    assert [x.name for x in j.tricks] == ["cutout"] and t.steps_per_epoch == j.steps_per_epoch == 4
    assert t.data.train.crop_scale == j.data.train.crop_scale == cfg.crop_scale  # --crop-scale reaches the loader
    np.testing.assert_allclose(t.mean.flatten().numpy(), IMAGENET_MEAN)
    np.testing.assert_allclose(np.asarray(j.mean), IMAGENET_MEAN)

    def host(data, epoch=None):
        """Each batch as it reached the trainer (NHWC on the host) beside the loader's own."""
        loader = data.train if epoch is not None else data.test
        raw = list(loader.iterator(epoch if epoch is not None else 0))
        arrays = [a for a, _ in data.train_batches(epoch)] if epoch is not None else list(data.eval_batches())
        out = []
        for (x, y, valid), batch in zip(arrays, raw, strict=True):
            x = x.permute(0, 2, 3, 1).numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
            out.append((x, np.asarray(y), np.asarray(valid), batch.images, batch.index))
        return out

    epochs = []
    for epoch in (0, 1):
        tb, jb = host(t.data, epoch), host(j.data, epoch)
        assert len(tb) == len(jb) == 4
        for (tx, ty, _, raw, idx), (jx, jy, *_ , jidx) in zip(tb, jb, strict=True):
            assert tx.shape == (6, 16, 16, 3) and tx.dtype == np.uint8 and jx.dtype == np.uint8
            np.testing.assert_array_equal(tx, raw)
            np.testing.assert_array_equal(jx, raw)
            np.testing.assert_array_equal(ty, jy)
            np.testing.assert_array_equal(idx, jidx)
        epochs.append(np.concatenate([b[0] for b in tb]))
        assert sorted(np.concatenate([b[4] for b in tb]).tolist()) == list(range(24))  # each image once
    assert not np.array_equal(epochs[0], epochs[1])  # a new permutation and new crops
    te, je = host(t.data), host(j.data)
    assert [b[2].tolist() for b in te] == [[True] * 6, [True] * 3 + [False] * 3]  # 9 images, padded
    for a, b in zip(te, je, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
    fixed = _stream_config(image_folder, crop_flip=False)
    t2 = ttrain.Trainer(fixed, open_streamed(fixed), device="cpu")
    views = [{int(i): x for b in host(t2.data, e) for i, x in zip(b[4], b[0])} for e in (0, 1)]
    from PIL import Image

    for i in range(24):  # the same view every epoch, but for a one-pixel shift when the sides differ by <= 1
        w, h = Image.open(image_folder / "train" / t2.data.train.source.name(i)).size
        assert np.array_equal(views[0][i], views[1][i]) or abs(w - h) <= 1, (i, w, h)


def _cli_streamed(backend, kind, folder, out, *extra):
    from twintricks_cli import main

    return main(["train", "--backend", backend, "--dataset", kind, "--data-dir", str(folder), "--image-size", "224",
                 "--workers", "0", "--batch-size", "4", "--eval-batch-size", "4", "--epochs", "1", "--width", "2",
                 "--crop-flip", "--crop-scale", "0.08", "1", "--threads", "1", "--no-progress", "--out", str(out), *extra])


@pytest.fixture(scope="module")
def sources_224(tmp_path_factory):
    """The same six 24-64 px training images (and three test images) as a folder, tar shards and a
    packed set."""
    from data_images import make_folder, write_shards
    from twintricks.data import pack

    root = tmp_path_factory.mktemp("s224")
    folder = make_folder(root / "folder", train=2, test=1)
    return {"folder": folder, "shards": write_shards(folder, root / "shards", per_shard=4), "packed": pack(folder, root / "packed") and root / "packed"}


@pytest.mark.parametrize("kind", ["folder", "shards", "packed"])
@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_both_backends_train_at_224_px_on_every_streamed_source(backend, kind, sources_224, tmp_path, keep_threads):
    """The command line on a synthetic folder, its tar shards and its packed copy: a step at
    --image-size 224 (a model of width 2), the evaluation, and config.json's record of the source."""
    out = tmp_path / "run"
    assert _cli_streamed(backend, kind, sources_224[kind], out) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["image_size"] == 224 and summary["skipped_images"] == 0 and 0 <= summary["final_test_acc"] <= 1
    record = json.loads((out / "config.json").read_text())["data"]
    assert record["train"]["kind"] == kind and record["train"]["images"] == 6 and record["test"]["images"] == 3
    assert record["image_size"] == 224 and record["train"]["classes"] == ["ant", "bee", "cat"]
    assert len(record["train"]["fingerprint"]) == 64


def test_a_streamed_run_resumes_only_on_its_data(image_folder, tmp_path):
    """The checkpoint records the source's index fingerprint: resuming on a changed data set (an
    image added) is refused, naming both; the same data in another place (a moved copy) resumes."""
    import shutil

    from twintricks.streaming import open_streamed

    data = tmp_path / "d"
    shutil.copytree(image_folder, data)
    cfg = _stream_config(data, out=str(tmp_path / "run"))
    fit(ttrain.Trainer(cfg, open_streamed(cfg), device="cpu"), cfg, out=tmp_path / "run", log=lambda s: None)
    moved = tmp_path / "moved"
    shutil.copytree(data, moved)
    again = _stream_config(moved, epochs=2, resume=True, out=str(tmp_path / "run"))
    with pytest.raises(CheckpointError, match="epochs: checkpoint 1 vs now 2"):
        fit(ttrain.Trainer(again, open_streamed(again), device="cpu"), again, out=tmp_path / "run", log=lambda s: None)
    same = _stream_config(moved, resume=True, out=str(tmp_path / "run"))
    logs = []
    fit(ttrain.Trainer(same, open_streamed(same), device="cpu"), same, out=tmp_path / "run", log=logs.append)
    assert any("resumed from" in x for x in logs)
    shutil.copy(moved / "train" / "ant" / "00.jpg", moved / "train" / "ant" / "99.jpg")
    with pytest.raises(CheckpointError, match="trained on other data"):
        fit(ttrain.Trainer(same, open_streamed(same), device="cpu"), same, out=tmp_path / "run", log=lambda s: None)


def test_streamed_options_are_checked_before_the_data_loads(image_folder, tmp_path, monkeypatch, keep_threads):
    import twintricks_cli.train as cli
    from twintricks_cli import main

    real = cli._load_data
    monkeypatch.setattr(cli, "_load_data", lambda config: pytest.fail("the data was loaded before the options were checked"))
    for args, match in (
        (["--image-size", "64"], "`image_size` is a setting of the streamed data sets"),
        (["--workers", "2", "--dataset", "cifar10"], "`workers` is a setting of the streamed"),
        (["--on-bad-image", "skip"], "`on_bad_image` is a setting"),
        (["--dataset", "folder", "--image-size", "4"], r"`image_size` must be .*>= 8|`image_size`"),
        (["--save-every", "0"], "`save_every`"),
    ):
        with pytest.raises(SystemExit, match=match):
            main(["train", "--threads", "1", *args])
    monkeypatch.setattr(cli, "_load_data", real)
    with pytest.raises(SystemExit, match=r"^twintricks train: `data_dir` is required for --dataset folder"):
        main(["train", "--threads", "1", "--dataset", "folder", "--out", str(tmp_path / "a")])
    with pytest.raises(SystemExit, match=r"^twintricks train: .*nowhere"):
        main(["train", "--threads", "1", "--dataset", "packed", "--data-dir", str(tmp_path / "nowhere"), "--out",
              str(tmp_path / "b")])


_STREAM_CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    backend, kill, config = sys.argv[1:4]
    if backend == "torch":
        import torch; torch.set_num_threads(1)
        from torch_impl.train import Trainer
    else:
        from jax_impl.train import Trainer
    from twintricks.recipe import TrainConfig, fit
    from twintricks.streaming import open_streamed
    cfg = TrainConfig.from_dict(json.loads(config))
    out = cfg.out
    trainer = Trainer(cfg, open_streamed(cfg))
    """
) + _KILL_AND_FIT


def _stream_killed_config(backend, folder, out, resume, workers):
    # no on-device trick: their streams' resumption is test_resume_after_sigkill_mid_epoch_is_bit_identical's
    return _stream_config(folder, backend=backend, epochs=2, save_every=2, workers=workers, resume=resume, out=str(out))


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_streamed_run_killed_mid_epoch_resumes_bit_identical(backend, image_folder, tmp_path):
    """A streamed run (4 steps per epoch, a checkpoint every 2) SIGKILLed after step 3 of epoch 2:
    its checkpoint holds the loader's state after step 2 of epoch 2; resumed — with a grain worker
    process this time, where the killed run decoded in its own process — it reads the same third
    batch and ends with the uninterrupted run's weights, bit for bit, and its metrics (the three runs
    are subprocesses)."""
    env = _children_env(tmp_path)

    def child(kill, resume, workers, out="cut"):
        config = _stream_killed_config(backend, image_folder, tmp_path / out, resume, workers)
        return subprocess.run([sys.executable, "-c", _STREAM_CHILD, backend, kill, json.dumps(config.to_dict())],
                              capture_output=True, text=True, env=env, timeout=600)

    full = child("", False, 0, out="full")
    assert full.returncode == 0, full.stderr[-3000:]
    killed = child("2:3", False, 0)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    cut = load_checkpoint(tmp_path / "cut" / "checkpoint.ckpt")
    assert (cut["epoch"], cut["step_in_epoch"], cut["step"]) == (1, 2, 6)
    assert cut["data"]["iterator"]["step"] == 2 and cut["data"]["iterator"]["epoch"] == 1
    assert cut["source"]["train"]["fingerprint"] == json.loads((tmp_path / "full" / "config.json").read_text())["data"]["train"]["fingerprint"]
    resumed = child("", True, 1)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "at step 2 of epoch 2" in resumed.stdout
    a, b = (load_checkpoint(tmp_path / d / "checkpoint.ckpt") for d in ("full", "cut"))
    assert a["step"] == b["step"] == 8 and b["step_in_epoch"] == 0
    fa, fb = _flat(a["model"]), _flat(b["model"])
    assert fa.keys() == fb.keys()
    for k in fa:
        np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)
    for x, y in zip(a["history"], b["history"], strict=True):
        assert (x["train_loss"], x["train_acc"], x["test_loss"], x["test_acc"]) == (y["train_loss"], y["train_acc"], y["test_loss"], y["test_acc"])


def test_bad_images_stop_the_run_by_name_or_are_skipped_and_listed(image_folder, tmp_path, keep_threads):
    """A corrupt JPEG (found when decoded) and an empty file (found by the index): by default a
    one-line error naming the file, before training for the one the index can tell; with
    --on-bad-image skip the run trains, and summary.json counts and lists both."""
    import shutil

    from twintricks_cli import main

    data = tmp_path / "d"
    shutil.copytree(image_folder, data)
    good = (data / "train" / "bee" / "00.jpg").read_bytes()
    (data / "train" / "bee" / "00.jpg").write_bytes(good[: len(good) // 3])  # truncated
    args = ["train", "--dataset", "folder", "--data-dir", str(data), "--image-size", "16", "--workers", "0",
            "--batch-size", "6", "--eval-batch-size", "6", "--epochs", "1", "--width", "2", "--threads", "1",
            "--no-progress"]
    with pytest.raises(SystemExit, match=r"^twintricks train: .*bee/00\.jpg") as info:
        main([*args, "--out", str(tmp_path / "a")])
    assert "\n" not in str(info.value)
    (data / "test" / "ant" / "empty.jpg").write_bytes(b"")
    with pytest.raises(SystemExit, match=r"^twintricks train: .*empty\.jpg") as info:
        main([*args, "--out", str(tmp_path / "b")])
    assert not (tmp_path / "b" / "checkpoint.ckpt").exists()  # refused when indexing, before training
    assert main([*args, "--on-bad-image", "skip", "--out", str(tmp_path / "c")]) == 0
    summary = json.loads((tmp_path / "c" / "summary.json").read_text())
    files = [f for f, _ in summary["skipped_files"]]
    assert summary["skipped_images"] == 2 and any(f.endswith("bee/00.jpg") for f in files)
    assert any(f.endswith("empty.jpg") for f in files)
