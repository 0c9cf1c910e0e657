"""Data-parallel training in PyTorch: ``torch.distributed`` with ``DistributedDataParallel``,
launched by ``torchrun``.

``torchrun --nproc_per_node=N`` (or ``--nnodes``/``--rdzv-endpoint`` for several machines) starts
one process per device and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`init` reads them and joins the process group: NCCL on CUDA (process
``LOCAL_RANK`` takes ``cuda:LOCAL_RANK``), gloo on CPU. Without those variables it returns a
one-process :class:`Context` and nothing changes.

How a step is shared (the rule is :mod:`twintricks.distributed`):

* every process draws the step's data indices and every trick's parameters for the *global*
  batch from the run's seeded generators (identical on all ranks), then keeps its rows
  (:meth:`Context.rows`, :func:`twintricks.distributed.take_rows`); the draws never depend on the
  world size;
* the per-image tricks run on the local rows; the batch-mixing ones (mixup, RICAP) run on the
  global batch, gathered with ``all_gather`` (:func:`gather_rows`), and each rank keeps its rows;
* :func:`wrap_model` wraps the model in ``DistributedDataParallel`` (gradients averaged over
  ranks during ``backward``), with BatchNorm statistics over the *global* batch by default;
* evaluation counts and the logged loss are summed over ranks (:func:`all_reduce_sum`); only
  rank 0 (:attr:`Context.is_main`) writes files and shows progress.

BatchNorm: ``sync_bn=True`` (default) normalises with the mean and variance of the global batch,
as one process would: ``torch.nn.SyncBatchNorm`` on CUDA. torch's ``SyncBatchNorm`` has CUDA
kernels only, so on CPU :class:`GlobalBatchNorm2d` computes the same statistics with
``torch.distributed.nn.functional.all_reduce`` (differentiable: the backward pass sums the
statistics' gradients over ranks, as ``SyncBatchNorm``'s does). ``sync_bn=False`` keeps plain
``BatchNorm2d``: each rank normalises its images with its own ``B/N``-image statistics, which
saves one collective per BatchNorm layer but changes the result with the world size (smaller
batches give noisier statistics, a different regularisation); the running statistics are rank
0's (DDP broadcasts buffers from rank 0 before each forward pass, and :func:`sync_buffers` before
evaluation).

Faults: every collective has a deadline, ``timeout_s`` (default 300 s, or
``TWINTRICKS_DIST_TIMEOUT``), passed to ``init_process_group``; NCCL's asynchronous error handling
is on, so a collective that waits for a dead or hung peer fails instead of hanging. When a peer
process dies, ``torchrun`` stops the others at once; a rank that notices first (a closed
connection, a timeout) raises :class:`PeerLostError` with the rank, the backend and the cause
(:func:`collective_errors`). Resume with ``--resume``: the checkpoint (written by rank 0) holds
the whole state, which does not depend on the world size, so a run may resume at another one.

.. warning::
   Every rank keeps the whole data set on its device (:mod:`torch_impl.data`); that suits the
   data sets this project trains on, not ImageNet-sized ones.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn

from twintricks.checks import check_real
from twintricks.distributed import DEFAULT_TIMEOUT_S, local_rows, timeout_from_env

__all__ = [
    "Context",
    "GlobalBatchNorm2d",
    "PeerLostError",
    "all_reduce_sum",
    "check_same",
    "collective_errors",
    "convert_batchnorm",
    "gather_rows",
    "init",
    "joined",
    "launched",
    "on_global_batch",
    "shutdown",
    "sync_buffers",
    "wrap_model",
]


class PeerLostError(RuntimeError):
    """A collective failed: another training process stopped, hung or cannot be reached."""


@dataclass(frozen=True)
class Context:
    """Where this process stands in the run: ``rank`` of ``world_size`` processes, its
    ``local_rank`` on the machine, its ``device`` and the process group's ``backend`` (``None``:
    one process, no process group)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and shows progress."""
        return self.rank == 0

    def rows(self, global_batch: int) -> slice:
        """This rank's rows of a global batch (:func:`twintricks.distributed.local_rows`)."""
        return local_rows(global_batch, self.rank, self.world_size)


