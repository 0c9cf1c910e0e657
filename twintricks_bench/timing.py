"""Timing, memory and machine description for ``twintricks bench``.

Method (the same for every figure):

* the first call is timed on its own and reported as the compile / warm-up time (it holds
  ``torch.compile``'s and ``jax.jit``'s compilation); further warm-up calls are not timed;
* every timed call uses the next input of a rotating pool and, for random tricks, fresh random
  parameters, so nothing is timed on a cached result;
* timing is synchronised: ``jax.block_until_ready`` on every output, ``torch.cuda.synchronize``
  on a GPU (CPU torch is synchronous);
* calls shorter than a few milliseconds are timed in groups of ``inner`` consecutive calls and
  divided by ``inner``, so the clock's resolution and the synchronisation do not dominate. On a
  GPU the group's outputs are synchronised once, at its end; on a CPU each output is
  synchronised and dropped two calls later, as a training loop consumes a batch before the
  next: holding a group's outputs alive made every call write to fresh pages, which charged an
  implementation that returns a new array for page faults that one working in place (timm's
  ``Mixup``) never pays, and which no training loop pays;
* Python's garbage collector is paused during the timed repeats (as ``timeit`` does);
* the repeats are split into rounds (three in a full run) and the cases of one row that run in
  the same phase (e.g. torch_impl eager, torchvision and timm) are timed in alternation, round
  by round, each case warmed up once before the first round: a slow spell of the machine (on the
  development VM, seconds in which every memory-bound call ran 3-4x slower) then falls on every
  implementation being compared instead of on whichever case it happened to overlap;
* the figure is the median over all repeats of all rounds, with the minimum and maximum beside
  it (and each round's median in ``bench.json``).

Peak memory: on a GPU, torch's ``max_memory_allocated`` (reset before the case) or jax's
``peak_bytes_in_use`` of the device; on a CPU, the largest increase of the process's resident
set size seen by a 5 ms sampler during the first call and the warm-up (not during the timed
repeats, so the sampler cannot disturb them).
"""

from __future__ import annotations

import collections
import gc
import math
import os
import platform
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Budget", "Timing", "Timer", "sync_for", "MemoryProbe", "machine_info", "add_jax_info", "loadavg"]


