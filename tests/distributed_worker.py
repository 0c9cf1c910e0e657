"""Worker programs for tests/test_distributed.py, run in processes of their own
(``python -m torch.distributed.run ... tests/distributed_worker.py CASE OUT``, or plain ``python``
for the jax cases). Each writes what it measured as JSON to ``OUT`` (rank/process 0, or
``OUT.rank<r>`` for each rank where noted) for the test to check.
"""

from __future__ import annotations

import json
import os
import sys
import time


def _write(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f)


# ----------------------------------------------------------------------------- torch


def torch_batchnorm(out):
    """DDP + global-batch BatchNorm on 2 ranks vs one process on the whole batch: outputs,
    gradients and running statistics; and gather_rows / all_reduce_sum."""
    import torch
    import torch.nn as nn

    from torch_impl import distributed as td
    from twintricks.distributed import take_rows

    torch.set_num_threads(1)
    ctx = td.init("cpu")
    assert ctx.world_size == 2 and ctx.backend == "gloo", ctx

    def net():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 5))

    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 3, 8, 8, generator=g) * 3 + 1
    y = torch.randint(0, 5, (8,), generator=g)
    rows = ctx.rows(8)
    result = {}
    for sync in (True, False):
        ref = net()
        loss = nn.functional.cross_entropy(ref(x), y)
        loss.backward()
        model = net()
        ddp = td.wrap_model(model, ctx, sync_bn=sync)
        with td.collective_errors(ctx):
            local = nn.functional.cross_entropy(ddp(x[rows]), y[rows])
            local.backward()
            mean_loss = td.all_reduce_sum(local.detach(), ctx) / ctx.world_size
        bn_ref, bn = ref[1], model[1]
        result[str(sync)] = {
            "kind": type(bn).__name__,
            "loss": abs(float(mean_loss) - float(loss.detach())),
            "grad": max(float((p.grad - q.grad).abs().max()) for p, q in zip(model.parameters(), ref.parameters())),
            "running_mean": float((bn.running_mean - bn_ref.running_mean).abs().max()),
            "running_var": float((bn.running_var - bn_ref.running_var).abs().max()),
            "keys": sorted(model.state_dict()) == sorted(ref.state_dict()),
        }
    gathered = td.gather_rows(x[rows], ctx)
    result["gather"] = bool(torch.equal(gathered, x))
    result["sliced"] = bool(torch.equal(take_rows({"a": (x, y)}, rows)["a"][1], y[rows]))
    result["counts"] = float(td.all_reduce_sum(torch.tensor(float(ctx.rank + 1)), ctx))
    if ctx.is_main:
        _write(out, result)
    del model, ddp  # the DDP modules go before their process group
    td.shutdown(ctx)


def torch_peer_dies(out):
    """Rank 1 exits (or hangs, with TEST_PEER=hangs) after the first collective; rank 0's next collective must fail with a
    PeerLostError (written to OUT with the time it took)."""
    import torch

    from torch_impl import distributed as td

    torch.set_num_threads(1)
    ctx = td.init("cpu", timeout_s=float(os.environ.get("TEST_TIMEOUT_S", "20")))
    t = torch.ones(4)
    td.all_reduce_sum(t, ctx)
    if ctx.rank == 1:
        if os.environ.get("TEST_PEER") == "hangs":  # alive but never joins another collective
            time.sleep(float(os.environ.get("TEST_TIMEOUT_S", "20")) * 3)
        os._exit(3)  # dies without leaving the group, as a killed process would
    time.sleep(0.5)
    t0 = time.monotonic()
    try:
        with td.collective_errors(ctx):
            for _ in range(100):
                td.all_reduce_sum(t, ctx)
                time.sleep(0.05)
        _write(out, {"error": None})
    except td.PeerLostError as exc:
        _write(out, {"error": str(exc), "type": type(exc).__name__, "seconds": time.monotonic() - t0})
    os._exit(0)


def torch_peer_dies_in_run(out):
    """As the torch trainer runs (inside ``joined``): rank 1 dies after the first collective; rank 0
    writes the error that leaves ``joined`` (its type and message)."""
    import torch

    from torch_impl import distributed as td

    torch.set_num_threads(1)
    ctx = td.init("cpu", timeout_s=float(os.environ.get("TEST_TIMEOUT_S", "20")))
    t = torch.ones(4)
    try:
        with td.joined(ctx):
            td.all_reduce_sum(t, ctx)
            if ctx.rank == 1:
                os._exit(3)  # dies without leaving the group, as a killed process would
            time.sleep(0.5)
            with td.collective_errors(ctx):
                for _ in range(100):
                    td.all_reduce_sum(t, ctx)
                    time.sleep(0.05)
        _write(out, {"error": None})
    except Exception as exc:  # noqa: BLE001 - the test checks which error it was
        _write(out, {"error": " ".join(str(exc).split())[:600], "type": type(exc).__name__})
    os._exit(0)


