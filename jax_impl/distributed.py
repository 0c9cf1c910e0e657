"""Data-parallel training in JAX: a ``jax.sharding.Mesh`` with a ``"data"`` axis, the batch
sharded across it, parameters and optimizer state replicated; several hosts through
``jax.distributed``.

One jitted step runs on global arrays: the trainer puts the data set and the state on the mesh
replicated (:func:`replicate`), cuts the step's global batch inside the step and constrains it to
be split along ``"data"`` (:func:`constrain_batch`). XLA's SPMD partitioner then runs each
device's rows on that device and inserts the collectives: the mean loss, the gradient and the
BatchNorm statistics are sums over the global batch (so BatchNorm always sees the global batch,
as ``SyncBatchNorm`` does in torch), and the batch-mixing tricks (mixup, RICAP) fetch the rows
they need. Every trick's parameters are drawn inside the step for the global batch from the
run's key, so the draws never depend on the number of devices (:mod:`twintricks.distributed`).

Several hosts: call :func:`initialize` before anything else touches jax (``twintricks train``
does it with ``--coordinator``/``--num-processes``/``--process-id`` or the environment). Every
process then sees every device of the job in ``jax.devices()``, runs the same program on the same
global arrays, and owns the shards on its local devices. Each process loads the whole data set
(it is replicated). Only process 0 (:func:`is_main`) writes files. Example, two machines with a
SLURM allocation (jax detects SLURM's variables itself)::

    #SBATCH --nodes=2 --ntasks-per-node=1 --gpus-per-node=4
    srun twintricks train --backend jax --dataset cifar10 --batch-size 512 --out runs/c10

or by hand on each machine (process ``i`` of ``n``)::

    JAX_COORDINATOR_ADDRESS=host0:8476 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=i \\
        twintricks train --backend jax --batch-size 512 --out runs/c10

On CPU, processes exchange data through gloo (``jax_cpu_collectives_implementation``), which
:func:`initialize` selects.

Faults: every wait for a peer is bounded by ``timeout_s`` (default 300 s, or
``TWINTRICKS_DIST_TIMEOUT``, the setting torch's process group uses): jax's coordination service
declares a process that sent no heartbeat for that long dead, and ends the others (the
coordination client aborts them with SIGABRT, exit status 134 in a shell, after a message naming
the task that stopped); the same bound is the shutdown barrier's. A process that dies (killed,
crashed) closes its connections, so the next collective of the others fails at once:
:func:`collective_errors` turns that into a :class:`PeerLostError` naming this process, the lost
peer's failure and the timeout, and :func:`leave` ends the process at once with status 1 (a
normal exit would first wait at jax's shutdown barrier for the dead peer, until the timeout, and
then abort). When process 0, which hosts the coordination service, dies, the client may abort the
others first, also at once. Resume with
``--resume``: the checkpoint (written by process 0) holds the whole state, which does not depend
on the world size, so a run may resume at another one.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from twintricks.checks import check_int, check_real
from twintricks.distributed import DEFAULT_TIMEOUT_S, local_batch_size, timeout_from_env, world_record

__all__ = [
    "AXIS",
    "DEFAULT_TIMEOUT_S",
    "PeerLostError",
    "timeout_from_env",
    "initialize",
    "collective_errors",
    "leave",
    "make_mesh",
    "batch_sharding",
    "replicated",
    "replicate",
    "constrain_batch",
    "to_host",
    "is_main",
    "world",
]

#: The mesh axis the batch is split along.
AXIS = "data"

#: The peer timeout :func:`initialize` gave jax (``None``: not a multi-process job started here).
_timeout_s: float | None = None

#: Words of the errors a failed collective or a lost peer raises (gloo, NCCL, the coordination service).
_PEER_WORDS = ("gloo", "nccl", "connection", "heartbeat", "unavailable", "timed out", "timeout", "peer", "socket",
               "broken pipe", "coordination service")


class PeerLostError(RuntimeError):
    """A computation with collectives failed: another process of the job stopped or cannot be
    reached."""


def _check_job(coordinator_address, num_processes, process_id, detected: bool) -> None:
    """The job's description, checked before jax reads it (its own errors name none of them)."""
    if num_processes is not None:
        num_processes = check_int("num_processes", num_processes, low=1)
    if process_id is not None:
        high = num_processes - 1 if num_processes is not None else None
        check_int("process_id", process_id, low=0, high=high)
        if num_processes is None and coordinator_address is None and not detected:
            raise ValueError(f"`process_id` {process_id} without `num_processes` and `coordinator_address`: a "
                             "process of which job? Give all three (or none)")
    if coordinator_address is not None:
        if not isinstance(coordinator_address, str):
            raise TypeError(f"`coordinator_address` must be a 'HOST:PORT' string, got {type(coordinator_address).__name__}")
        host, _, port = coordinator_address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"`coordinator_address` must be 'HOST:PORT' (a port in 1..65535), got {coordinator_address!r}")


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids=None,
    timeout_s: float | None = None,
    initialization_timeout_s: int = 300,
) -> bool:
    """Join a multi-process jax job (``jax.distributed.initialize``); returns whether it did.

    Arguments not given are read from ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and
    ``JAX_PROCESS_ID``; with none of them and no cluster jax detects (SLURM, Open MPI, Kubernetes
    job, Cloud TPU), nothing is done (one process). On CPU the cross-process collectives are set
    to gloo. Must run before jax creates its backends (before the first computation).

    ``timeout_s`` (default ``TWINTRICKS_DIST_TIMEOUT`` or :data:`DEFAULT_TIMEOUT_S`, rounded up
    to whole seconds) bounds every wait for a peer: it is jax's heartbeat timeout (a process
    silent for that long is declared dead and the others are ended) and its shutdown timeout (how
    long a finishing process waits for the others). ``initialization_timeout_s``: how long to
    wait for every process to join.
    """
    timeout_s = check_real("timeout_s", timeout_s if timeout_s is not None else timeout_from_env(),
                           low=0.0, low_inclusive=False)
    env = os.environ
    coordinator_address = coordinator_address or env.get("JAX_COORDINATOR_ADDRESS")
    if num_processes is None and env.get("JAX_NUM_PROCESSES"):
        num_processes = check_int("JAX_NUM_PROCESSES", int(env["JAX_NUM_PROCESSES"]), low=1)
    if process_id is None and env.get("JAX_PROCESS_ID"):
        process_id = check_int("JAX_PROCESS_ID", int(env["JAX_PROCESS_ID"]), low=0)
    detected = any(k in env for k in ("SLURM_JOB_ID", "OMPI_COMM_WORLD_SIZE", "JOB_COMPLETION_INDEX"))
    _check_job(coordinator_address, num_processes, process_id, detected)
    if coordinator_address is None and num_processes is None and not detected:
        return False
    if num_processes == 1:
        return False
    if "cpu" in (jax.config.jax_platforms or "cpu"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    whole = max(1, math.ceil(timeout_s))
    jax.distributed.initialize(
        coordinator_address,
        num_processes,
        process_id,
        local_device_ids=local_device_ids,
        heartbeat_timeout_seconds=whole,
        shutdown_timeout_seconds=whole,
        initialization_timeout=initialization_timeout_s,
    )
    global _timeout_s
    _timeout_s = float(whole)
    return True


@contextlib.contextmanager
def collective_errors():
    """In a multi-process job, turn a jax error that says a peer is gone (a collective's closed
    connection, a timeout, the coordination service's report) into a :class:`PeerLostError`
    naming this process, the timeout and the cause; other errors, and every error of a
    one-process run, pass through."""
    try:
        yield
    except jax.errors.JaxRuntimeError as exc:
        if jax.process_count() == 1:
            raise
        text = " ".join(str(exc).split())
        if not any(w in text.lower() for w in _PEER_WORDS):
            raise
        timeout = _timeout_s if _timeout_s is not None else timeout_from_env()
        raise PeerLostError(
            f"process {jax.process_index()} of {jax.process_count()}: a collective failed, another training process "
            f"has stopped or is unreachable (peer timeout {timeout:g} s, TWINTRICKS_DIST_TIMEOUT). The run stops here; "
            f"continue it from the last checkpoint with --resume. Cause: {text[:400]}"
        ) from exc


def leave(message: str, status: int = 1):
    """Print ``message`` to stderr and end this process at once with ``status``, skipping the exit
    handlers: jax's would wait at the shutdown barrier for a peer that is gone (until the timeout)
    and then abort. For a multi-process job that lost a peer; files written by this project are
    complete before they appear (atomic writes), so none is left half-written."""
    sys.stdout.flush()
    print(message, file=sys.stderr, flush=True)
    os._exit(status)


def make_mesh(devices=None, *, platform: str | None = None) -> Mesh:
    """A one-axis mesh (:data:`AXIS`) over ``devices``.

    ``devices``: ``None`` — every device of the job (all local devices for one process); an int
    ``N`` — the first ``N`` local devices (one process only: a multi-process job uses all of its
    devices); or a sequence of ``jax.Device``. ``platform`` (``"cpu"``, ``"gpu"``, ``"tpu"``):
    only that platform's devices (default: jax's default backend).
    """
    if devices is not None and not isinstance(devices, int):
        devs = list(devices)
        if not devs:
            raise ValueError("`devices` must name at least one device")
        return Mesh(np.asarray(devs), (AXIS,))
    every, local = jax.devices(platform), jax.local_devices(backend=platform)
    if devices is None:
        return Mesh(np.asarray(every), (AXIS,))
    if isinstance(devices, bool):
        raise TypeError(f"`devices` must be an integer, got {devices!r}")
    check_int("devices", devices, low=1, high=len(local))
    if jax.process_count() > 1:
        if devices != len(local):
            raise ValueError(f"`devices` {devices}: a multi-process job uses every local device ({len(local)})")
        return Mesh(np.asarray(every), (AXIS,))
    return Mesh(np.asarray(local[:devices]), (AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Arrays ``[N, ...]`` split along their first axis over the mesh."""
    return NamedSharding(mesh, P(AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """A whole copy on every device of the mesh."""
    return NamedSharding(mesh, P())


def replicate(tree, mesh: Mesh):
    """``tree``'s arrays copied to every device of ``mesh`` (NumPy or jax arrays, PRNG keys
    included; in a multi-process job every process must pass the same values, which jax places
    from host memory: it does not move a jax array from one process's device to another's)."""
    sharding = replicated(mesh)
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def put(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            data = jax.device_put(np.asarray(jax.random.key_data(x)), sharding)
            return jax.jit(lambda d: jax.random.wrap_key_data(d, impl=jax.random.key_impl(x)), out_shardings=sharding)(data)
        return jax.device_put(np.asarray(x), sharding)

    return jax.tree_util.tree_map(put, tree)


def constrain_batch(tree, mesh: Mesh):
    """Inside a jitted function: every array of ``tree`` with a batch axis is to be split along
    :data:`AXIS` (``jax.lax.with_sharding_constraint``); 0-d arrays are left to the compiler.

    Put on a trick's output, it keeps the trick's work sharded: a per-image kernel then runs on
    each device's rows, a batch-mixing one (RICAP) gathers only the source rows it needs.
    """
    sharding = batch_sharding(mesh)
    return jax.tree_util.tree_map(lambda x: jax.lax.with_sharding_constraint(x, sharding) if x.ndim else x, tree)


def to_host(tree):
    """NumPy copies of ``tree``'s arrays; a replicated array is read from a local device, so this
    works in a multi-process job too (where ``jax.device_get`` refuses arrays it cannot see
    whole)."""

    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            if not x.is_fully_replicated:
                raise ValueError("`tree` holds an array split over other processes: only replicated ones can be read here")
            return np.asarray(x.addressable_shards[0].data)
        return np.asarray(jax.device_get(x))

    return jax.tree_util.tree_map(get, tree)


def is_main() -> bool:
    """Process 0: the process that writes files and shows progress."""
    return jax.process_index() == 0


def world(mesh: Mesh, global_batch: int | None = None) -> dict:
    """:func:`twintricks.distributed.world_record` of ``mesh`` (``world_size`` = its devices), after
    checking that ``global_batch`` splits evenly over them."""
    if global_batch is not None:
        local_batch_size(global_batch, mesh.size)
    procs = jax.process_count()
    return world_record(procs, mesh.size // procs)