@dataclass(frozen=True)
class Budget:
    """How long to time a case: warm-up calls, repeat counts and seconds per case."""

    warmup: int  # untimed calls after the first
    min_repeats: int
    max_repeats: int
    seconds: float  # keep repeating (up to max_repeats) while under this many seconds
    group_seconds: float = 0.005  # a timed group lasts at least this long
    rounds: int = 1  # the repeats are split into this many rounds, a row's cases alternating

    def round_share(self) -> tuple[float, int, int]:
        """One round's seconds, least and most repeats (the totals split evenly, at least one)."""
        r = self.rounds
        return self.seconds / r, max(1, -(-self.min_repeats // r)), max(1, self.max_repeats // r)


@dataclass
class Timing:
    """A case's first-call time and its per-call seconds, one entry per timed repeat."""

    first_s: float
    seconds: list[float]  # per call, one entry per repeat
    inner: int

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def sync_for(framework: str, device: str) -> Callable[[Any], None]:
    """A function that waits until ``out`` (any pytree) has been computed."""
    if framework == "jax":
        import jax

        return jax.block_until_ready
    if device.startswith("cuda"):
        import torch

        return lambda out: torch.cuda.synchronize()
    return lambda out: None


class Timer:
    """One case's timed calls: :meth:`warm` once, then :meth:`run` once per round.

    ``call(i)`` rotates the inputs with ``i``; ``sync`` waits for an output; ``in_flight``: how
    many outputs stay alive before being synchronised and dropped (None: a whole group)."""

    def __init__(self, call: Callable[[int], Any], sync: Callable[[Any], None], *, in_flight: int | None = None):
        self.call, self.sync, self.in_flight = call, sync, in_flight
        self.first_s = math.nan
        self.inner = 1
        self.seconds: list[float] = []  # per call, one entry per timed group, every round
        self.round_medians: list[float] = []
        self._i = 0

    def warm(self, budget: Budget, on_warm=None) -> None:
        """The first call (timed apart), the untimed warm-up calls, then one call to size the groups
        so each lasts about ``budget.group_seconds``."""
        t0 = time.perf_counter()
        self.sync(self.call(0))
        self.first_s = time.perf_counter() - t0
        self._i = 1
        for _ in range(budget.warmup):
            self.sync(self.call(self._i))
            self._i += 1
        if on_warm is not None:
            on_warm()
        t0 = time.perf_counter()
        self.sync(self.call(self._i))
        est = time.perf_counter() - t0
        self._i += 1
        self.inner = max(1, min(1000, int(budget.group_seconds / max(est, 1e-7))))

    def run(self, seconds: float, min_repeats: int, max_repeats: int) -> None:
        """Timed groups until ``min_repeats`` of them and ``seconds`` have passed (at most
        ``max_repeats``), the garbage collector paused."""
        got: list[float] = []
        # The young generations only: a full collection walks every object of the process (0.2 s
        # with torch and jax imported, more in a test process: 36 of them were 7.5 s of a 40 s
        # tiny bench); the old ones are collected by the gc's own thresholds between groups.
        gc.collect(1)
        was_enabled = gc.isenabled()
        gc.disable()  # as timeit does: no collection pause inside a timed group
        try:
            start = time.perf_counter()
            while len(got) < max_repeats and (len(got) < min_repeats or time.perf_counter() - start < seconds):
                t0 = time.perf_counter()
                outs = collections.deque()
                for k in range(self.inner):
                    outs.append(self.call(self._i + k))
                    if self.in_flight is not None and len(outs) > self.in_flight:
                        self.sync(outs.popleft())
                self.sync(list(outs))
                got.append((time.perf_counter() - t0) / self.inner)
                self._i += self.inner
                del outs
        finally:
            if was_enabled:
                gc.enable()
        self.seconds += got
        self.round_medians.append(statistics.median(got))

    def timing(self) -> Timing:
        return Timing(self.first_s, self.seconds, self.inner)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class MemoryProbe:
    """Peak memory of one case (see the module docstring for what is measured where)."""

    def __init__(self, framework: str, device: str, jax_device=None):
        self.framework, self.device, self.jax_device = framework, device, jax_device
        self.kind = "n/a"
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.framework == "torch" and self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
            self.kind = "torch.cuda.max_memory_allocated"
            return
        if self.framework == "jax" and self.jax_device is not None and self.jax_device.platform != "cpu":
            self.kind = "jax peak_bytes_in_use (device, since start)"
            return
        self.kind = "CPU process RSS increase (5 ms sampler, first call + warm-up)"
        self._base = _rss_bytes()
        self._max = self._base

        def sample():
            while not self._stop.wait(0.005):
                self._max = max(self._max, _rss_bytes())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._max = max(self._max, _rss_bytes())
            self.peak = self._max - self._base
            self._thread = None
        elif self.kind.startswith("torch.cuda"):
            import torch

            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self._base
        elif self.kind.startswith("jax"):
            stats = self.jax_device.memory_stats() or {}
            self.peak = stats.get("peak_bytes_in_use")


def loadavg() -> list[float] | None:
    """The 1/5/15-minute load averages (None where the OS has none), recorded with every run."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_info(torch_device: str, jax_platform: str) -> dict:
    """The machine every figure was measured on."""
    info: dict[str, Any] = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg_at_start": loadavg(),
        "torch_device": torch_device,
        "jax_platform": jax_platform,
        "versions": {
            n: _version(n)
            for n in ("twintricks", "numpy", "torch", "torchvision", "timm", "jax", "jaxlib", "flax", "optax",
                      "opencv-python-headless")
        },
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["gpu"] = None
    return info


def add_jax_info(info: dict) -> None:
    """Add jax's devices to :func:`machine_info`'s record. Separate because it starts jax's
    runtime, whose presence slowed torch's CPU timings by 5-20 % in the same process: call it
    once the torch cases have run."""
    try:
        import jax

        info["jax_devices"] = [str(d) for d in jax.devices()]
        if info.get("gpu") is None and jax.default_backend() == "gpu":
            info["gpu"] = jax.devices()[0].device_kind
    except ImportError:
        pass