# ----------------------------------------------------------------------------- jax


def jax_two_processes(out, pid):
    """Two jax processes on localhost (jax.distributed, gloo CPU collectives): a global batch
    sharded over both processes' devices; sums and gathers across them."""
    from jax_impl import distributed as jd

    assert jd.initialize()
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jax_impl import cropping, mixing

    mesh = jd.make_mesh()
    n, hw = 8, 8
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, hw, hw, 3), dtype=np.uint8)
    labels = (np.arange(n) % 4).astype(np.int32)
    key = jax.random.key(0)

    @jax.jit
    def step(images, labels, key):
        k1, k2 = jax.random.split(key)
        x = jd.constrain_batch(images, mesh)
        crop = cropping.sample_resized_crop_params(k1, n, (hw, hw))
        x = jd.constrain_batch(cropping.resized_crop(x, crop, size=(hw, hw)), mesh)
        x, t = mixing.ricap(x.astype(jnp.float32), labels, mixing.sample_ricap_params(k2, n, (hw, hw)), num_classes=4)
        x, t = jd.constrain_batch((x, t), mesh)
        return x, t, jnp.sum(x), jnp.sum(t, axis=0)

    x, t, total, tsum = step(*jd.replicate((images, labels), mesh), key)
    res = {
        "process_count": jax.process_count(),
        "devices": len(jax.devices()),
        "spec": str(tuple(x.sharding.spec)),
        "local_rows": [int(s.data.shape[0]) for s in x.addressable_shards],
        "total": float(jd.to_host(total)),
        "tsum": jd.to_host(tsum).tolist(),
        "world": jd.world(mesh, n),
        "main": jd.is_main(),
    }
    # the same computation in this process alone, on its local device, for comparison
    with jax.default_device(jax.local_devices()[0]):
        k1, k2 = jax.random.split(key)
        crop = cropping.sample_resized_crop_params(k1, n, (hw, hw))
        xx = cropping.resized_crop(jnp.asarray(images), crop, size=(hw, hw))
        xx, tt = mixing.ricap(xx.astype(jnp.float32), jnp.asarray(labels), mixing.sample_ricap_params(k2, n, (hw, hw)), num_classes=4)
        rows = slice(pid * n // 2, (pid + 1) * n // 2)
        res["rows_equal"] = bool(np.array_equal(np.asarray(x.addressable_shards[0].data), np.asarray(xx[rows])))
        res["total_single"] = float(jnp.sum(xx))
    _write(f"{out}.rank{pid}", res)
    jax.distributed.shutdown()


def jax_two_devices(out):
    """One process, two host devices: every jax_impl trick's output stays split along the batch,
    with the same values as on one device; AutoAugment runs inside shard_map."""
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import PartitionSpec as P

    from jax_impl import cropping, erasing, mixing
    from jax_impl import policies as autoaugment
    from jax_impl import distributed as jd

    mesh = jd.make_mesh()
    assert mesh.size == 2, jax.devices()
    n, hw = 8, 16
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, hw, hw, 3), dtype=np.uint8)
    labels = (np.arange(n) % 4).astype(np.int32)
    x = jax.device_put(images, jd.batch_sharding(mesh))
    y = jax.device_put(labels, jd.batch_sharding(mesh))
    key = jax.random.key(3)
    crop = cropping.sample_resized_crop_params(key, n, (hw, hw))
    flip = cropping.sample_flip_params(key, n)
    aa = autoaugment.sample_autoaugment_params(key, n, policy="cifar10")
    cut = erasing.sample_cutout_params(key, n, (hw, hw))
    mix = mixing.sample_mixup_params(key, n)
    ric = mixing.sample_ricap_params(key, n, (hw, hw))
    kernels = {  # name: (function of (images, labels, params), params, constrain its output)
        "resized_crop": (lambda a, b, p: cropping.resized_crop(a, p[0], size=(hw, hw), flip=p[1]), (crop, flip), False),
        "autoaugment": (lambda a, b, p: autoaugment.autoaugment(a, p, policy="cifar10"), aa, False),
        "cutout": (lambda a, b, p: erasing.cutout(a.astype(jnp.float32), p, length=4), cut, False),
        "mixup": (lambda a, b, p: mixing.mixup(a.astype(jnp.float32), b, p, num_classes=4), mix, False),
        "ricap": (lambda a, b, p: mixing.ricap(a.astype(jnp.float32), b, p, num_classes=4), ric, False),
        "ricap_constrained": (lambda a, b, p: mixing.ricap(a.astype(jnp.float32), b, p, num_classes=4), ric, True),
    }
    res = {}
    for name, (fn, params, constrain) in kernels.items():
        f = (lambda a, b, p, fn=fn: jd.constrain_batch(fn(a, b, p), mesh)) if constrain else fn
        got = jax.jit(f)(x, y, params)
        want = jax.jit(fn)(jnp.asarray(images), jnp.asarray(labels), params)
        leaves, ref = jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)
        res[name] = {
            "specs": [str(tuple(a.sharding.spec)) for a in leaves],
            "equal": all(bool(np.array_equal(np.asarray(a), np.asarray(b))) for a, b in zip(leaves, ref)),
        }
    for dtype in ("uint8", "float32"):
        imgs = images if dtype == "uint8" else images.astype(np.float32) / 255
        try:
            f = jax.shard_map(
                lambda k, a: autoaugment.autoaugment(a, autoaugment.sample_autoaugment_params(k, a.shape[0], policy="svhn"), policy="svhn"),
                mesh=mesh, in_specs=(P(), P(jd.AXIS)), out_specs=P(jd.AXIS),
            )
            got = np.asarray(jax.jit(f)(key, jax.device_put(imgs, jd.batch_sharding(mesh))))
            half = n // 2  # each device drew its own 4 images' parameters from the same key
            p = autoaugment.sample_autoaugment_params(key, half, policy="svhn")
            want = np.concatenate([np.asarray(autoaugment.autoaugment(jnp.asarray(imgs[i:i + half]), p, policy="svhn"))
                                   for i in (0, half)])
            res[f"shard_map_{dtype}"] = {"ok": True, "max_err": float(np.max(np.abs(got.astype(np.float64) - want)))}
        except Exception as exc:  # the test reports it
            res[f"shard_map_{dtype}"] = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    _write(out, res)