def launched() -> bool:
    """Whether this process was started by ``torchrun`` (or anything that sets ``WORLD_SIZE``)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def _env_int(name: str) -> int:
    value = os.environ.get(name, "")
    if not value.isdigit():
        raise ValueError(f"environment variable {name} must be a non-negative integer (set by torchrun), got {value!r}")
    return int(value)


def init(device=None, *, backend: str | None = None, timeout_s: float | None = None) -> Context:
    """Join the process group that ``torchrun`` describes in the environment, or return a
    one-process :class:`Context` when not launched by it.

    Args:
        device: ``None`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``; under torchrun a
            CUDA process takes ``cuda:LOCAL_RANK`` (an explicit index is an error then).
        backend: ``"gloo"`` or ``"nccl"``; default NCCL on CUDA, gloo on CPU.
        timeout_s: the deadline of every collective, in seconds (default
            ``TWINTRICKS_DIST_TIMEOUT`` or 300).
    """
    timeout_s = check_real(
        "timeout_s", timeout_s if timeout_s is not None else timeout_from_env(),
        low=0.0, low_inclusive=False,
    )
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not launched():
        return Context(device=dev, timeout_s=timeout_s)
    rank, world, local = _env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK") if "LOCAL_RANK" in os.environ else 0
    if dev.type == "cuda":
        if dev.index is not None and world > 1:
            raise ValueError(f"`device` {str(dev)!r}: under torchrun each process takes cuda:LOCAL_RANK; give 'cuda'")
        if local >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {local} but torch sees {torch.cuda.device_count()} CUDA device(s) on this machine")
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    backend = backend or ("nccl" if dev.type == "cuda" else "gloo")
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"`backend` must be 'gloo' or 'nccl', got {backend!r}")
    if world > 1 and not dist.is_initialized():
        # NCCL: a collective past its deadline aborts the communicator instead of hanging.
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
        kwargs = {"device_id": dev} if backend == "nccl" else {}
        dist.init_process_group(
            backend, rank=rank, world_size=world, timeout=datetime.timedelta(seconds=timeout_s), **kwargs
        )
    return Context(rank, world, local, dev, backend if world > 1 else None, timeout_s)


def shutdown(ctx: Context | None = None) -> None:
    """Leave the process group (a no-op for one process), after every rank has got here (a rank
    that tears down its group while a peer still talks to it can abort both).

    Drop the ``DistributedDataParallel`` module (the trainer) first: its reducer's threads must
    not outlive the group (the process then aborts at exit with "terminate called without an
    active exception"); unreachable ones are collected here.
    """
    if dist.is_available() and dist.is_initialized():
        import gc

        gc.collect()
        try:
            with collective_errors(ctx or Context(world_size=dist.get_world_size(), rank=dist.get_rank(),
                                                 backend=dist.get_backend())):
                dist.barrier()
        finally:
            dist.destroy_process_group()


def _abandon() -> None:
    """Leave the process group without waiting for the other ranks: the way out when the run has
    already failed (a lost peer would turn the shutdown barrier into a second error, gloo's
    "Connection reset by peer", raised over ours)."""
    if dist.is_available() and dist.is_initialized():
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


@contextlib.contextmanager
def joined(ctx: Context):
    """The process group's lifetime around a run: on a normal exit :func:`shutdown` (every rank
    meets at a barrier first); when the body raises, the group is left without that barrier, so
    the body's own error (a :class:`PeerLostError` naming the rank and ``--resume``) is the one
    that surfaces."""
    try:
        yield ctx
    except BaseException:
        import gc

        gc.collect()
        _abandon()
        raise
    shutdown(ctx)


@contextlib.contextmanager
def collective_errors(ctx: Context):
    """Turn a failed collective (a peer died, hung past ``timeout_s`` or closed its connection)
    into a :class:`PeerLostError` that says so; other errors pass through."""
    if not ctx.distributed:
        yield
        return
    kinds = tuple(k for k in (getattr(dist, "DistError", None),) if k is not None)
    try:
        yield
    except kinds + (RuntimeError,) as exc:
        if isinstance(exc, PeerLostError):
            raise
        text = " ".join(str(exc).split())
        comm = isinstance(exc, kinds) or any(
            s in text.lower() for s in ("gloo", "nccl", "connection", "timed out", "timeout", "peer", "socket", "broken pipe")
        )
        if not comm:
            raise
        raise PeerLostError(
            f"rank {ctx.rank} of {ctx.world_size} ({ctx.backend}): a collective failed, another training "
            f"process has stopped or is unreachable (deadline {ctx.timeout_s:g} s). The run stops here; "
            f"continue it from the last checkpoint with --resume. Cause: {text[:400]}"
        ) from exc


# ----------------------------------------------------------------------------- collectives


def gather_rows(t: torch.Tensor, ctx: Context) -> torch.Tensor:
    """The global batch from every rank's rows: ``all_gather`` then concatenation in rank order
    (``t`` itself for one process). Not differentiable (used on images and targets)."""
    if not ctx.distributed:
        return t
    t = t.contiguous()
    parts = [torch.empty_like(t) for _ in range(ctx.world_size)]
    dist.all_gather(parts, t)
    return torch.cat(parts, 0)


def on_global_batch(apply, ctx: Context):
    """A trick's ``apply(x, targets, params, trainer)`` run on the global batch: every rank's
    ``x`` and ``targets`` gathered (:func:`gather_rows`), the kernel applied with the global
    batch's ``params``, this rank's rows of the result returned. For the batch-mixing tricks."""
    if not ctx.distributed:
        return apply

    def run(x, targets, params, trainer):
        rows = ctx.rows(x.shape[0] * ctx.world_size)
        x, targets = apply(gather_rows(x, ctx), gather_rows(targets, ctx), params, trainer)
        return x[rows], targets[rows]

    return run


def all_reduce_sum(t: torch.Tensor, ctx: Context) -> torch.Tensor:
    """``t`` summed over ranks (a new tensor; ``t`` for one process)."""
    if not ctx.distributed:
        return t
    out = t.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def check_same(what: str, value, ctx: Context) -> None:
    """Raise ``RuntimeError`` naming ``what`` unless every rank passes an equal ``value`` (a small
    picklable one, gathered with ``all_gather_object``)."""
    if not ctx.distributed:
        return
    values = [None] * ctx.world_size
    dist.all_gather_object(values, value)
    if any(v != values[0] for v in values):
        raise RuntimeError(f"the training processes disagree on {what}: {values} (by rank)")


def sync_buffers(model: nn.Module, ctx: Context) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank."""
    if ctx.distributed:
        for b in model.buffers():
            dist.broadcast(b.data, src=0)


# ----------------------------------------------------------------------------- BatchNorm


def _differentiable_all_reduce(t: torch.Tensor) -> torch.Tensor:
    """The sum of ``t`` over ranks, whose backward pass sums the gradients over ranks
    (``torch.distributed.nn.functional.all_reduce``; torch 2.14 marks it deprecated in favour of
    a private module, so its warning is silenced here)."""
    import warnings

    from torch.distributed.nn.functional import all_reduce

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return all_reduce(t)


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` whose training statistics are those of the global batch (all ranks).

    The CPU counterpart of ``torch.nn.SyncBatchNorm`` (which runs on CUDA only): the per-channel
    mean over every rank's images, then the (biased) variance around it, each summed with
    ``torch.distributed.nn.functional.all_reduce``, whose backward pass sums the gradients over
    ranks, so the gradient is the global batch's. Running statistics are updated as
    ``BatchNorm2d`` does (unbiased variance, ``momentum``); every rank holds the same ones.
    Outside training, or in one process, it is ``BatchNorm2d``. Same names and buffers as
    ``BatchNorm2d``, so ``state_dict`` s are interchangeable.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise ValueError(f"`x` must be [N, {self.num_features}, H, W], got {tuple(x.shape)}")
        all_reduce = _differentiable_all_reduce
        xf = x.float()
        local = x.shape[0] * x.shape[2] * x.shape[3]
        count = all_reduce(torch.tensor([float(local)], device=x.device))[0]
        mean = all_reduce(xf.sum((0, 2, 3))) / count
        centred = xf - mean.view(1, -1, 1, 1)
        var = all_reduce((centred * centred).sum((0, 2, 3))) / count
        y = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * (count / torch.clamp(count - 1, min=1))
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.detach(), alpha=m)
        return y.to(x.dtype)


