"""Scale-out: the global-batch slicing rule, torch.distributed (DDP on gloo, launched by torchrun),
jax sharding on two host devices and two jax processes (jax.distributed, gloo CPU collectives),
and faults (a peer that dies or hangs).

The multi-process checks run their workers from tests/distributed_worker.py in fresh processes
(``slow``: each start costs seconds of imports and XLA's compile); their sizes are already the
smallest that shows the property (the trajectory tolerances were measured for their 24 steps), so
``slow_scale`` below 1 (CI) cuts cases, not sizes: :data:`CASES_AT_SCALE`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch

from conftest import CHILD_XLA_FLAGS, slow_scale
from twintricks.distributed import BATCH_STAGES, local_batch_size, local_rows, take_rows, world_record

ROOT = Path(__file__).resolve().parents[1]
WORKER = str(ROOT / "tests" / "distributed_worker.py")


#: What CI (``slow_scale() < 1``) runs of the parametrized multi-process checks, each backend's
#: trajectory with one mixing trick (RICAP in jax, mixup in torch: each kernel's split over two jax
#: devices is also :func:`test_jax_two_host_devices_every_trick_stays_sharded`'s) and torchrun's
#: streamed reading at 2 and 3 processes (one process reads every row: tests/test_train.py's
#: streamed runs). A full-scale run (TWINTRICKS_SLOW_SCALE=1) runs every case.
FULL = slow_scale() >= 1
CASES_AT_SCALE = {
    "torch_trajectory": ["ricap", "mixup"] if FULL else ["mixup"],
    "jax_trajectory": ["ricap", "mixup"] if FULL else ["ricap"],
    "torch_stream_processes": [1, 2, 3] if FULL else [2, 3],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "XLA_FLAGS")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", JAX_PLATFORMS="cpu", **extra)
    return env


def _worker_env(**extra) -> dict:
    """:func:`_env` for the child runs of jax: tiny models whose cost is XLA's compile, not their
    steps, so LLVM's level 0 (:data:`conftest.CHILD_XLA_FLAGS`). That holds for the runs of
    tests/distributed_worker.py and for the command-line runs at :data:`CLI_WIDTH` (at the default
    width a run trained 4x slower at level 0, digits 515 -> 133 img/s, for no shorter compile).
    Measured on one ``twintricks train --backend jax --epochs 2`` (digits, cold compilation cache,
    quiet 2-core machine): default width and level 48 CPU-s, width 4 at level 0 25 CPU-s."""
    return _env(**{"XLA_FLAGS": CHILD_XLA_FLAGS, **extra})


#: The command-line runs that check how processes behave together train a width-4 fastnet (what
#: they assert does not depend on the width; the default width's steps were most of their time).
CLI_WIDTH = ["--width", "4"]


def _torchrun(nproc: int, *args, timeout=300, env=None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", f"--master_port={_free_port()}", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env or _env(), capture_output=True, text=True, timeout=timeout)


# ----------------------------------------------------------------------------- the rule


class _Rec(NamedTuple):
    a: np.ndarray
    b: np.ndarray


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_local_rows_split_the_global_batch_in_rank_order(world):
    batch = 12
    rows = [local_rows(batch, r, world) for r in range(world)]
    covered = np.concatenate([np.arange(batch)[s] for s in rows])
    np.testing.assert_array_equal(covered, np.arange(batch))
    assert {s.stop - s.start for s in rows} == {batch // world}


def test_uneven_global_batch_and_bad_rank_are_refused():
    with pytest.raises(ValueError, match="batch_size.*multiple of the world size 3"):
        local_batch_size(8, 3)
    with pytest.raises(ValueError, match="rank"):
        local_rows(8, 2, 2)
    with pytest.raises(ValueError, match="world_size"):
        local_batch_size(8, 0)


def test_take_rows_cuts_every_per_image_field():
    rec = _Rec(np.arange(8), np.arange(16).reshape(8, 2))
    got = take_rows({"crop_flip": (rec, _Rec(np.arange(8) * 2, np.zeros((8, 1)))), "none": None}, slice(2, 4))
    assert isinstance(got["crop_flip"][0], _Rec) and got["none"] is None
    np.testing.assert_array_equal(got["crop_flip"][0].b, [[4, 5], [6, 7]])
    np.testing.assert_array_equal(got["crop_flip"][1].a, [4, 6])
    t = take_rows(_Rec(torch.arange(8), torch.ones(8, 3)), slice(4, 8))
    assert torch.equal(t.a, torch.arange(4, 8))
    with pytest.raises(ValueError, match="params.*0-d"):
        take_rows(_Rec(np.float32(0.5), np.arange(8)), slice(0, 4))  # a batch-wide scalar (mixup's λ)


def test_batch_stages_are_the_mixing_tricks():
    assert BATCH_STAGES == ("mixing",)


def test_world_record():
    assert world_record(2, 4) == {"world_size": 8, "processes": 2, "devices_per_process": 4}
    with pytest.raises(ValueError, match="processes"):
        world_record(0)


# ----------------------------------------------------------------------------- torch, one process


def test_torch_context_without_torchrun_is_one_process(monkeypatch):
    from torch_impl import distributed as td

    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    ctx = td.init("cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed, ctx.backend) == (0, 1, True, False, None)
    t = torch.arange(4.0)
    assert td.gather_rows(t, ctx) is t and td.all_reduce_sum(t, ctx) is t
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(2))
    assert td.wrap_model(model, ctx) is model and type(model[0]) is torch.nn.BatchNorm2d
    with pytest.raises(ValueError, match="timeout_s"):
        td.init("cpu", timeout_s=0)


def test_torch_global_batchnorm_is_batchnorm_outside_a_process_group():
    from torch_impl import distributed as td

    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    model.load_state_dict(ref.state_dict())
    params = list(model.parameters())
    td.convert_batchnorm(model, torch.device("cpu"))
    assert type(model[1]) is td.GlobalBatchNorm2d
    assert all(p is q for p, q in zip(params, model.parameters()))  # an optimizer built before still works
    x = torch.randn(6, 3, 5, 5)
    torch.testing.assert_close(model(x), ref(x), rtol=0, atol=0)
    assert sorted(model.state_dict()) == sorted(ref.state_dict())


def test_torch_under_torchrun_env_checks_its_variables(monkeypatch):
    from torch_impl import distributed as td

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ValueError, match="RANK"):
        td.init("cpu")


# ----------------------------------------------------------------------------- torch, several processes


@pytest.mark.slow
def test_torchrun_two_processes_ddp_batchnorm_and_collectives(tmp_path):
    """DDP on gloo with global-batch BatchNorm: the loss, every gradient and the running statistics
    of 2 ranks × 4 images equal one process's on the 8 images (up to the order of the sums:
    float32, values of order 1, so 1e-5); with local BatchNorm they differ visibly."""
    out = tmp_path / "r.json"
    r = _torchrun(2, WORKER, "torch_batchnorm", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    sync, local = res["True"], res["False"]
    assert sync["kind"] == "GlobalBatchNorm2d" and local["kind"] == "BatchNorm2d"
    assert sync["keys"] and local["keys"]
    for k in ("loss", "grad", "running_mean", "running_var"):
        assert sync[k] < 1e-5, (k, sync)
    assert local["grad"] > 1e-3 and local["running_var"] > 1e-3  # the option does change the result
    assert res["gather"] and res["sliced"] and res["counts"] == 3.0


def _two_ranks(tmp_path, case: str, *, timeout: float, **env) -> dict:
    """Rank 0 and rank 1 of a worker case, started as torchrun would start them (without torchrun,
    which would stop the survivor itself); what rank 0 wrote."""
    out, port = tmp_path / "r.json", _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, case, str(out)], cwd=ROOT,
            env=_env(RANK=str(r), WORLD_SIZE="2", LOCAL_RANK=str(r), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), **env),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        for r in (0, 1)
    ]
    try:
        assert procs[0].wait(timeout=timeout) == 0, procs[0].stdout.read().decode()[-3000:]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("peer", ["dies", "hangs"])
def test_torch_peer_lost_stops_the_other_rank_with_a_clear_error(tmp_path, peer):
    """Two ranks started as torchrun would start them (without torchrun, which would stop the
    survivor itself): rank 1 dies (or hangs) after the first collective; rank 0's next collective
    fails with PeerLostError — at once for a closed connection, at the deadline for a hang."""
    deadline = 6
    res = _two_ranks(tmp_path, "torch_peer_dies", timeout=240, TEST_TIMEOUT_S=str(deadline), TEST_PEER=peer)
    assert res["type"] == "PeerLostError", res
    assert "rank 0 of 2 (gloo)" in res["error"] and "--resume" in res["error"]
    if peer == "dies":
        assert res["seconds"] < deadline, res
    else:
        assert deadline - 0.5 <= res["seconds"] < deadline + 10, res


# ----------------------------------------------------------------------------- jax


def test_jax_mesh_of_local_devices():
    import jax

    from jax_impl import distributed as jd

    mesh = jd.make_mesh(1)
    assert mesh.axis_names == (jd.AXIS,) and mesh.size == 1
    assert jd.world(mesh, 8) == {"world_size": 1, "processes": 1, "devices_per_process": 1}
    with pytest.raises(ValueError, match="devices"):
        jd.make_mesh(len(jax.local_devices()) + 1)
    with pytest.raises(ValueError, match="devices"):
        jd.make_mesh(0)
    assert jd.is_main()
    x = jd.replicate(np.arange(4), mesh)
    np.testing.assert_array_equal(jd.to_host({"x": x})["x"], np.arange(4))
    assert jd.initialize() is False  # no coordinator, no cluster: one process


def test_peer_timeout_follows_the_setting_in_both_backends_and_one_process_jax_errors_pass_through(monkeypatch):
    import jax

    from jax_impl import distributed as jd
    from torch_impl import distributed as td

    monkeypatch.delenv("TWINTRICKS_DIST_TIMEOUT", raising=False)
    assert jd.timeout_from_env() == jd.DEFAULT_TIMEOUT_S == 300
    assert td.init("cpu").timeout_s == 300  # the same setting, read the same way, in both backends
    monkeypatch.setenv("TWINTRICKS_DIST_TIMEOUT", "7.5")
    assert jd.timeout_from_env() == 7.5 == td.init("cpu").timeout_s
    for bad in ("0", "-3", "soon"):
        monkeypatch.setenv("TWINTRICKS_DIST_TIMEOUT", bad)
        with pytest.raises(ValueError, match="TWINTRICKS_DIST_TIMEOUT"):
            jd.timeout_from_env()
        with pytest.raises(ValueError, match="TWINTRICKS_DIST_TIMEOUT"):
            jd.initialize()
        with pytest.raises(ValueError, match="TWINTRICKS_DIST_TIMEOUT"):
            td.init("cpu")
    monkeypatch.delenv("TWINTRICKS_DIST_TIMEOUT")
    with pytest.raises(ValueError, match="timeout_s"):
        jd.initialize(timeout_s=0)
    # one process has no peer to lose: a jax error that looks like a lost connection is left as it is
    with pytest.raises(jax.errors.JaxRuntimeError, match="Connection reset"):
        with jd.collective_errors():
            raise jax.errors.JaxRuntimeError("INTERNAL: Gloo all-reduce failed: Connection reset by peer")


@pytest.mark.slow
def test_jax_two_host_devices_every_trick_stays_sharded(tmp_path):
    """Two host devices in one process: each kernel on a batch split over them returns a batch
    split the same way, with the bytes of the one-device run (the crop and RICAP used to come back
    replicated; RICAP is also checked under the trainer's :func:`jax_impl.distributed.constrain_batch`);
    AutoAugment runs inside ``shard_map`` with its default checks (it used to fail there on uint8)."""
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, WORKER, "jax_two_devices", str(out)], cwd=ROOT, env=_worker_env(),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    for name in ("resized_crop", "autoaugment", "cutout", "mixup", "ricap", "ricap_constrained"):
        assert res[name]["equal"], name
        assert set(res[name]["specs"]) == {"('data',)"}, (name, res[name])
    for dtype in ("uint8", "float32"):
        assert res[f"shard_map_{dtype}"]["ok"], res[f"shard_map_{dtype}"]
        assert res[f"shard_map_{dtype}"]["max_err"] == 0.0


@pytest.mark.slow
def test_jax_two_processes_over_jax_distributed(tmp_path):
    """Two jax processes on localhost (jax.distributed, CPU collectives through gloo), one device
    each: a global batch cut, cropped and RICAP-mixed across both; each process holds its rows,
    equal to the one-process result's, and the global sums agree."""
    out = tmp_path / "r.json"
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, "jax_two_processes", str(out)], cwd=ROOT,
            env=_worker_env(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(p)),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        for p in (0, 1)
    ]
    try:
        for p in procs:
            assert p.wait(timeout=400) == 0, p.stdout.read().decode()[-3000:]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    res = [json.loads(Path(f"{out}.rank{p}").read_text()) for p in (0, 1)]
    for p, r in enumerate(res):
        assert r["process_count"] == 2 and r["devices"] == 2 and r["spec"] == "('data',)"
        assert r["local_rows"] == [4] and r["rows_equal"], r
        assert r["world"] == {"world_size": 2, "processes": 2, "devices_per_process": 1}
        assert r["main"] == (p == 0)
        assert abs(r["total"] - r["total_single"]) <= 1e-6 * abs(r["total_single"])  # a float32 sum, in another order
    assert res[0]["tsum"] == res[1]["tsum"]