TRAJECTORY_TRICKS = {
    "ricap": dict(crop_flip=True, autoaugment="cifar10", cutout=8, label_smoothing=0.1, ricap=0.3),
    "mixup": dict(crop_flip=True, autoaugment="cifar10", cutout=8, label_smoothing=0.1, mixup=0.4),
}


def _trajectory_config(backend: str):
    from twintricks.recipe import TrainConfig

    tricks = TRAJECTORY_TRICKS[os.environ.get("TEST_TRICKS", "ricap")]
    epochs = int(os.environ.get("TEST_EPOCHS", "3"))
    return TrainConfig(backend=backend, width=4, epochs=epochs, batch_size=16, eval_batch_size=32, progress=False,
                       device="cpu", seed=5, **tricks)


def _tiny_data():
    from twintricks.datasets import load_digits

    return load_digits().subset(train=128, test=32)  # 8 steps of 16 per epoch


def torch_trajectory(out):
    """Per-step global-batch losses of a run with tricks on (1 or 2 ranks under torchrun), and the
    final weights (rank 0 writes)."""
    import numpy as np
    import torch

    from torch_impl import data as tdata
    from torch_impl import distributed as td
    from torch_impl.train import Trainer

    torch.set_num_threads(int(os.environ.get("TEST_THREADS", "1")))  # another reduction order within one process
    ctx = td.init("cpu")
    config = _trajectory_config("torch")
    trainer = Trainer(config, _tiny_data(), dist=ctx)
    rows = ctx.rows(config.batch_size)
    losses = []
    for epoch in range(config.epochs):  # train_epoch's loop, with each step's loss kept
        perm = tdata.epoch_permutation(trainer.data.num_train, generator=trainer.data_generator)
        for i in range(trainer.steps_per_epoch):
            idx = tdata.batch_indices(perm, i, config.batch_size)[rows]
            loss, _ = trainer.train_step(trainer.data.train_images[idx], trainer.data.train_labels[idx])
            losses.append(float(td.all_reduce_sum(loss, ctx)) / ctx.world_size)
    ev = trainer.evaluate()
    if ctx.is_main:
        _write(out, {"losses": losses, "eval": ev, "world": trainer.world})
        np.savez(out + ".npz", **{k: v.detach().numpy() for k, v in trainer.model.state_dict().items()})
    del trainer  # the DDP module goes before its process group
    td.shutdown(ctx)