def convert_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with every ``BatchNorm2d`` computing global-batch statistics: converted by
    ``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` on CUDA, to :class:`GlobalBatchNorm2d`
    elsewhere. The parameters and buffers are the same objects (an optimizer built on the model
    keeps working)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def convert(m: nn.Module) -> nn.Module:
        if type(m) is nn.BatchNorm2d:
            g = GlobalBatchNorm2d(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats, device=device)
            if m.affine:
                g.weight, g.bias = m.weight, m.bias
            if m.track_running_stats:
                g.running_mean, g.running_var, g.num_batches_tracked = m.running_mean, m.running_var, m.num_batches_tracked
            g.train(m.training)
            return g
        for name, child in m.named_children():
            setattr(m, name, convert(child))
        return m

    return convert(model)


def wrap_model(model: nn.Module, ctx: Context, *, sync_bn: bool = True) -> nn.Module:
    """The module to run the training forward pass through: ``model`` itself for one process,
    else ``DistributedDataParallel`` around it (BatchNorm converted first when ``sync_bn``; the
    conversion is in place, so ``model``'s ``state_dict`` keeps its names).

    DDP broadcasts rank 0's parameters and buffers at construction (the ranks already agree: the
    model is initialised from the run's seed) and averages the gradients over ranks in
    ``backward``. With ``sync_bn`` every rank's running statistics are the same, so buffers are
    not broadcast before each forward pass; without it they are (rank 0's).
    """
    if not ctx.distributed:
        return model
    if sync_bn:
        convert_batchnorm(model, ctx.device)
    from torch.nn.parallel import DistributedDataParallel as DDP

    import inspect

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    # torch >= 2.14 names broadcast_buffers forward_sync_buffers
    sync = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DDP).parameters else "broadcast_buffers"
    return DDP(model, device_ids=ids, **{sync: not sync_bn})