# ----------------------------------------------------------------------------- the same run at any world size


def _trajectory(kind: str, n: int, tmp_path, tricks: str) -> tuple[dict, dict]:
    out = tmp_path / f"{kind}-{n}.json"
    env = _worker_env(TEST_TRICKS=tricks, TEST_EPOCHS="3", TEST_DEVICES=str(n))  # 24 steps: the tolerances were measured there
    if kind == "torch":
        r = _torchrun(n, WORKER, "torch_trajectory", str(out), env=env, timeout=900)
    else:
        r = subprocess.run([sys.executable, WORKER, "jax_trajectory", str(out)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(out.read_text()), dict(np.load(f"{out}.npz"))


def _assert_same_trajectory(one, w1, two, w2):
    """The rule both frameworks are held to (fixed seed, global batch 16, 24 steps, lr 0.05).

    Only the order of float32 sums differs between 1 and 2 workers (the loss mean, the gradient,
    BatchNorm statistics). The first three steps, which already depend on the first two updates,
    agree to 1e-5: measured ≤ 2.4e-6 (torch, seeds 5-12, RICAP and mixup) and ≤ 2.4e-7 (jax).
    A trick drawn or cut wrongly is far outside from the first step: every rank taking the first
    rows of each record moved the step-0-2 losses by 8e-4 to 6e-2 (measured, torch, seeds 5, 7, 9).

    After that this tiny network (width 4) amplifies last-bit differences chaotically, at a rate
    that depends on the draws: the first step past 1e-5 came between step 3 and 9, and by step
    24 the losses differed by up to 1.6e-2 (torch RICAP, seed 9; median 2e-3 over 16 runs), the
    final weights by up to 0.25 and the evaluation loss by up to 2.4e-3 (in the 6 runs where it
    was read). So the later steps are held to 3e-2, the evaluation loss to 5e-3, and the final
    weights only to the same names and shapes. An earlier version of this rule (1e-5 for 8 steps,
    2e-3 for 24, weights 1e-2) had been measured on seed 5 alone: seeds 7 and 8 broke it already
    with the torch host generator it was measured with, and seed 5 broke it once that generator's
    seeding changed (:func:`torch_impl.mixing._host_rng`), which moved every torch draw.
    """
    a, b = np.array(one["losses"]), np.array(two["losses"])
    assert len(a) == len(b) >= 24
    np.testing.assert_allclose(b[:3], a[:3], rtol=0, atol=1e-5)
    np.testing.assert_allclose(b, a, rtol=0, atol=3e-2)
    assert one["world"]["world_size"] == 1 and two["world"]["world_size"] == 2
    assert sorted(w1) == sorted(w2) and all(w1[k].shape == w2[k].shape for k in w1)
    assert abs(one["eval"]["loss"] - two["eval"]["loss"]) < 5e-3


@pytest.mark.slow
@pytest.mark.parametrize("tricks", CASES_AT_SCALE["torch_trajectory"])
def test_torch_one_and_two_processes_train_the_same_run(tmp_path, tricks):
    """A fixed seed and global batch, every trick kind on (crop + flip, AutoAugment, Cutout, label
    smoothing, and RICAP or mixup on the gathered global batch): 1 and 2 DDP processes give the
    same per-step loss (:func:`_assert_same_trajectory`)."""
    one, w1 = _trajectory("torch", 1, tmp_path, tricks)
    two, w2 = _trajectory("torch", 2, tmp_path, tricks)
    _assert_same_trajectory(one, w1, two, w2)


@pytest.mark.slow
@pytest.mark.parametrize("tricks", CASES_AT_SCALE["jax_trajectory"])
def test_jax_one_and_two_devices_train_the_same_run(tmp_path, tricks):
    """The same run on 1 and 2 host devices (the jitted epoch step, batch split along "data",
    state replicated): the same per-step loss (:func:`_assert_same_trajectory`), and the state
    stays replicated on both devices."""
    one, w1 = _trajectory("jax", 1, tmp_path, tricks)
    two, w2 = _trajectory("jax", 2, tmp_path, tricks)
    _assert_same_trajectory(one, w1, two, w2)
    assert two["replicated"] and two["devices"] == [2]


# ----------------------------------------------------------------------------- the command line under torchrun


def _cli(*args) -> list[str]:
    return ["-m", "twintricks_cli", "train", "--backend", "torch", "--batch-size", "32", "--no-progress",
            "--crop-flip", "--ricap", "0.3", *args]


def _rank_pid(parent: int, rank: int) -> int | None:
    for line in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        try:
            env = Path(f"/proc/{line}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:
            return int(line)
    return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the worker's pid through /proc")
def test_torchrun_cli_worker_killed_stops_the_run_then_resume_at_another_world_size(tmp_path):
    """``torchrun --nproc_per_node=2 -m twintricks_cli train``: rank 1 is SIGKILLed after the
    first epoch's checkpoint; the run ends non-zero within 60 s (torchrun stops rank 0, or rank 0
    reports the lost peer first); ``--resume`` in one process (a world size changed between save
    and resume, which is supported) continues from epoch 1 and says so; world sizes are recorded."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           *_cli("--epochs", "2", "--out", str(out))]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 600
        while not (out / "checkpoint.ckpt").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        victim = _rank_pid(proc.pid, 1)
        assert victim is not None and proc.poll() is None, "the run ended before rank 1 could be killed"
        assert json.loads((out / "config.json").read_text())["world_size"] == 2
        os.kill(victim, 9)
        t0 = time.monotonic()
        log, _ = proc.communicate(timeout=120)
        stopped_after = time.monotonic() - t0
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert stopped_after < 60, stopped_after
    assert "another training process has stopped" in log or "SIGKILL" in log, log[-2000:]
    r = subprocess.run([sys.executable, *_cli("--epochs", "2", "--out", str(out), "--resume")], cwd=ROOT, env=_env(),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resumed from" in r.stdout and "written at world size 2, the run resumes at 1" in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 1 and summary["epochs"] == 2
    assert [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]


@pytest.mark.slow
def test_torch_ddp_two_and_jax_two_devices_keep_the_step_parity(tmp_path):
    """From the same weights and the same global trick parameters (every trick kind, RICAP on the
    gathered batch), two steps of torch DDP on 2 processes and of jax on 2 devices agree as one
    device of each does (tests/test_train.py::test_step_parity): losses to rtol 1e-4, updated
    weights to 2e-6 (float32 gradients differ in the last bits between oneDNN and XLA; after an
    SGD step of lr 0.05 that is ~1e-7)."""
    out = tmp_path / "p.json"
    r = _torchrun(2, WORKER, "torch_step_parity", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([sys.executable, WORKER, "jax_step_parity", str(out)], cwd=ROOT, env=_worker_env(TEST_DEVICES="2"),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    torch_run, jax_run = json.loads(out.read_text()), json.loads(Path(f"{out}.jax.json").read_text())
    assert torch_run["world"]["world_size"] == 2 and jax_run["world"]["world_size"] == 2
    np.testing.assert_allclose(jax_run["losses"], torch_run["losses"], rtol=1e-4)
    assert jax_run["keys_match"] and jax_run["max_abs"] <= 2e-6, jax_run


@pytest.mark.slow
def test_jax_cli_two_processes_equal_two_devices_in_one_process(tmp_path):
    """``twintricks train --backend jax`` as two processes over jax.distributed (gloo CPU
    collectives, one device each, ``--coordinator``/``--num-processes``/``--process-id``) computes
    exactly what one process with two host devices does: the same program on the same global
    arrays (measured: identical metrics). Only process 0 writes; both record world size 2."""
    args = ["-m", "twintricks_cli", "train", "--backend", "jax", "--epochs", "1", "--batch-size", "32", "--no-progress",
            "--crop-flip", "--ricap", "0.3", "--threads", "1", *CLI_WIDTH]
    multi, single = tmp_path / "multi", tmp_path / "single"
    port = _free_port()
    procs = [
        subprocess.Popen([sys.executable, *args, "--out", str(multi), "--coordinator", f"127.0.0.1:{port}",
                          "--num-processes", "2", "--process-id", str(p)],
                         cwd=ROOT, env=_worker_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for p in (0, 1)
    ]
    try:
        logs = [p.communicate(timeout=900)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    assert "final test accuracy" in logs[0] and "final test accuracy" not in logs[1]  # process 0 reports
    r = subprocess.run([sys.executable, *args, "--out", str(single)], cwd=ROOT, capture_output=True, text=True, timeout=900,
                       env=_worker_env(XLA_FLAGS=f"{CHILD_XLA_FLAGS} --xla_force_host_platform_device_count=2"))
    assert r.returncode == 0, r.stderr[-2000:]
    m, s = (json.loads((d / "metrics.jsonl").read_text().splitlines()[0]) for d in (multi, single))
    for k in ("train_loss", "train_acc", "test_loss", "test_acc"):
        assert m[k] == s[k], (k, m[k], s[k])
    assert json.loads((multi / "summary.json").read_text())["processes"] == 2
    assert json.loads((multi / "config.json").read_text())["world_size"] == 2
    assert json.loads((single / "summary.json").read_text())["devices_per_process"] == 2


@pytest.mark.slow
def test_jax_cli_process_killed_stops_the_other_then_resume_at_another_world_size(tmp_path):
    """``twintricks train --backend jax`` as two processes over jax.distributed: process 1 is
    SIGKILLed after the first epoch's checkpoint. Its connections close, so process 0's next
    collective fails at once: it exits 1 with a message naming itself, the peer timeout and
    ``--resume``, well within the peer timeout (TWINTRICKS_DIST_TIMEOUT, 20 s here: the bound for a
    peer that goes silent without closing its connections; without the clean exit it waited that
    long at jax's shutdown barrier, then aborted). ``--resume`` in one process (world size 2 -> 1,
    supported) continues from epoch 1 and says so."""
    timeout_s = 20
    out = tmp_path / "run"
    args = ["-m", "twintricks_cli", "train", "--backend", "jax", "--epochs", "3", "--batch-size", "32", "--no-progress",
            "--threads", "1", "--out", str(out), *CLI_WIDTH]  # 3 epochs: two left (seconds) when the kill comes
    port = _free_port()
    env = _worker_env(TWINTRICKS_DIST_TIMEOUT=str(timeout_s))
    procs = [
        subprocess.Popen([sys.executable, *args, "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                          "--process-id", str(p)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for p in (0, 1)
    ]
    try:
        deadline = time.monotonic() + 300
        while not (out / "checkpoint.ckpt").exists() and procs[0].poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert procs[0].poll() is None and procs[1].poll() is None, "the run ended before process 1 could be killed"
        assert json.loads((out / "config.json").read_text())["world_size"] == 2
        procs[1].kill()
        t0 = time.monotonic()
        log, _ = procs[0].communicate(timeout=120)
        stopped_after = time.monotonic() - t0
    finally:
        for p in procs:
            p.kill()
            p.communicate()
    assert procs[0].returncode == 1, log[-3000:]
    assert stopped_after < timeout_s, (stopped_after, log[-2000:])
    assert f"process 0 of 2: a collective failed, another training process has stopped or is unreachable (peer timeout {timeout_s} s" in log, log[-2000:]
    assert "--resume" in log
    r = subprocess.run([sys.executable, *args, "--resume"], cwd=ROOT, env=_worker_env(), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resumed from" in r.stdout and "written at world size 2, the run resumes at 1" in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 1 and summary["epochs"] == 3
    assert [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


@pytest.mark.slow
def test_jax_cli_process_hung_ends_the_other_at_the_peer_timeout(tmp_path):
    """Process 1 of a two-process jax run is stopped (SIGSTOP: alive, its connections open, silent)
    after the first checkpoint. No collective fails then; jax's coordination service misses its
    heartbeats and ends process 0 within the peer timeout (TWINTRICKS_DIST_TIMEOUT, 8 s here), a
    non-zero exit with jax's own message naming the silent task (the client aborts: SIGABRT). The
    slack of 15 s covers the start of the check and a loaded machine."""
    timeout_s = 8
    out = tmp_path / "run"
    port = _free_port()
    procs = [
        subprocess.Popen([sys.executable, "-m", "twintricks_cli", "train", "--backend", "jax", "--epochs", "3",
                          "--batch-size", "32", "--no-progress", "--threads", "1", "--out", str(out), *CLI_WIDTH,
                          "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(p)],
                         cwd=ROOT, env=_worker_env(TWINTRICKS_DIST_TIMEOUT=str(timeout_s)), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        for p in (0, 1)
    ]
    try:
        deadline = time.monotonic() + 300
        while not (out / "checkpoint.ckpt").exists() and procs[0].poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert procs[0].poll() is None and procs[1].poll() is None, "the run ended before process 1 could be stopped"
        procs[1].send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        log, _ = procs[0].communicate(timeout=120)
        stopped_after = time.monotonic() - t0
    finally:
        for p in procs:
            p.kill()
            p.communicate()
    assert procs[0].returncode not in (0, None), log[-3000:]
    assert stopped_after < timeout_s + 15, (stopped_after, log[-2000:])
    assert "stopped sending heartbeats" in log or "heartbeat timeout" in log, log[-2000:]


# ----------------------------------------------------------------------------- streamed data, several processes


@pytest.fixture(scope="module")
def stream_folder(tmp_path_factory):
    """3 classes × 8 training and 3 test images (24 and 9): 4 global batches of 6 per epoch."""
    sys.path.insert(0, str(ROOT / "tests"))
    from data_images import make_folder

    return make_folder(tmp_path_factory.mktemp("dist") / "d", train=8, test=3)


def _global_batches(folder):
    """The epoch's global batches of one process, as the loader makes them (the reference)."""
    from twintricks.data import Loader, open_source

    loader = Loader(open_source("folder", folder, split="train"), train=True, batch_size=6, image_size=16, seed=7,
                    workers=0)
    return [b.index.tolist() for b in loader.iterator(0)]


def _check_each_image_once(runs: list[dict], reference: list[list[int]]) -> None:
    """Every process trained on its rows of each global batch (process p: rows [p·b, (p+1)·b)),
    together exactly the one-process batches, so each of the 24 images once; every test image
    evaluated once over all processes; the same metrics in every process."""
    world = len(runs)
    assert sorted(r["rank"] for r in runs) == list(range(world)) and {r["world_size"] for r in runs} == {world}
    b = 6 // world
    for r in sorted(runs, key=lambda r: r["rank"]):
        steps = r["seen"]["train"]
        assert len(steps) == len(reference) == 4
        for step, (mine, whole) in enumerate(zip(steps, reference)):
            assert mine == whole[r["rank"] * b:(r["rank"] + 1) * b], (r["rank"], step, mine, whole)
    trained = [i for r in runs for step in r["seen"]["train"] for i in step]
    assert sorted(trained) == list(range(24))
    evaluated = [i for r in runs for step in r["seen"]["eval"] for i in step]
    assert sorted(evaluated) == list(range(9))
    assert len({json.dumps(r["result"]["acc"]) for r in runs}) == 1 and len({r["result"]["loss"] for r in runs}) == 1
    assert all(r["skipped"] == [] for r in runs)  # gathered from every process (a collective): none here


@pytest.mark.slow
@pytest.mark.parametrize("nproc", CASES_AT_SCALE["torch_stream_processes"])
def test_torch_streamed_processes_each_read_their_rows_and_every_image_once(tmp_path, stream_folder, nproc):
    """torchrun with 1, 2 and 3 processes (DDP, gloo) on a streamed folder: each rank's loader reads
    only its rows of each global batch; over the epoch every image is trained on once, by one rank."""
    out = tmp_path / "r.json"
    r = _torchrun(nproc, WORKER, "torch_stream_indices", str(out), env=_env(TEST_FOLDER=str(stream_folder)))
    assert r.returncode == 0, r.stderr[-3000:]
    runs = [json.loads(Path(f"{out}.rank{p}").read_text()) for p in range(nproc)]
    _check_each_image_once(runs, _global_batches(stream_folder))


@pytest.mark.slow
@pytest.mark.parametrize("nproc", [2])
def test_jax_streamed_processes_each_read_their_rows_and_every_image_once(tmp_path, stream_folder, nproc):
    """2 jax processes over jax.distributed (one CPU device each, gloo collectives) on a streamed
    folder: each process reads its rows of each global batch, placed as one global array
    (``make_array_from_process_local_data``); every image once per epoch. One process: the
    loader's own batches (tests/test_train.py::test_streamed_batches_are_the_same_bytes_in_torch_and_jax);
    3 processes: torch's test above (the rows come from the same framework-free loader; 3 jax
    processes passed too, measured, and cost 110 s of this CI's budget)."""
    out = tmp_path / "r.json"
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, "jax_stream_indices", str(out)], cwd=ROOT,
            env=_worker_env(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES=str(nproc), JAX_PROCESS_ID=str(p),
                     TEST_FOLDER=str(stream_folder)),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        for p in range(nproc)
    ]
    try:
        for p in procs:
            assert p.wait(timeout=600) == 0, p.stdout.read().decode()[-3000:]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    runs = [json.loads(Path(f"{out}.rank{p}").read_text()) for p in range(nproc)]
    _check_each_image_once(runs, _global_batches(stream_folder))


# ----------------------------------------------------------------------------- fault paths end with our line


def test_torch_lost_peer_error_is_not_hidden_by_the_shutdown_barrier(tmp_path):
    """Rank 1 dies inside ``joined`` (the process group's lifetime around ``train``); rank 0's
    PeerLostError (naming the rank, saying --resume) is what leaves ``joined``, not gloo's
    "Connection reset by peer" from the shutdown barrier raised over it."""
    res = _two_ranks(tmp_path, "torch_peer_dies_in_run", timeout=120, TEST_TIMEOUT_S="20")
    assert res["type"] == "PeerLostError", res
    assert res["error"].startswith("rank 0 of 2 (gloo)") and "--resume" in res["error"], res


def _catches_sigterm(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    return bool(int(status.split("SigCgt:")[1].split()[0], 16) >> (signal.SIGTERM - 1) & 1)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the signal mask through /proc")
def test_torchrun_sigterm_prints_our_line_and_exits_143(tmp_path):
    """What torchrun does to a survivor: SIGTERM. The CLI under torchrun's variables (rank 1 of 2,
    blocked in C++ at the rendezvous, rank 0 never comes) prints one line naming the rank and
    --resume, and exits 143 at once rather than when the rendezvous gives up."""
    env = _env(RANK="1", WORLD_SIZE="2", LOCAL_RANK="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
               TWINTRICKS_DIST_TIMEOUT="60")
    proc = subprocess.Popen(
        [sys.executable, "-m", "twintricks_cli", "train", "--backend", "torch", "--no-progress", "--epochs", "1",
         "--out", str(tmp_path / "run")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and not _catches_sigterm(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # on into the data load and the rendezvous
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=50)
        took = time.monotonic() - t0
    finally:
        proc.kill()
    assert proc.returncode == 143, err[-2000:]
    assert took < 10, took
    line = err.strip().splitlines()[-1]
    assert line.startswith("twintricks train: rank 1 of 2: stopped by SIGTERM") and "--resume" in line, err[-2000:]