def jax_trajectory(out):
    """The same for jax on TEST_DEVICES host devices (one process): the jitted epoch step itself."""
    n = int(os.environ.get("TEST_DEVICES", "1"))
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={n}"
    import jax
    import numpy as np

    from jax_impl.train import Trainer

    config = _trajectory_config("jax")
    trainer = Trainer(config, _tiny_data())
    assert trainer.mesh.size == n, trainer.mesh
    losses = []
    for epoch in range(config.epochs):  # train_epoch's loop, with each step's loss kept
        key, pkey = jax.random.split(trainer.state["key"])
        trainer.state = {**trainer.state, "key": key}
        perm = trainer._perm(pkey, trainer.data.num_train)
        for i in range(trainer.steps_per_epoch):
            trainer.state, (loss, _) = trainer._epoch_step(
                trainer.state, trainer.teacher_vars, trainer.data.train_images, trainer.data.train_labels, perm, np.int32(i)
            )
            losses.append(float(loss))
    ev = trainer.evaluate()
    leaves = jax.tree_util.tree_leaves({k: v for k, v in trainer.state.items() if k != "key"})
    _write(out, {"losses": losses, "eval": ev, "world": trainer.world,
                 "replicated": all(x.sharding.is_fully_replicated for x in leaves),
                 "devices": sorted({len(x.sharding.device_set) for x in leaves})})
    flat = jax.tree_util.tree_flatten_with_path(jax.device_get(trainer.variables))[0]
    np.savez(out + ".npz", **{jax.tree_util.keystr(k): np.asarray(v) for k, v in flat})


PARITY_TRICKS = dict(label_smoothing=0.1, cutout=8, ricap=0.3, crop_flip=True, autoaugment="cifar10")


def _parity_config(backend):
    from twintricks.recipe import TrainConfig

    return TrainConfig(backend=backend, model="fastnet", width=4, batch_size=8, eval_batch_size=16, epochs=2,
                       progress=False, seed=3, device="cpu", **PARITY_TRICKS)


def torch_step_parity(out):
    """Two DDP steps on a global batch of 8 with every trick kind; rank 0 saves the initial and
    final weights, the global losses and each step's global trick parameters (for jax_step_parity)."""
    import numpy as np
    import torch

    from torch_impl import distributed as td
    from torch_impl.train import Trainer

    torch.set_num_threads(1)
    ctx = td.init("cpu")
    data = _tiny_data()
    trainer = Trainer(_parity_config("torch"), data, dist=ctx)
    arrays = {"init/" + k: v.detach().numpy().copy() for k, v in trainer.model.state_dict().items()}
    rows = ctx.rows(8)
    images, labels = trainer.data.train_images[:8], trainer.data.train_labels[:8]
    losses, records = [], []
    for step in range(2):
        aug = trainer.sample_aug(8)
        rec = {}
        for name, params in aug.items():
            parts = params if type(params) is tuple else (params,)
            rec[name] = [type(p).__name__ for p in parts]
            for j, p in enumerate(parts):
                for field, value in zip(p._fields, p):
                    arrays[f"aug{step}/{name}/{j}/{field}"] = value.cpu().numpy()
        records.append(rec)
        loss, _ = trainer.train_step(images[rows], labels[rows], trainer.local_aug(aug))
        losses.append(float(td.all_reduce_sum(loss, ctx)) / ctx.world_size)
    arrays.update({"final/" + k: v.detach().numpy() for k, v in trainer.model.state_dict().items()})
    if ctx.is_main:
        np.savez(out + ".npz", **arrays)
        _write(out, {"losses": losses, "records": records, "world": trainer.world})
    del trainer  # the DDP module goes before its process group
    td.shutdown(ctx)


def jax_step_parity(out):
    """The same two steps in jax on TEST_DEVICES host devices, from torch's initial weights and
    trick parameters (written by torch_step_parity to OUT); writes OUT.jax.json / .npz."""
    n = int(os.environ.get("TEST_DEVICES", "2"))
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={n}"
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jax_impl
    from jax_impl.train import Trainer
    from parity.convert import torch_state_dict_to_flax

    saved = dict(np.load(out + ".npz"))
    meta = json.load(open(out))
    data = _tiny_data()
    trainer = Trainer(_parity_config("jax"), data)
    assert trainer.mesh.size == n
    v = torch_state_dict_to_flax({k[5:]: a for k, a in saved.items() if k.startswith("init/")})
    state = {**trainer.state, "params": v["params"], "batch_stats": v["batch_stats"]}
    state["opt_state"] = trainer.tx.init(state["params"])
    trainer.state = jax.device_put(state, trainer._place)
    images, labels = jnp.asarray(data.train_images[:8]), jnp.asarray(data.train_labels[:8])
    losses = []
    for step, rec in enumerate(meta["records"]):
        aug = {}
        for name, types in rec.items():
            parts = []
            for j, tname in enumerate(types):
                cls = getattr(jax_impl, tname)
                parts.append(cls(*(jnp.asarray(saved[f"aug{step}/{name}/{j}/{f}"]) for f in cls._fields)))
            aug[name] = tuple(parts) if len(parts) > 1 else parts[0]
        loss, _ = trainer.train_step(images, labels, aug)
        losses.append(float(loss))
    torch_final = torch_state_dict_to_flax({k[6:]: a for k, a in saved.items() if k.startswith("final/")})
    flat = lambda t: {jax.tree_util.keystr(k): np.asarray(x) for k, x in jax.tree_util.tree_flatten_with_path(t)[0]}  # noqa: E731
    mine, theirs = flat(jax.device_get(trainer.variables)), flat(torch_final)
    _write(out + ".jax.json", {
        "losses": losses, "world": trainer.world, "keys_match": sorted(mine) == sorted(theirs),
        "max_abs": max(float(np.abs(mine[k].astype(np.float64) - theirs[k]).max()) for k in mine),
    })


def _stream_config(backend: str):
    from twintricks.recipe import TrainConfig

    return TrainConfig(backend=backend, dataset="folder", data_dir=os.environ["TEST_FOLDER"], image_size=16, workers=0,
                       width=2, batch_size=6, eval_batch_size=6, epochs=1, crop_flip=True, progress=False, seed=7,
                       device="cpu")


def _record_indices(trainer) -> dict:
    """One epoch and an evaluation of ``trainer`` (a streamed run), with the global image indices
    of every batch its data put on its device(s), by phase."""
    seen = {"train": [], "eval": []}
    phase = ["train"]
    put = trainer.data.put

    def recording(batch):
        seen[phase[0]].append([int(i) for i, ok in zip(batch.index, batch.valid) if ok])
        return put(batch)

    trainer.data.put = recording
    result = trainer.train_epoch(0)
    phase[0] = "eval"
    result.update(trainer.evaluate())
    return {"seen": seen, "result": result, "world": trainer.world, "skipped": trainer.skipped_files()}


def torch_stream_indices(out):
    """A streamed epoch under torchrun: each rank records the global indices of the images it
    trained on, step by step, and evaluated (OUT.rank<r>)."""
    import torch

    from torch_impl import distributed as td
    from torch_impl.train import Trainer
    from twintricks.streaming import open_streamed

    torch.set_num_threads(1)
    ctx = td.init("cpu")
    config = _stream_config("torch")
    trainer = Trainer(config, open_streamed(config), dist=ctx)
    res = _record_indices(trainer)
    _write(f"{out}.rank{ctx.rank}", {**res, "rank": ctx.rank, "world_size": ctx.world_size})
    del trainer  # the DDP module goes before its process group
    td.shutdown(ctx)


def jax_stream_indices(out):
    """The same for jax processes over jax.distributed (one CPU device each; OUT.rank<process>)."""
    from jax_impl import distributed as jd

    jd.initialize()
    import jax

    from jax_impl.train import Trainer
    from twintricks.streaming import open_streamed

    config = _stream_config("jax")
    trainer = Trainer(config, open_streamed(config))
    res = _record_indices(trainer)
    _write(f"{out}.rank{jax.process_index()}", {**res, "rank": jax.process_index(), "world_size": jax.process_count()})
    jax.distributed.shutdown()


if __name__ == "__main__":
    case, out = sys.argv[1], sys.argv[2]
    if case == "jax_two_processes":
        jax_two_processes(out, int(os.environ["JAX_PROCESS_ID"]))
    else:
        globals()[case](out)
