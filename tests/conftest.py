"""Hypothesis profiles and shared fixtures.

Profiles (chosen by ``HYPOTHESIS_PROFILE``; otherwise ``ci`` when ``CI`` is set, else ``dev``):

* ``ci``: derandomized (the same examples on every run, so CI is never flaky), enough
  examples to find edge cases, no deadline (JAX compiles on first call of each shape).
* ``dev``: quick, random, for the edit-test loop.
* ``thorough``: many examples, for a run by hand before a release.

Tests never set ``max_examples`` themselves; they may scale it for an expensive body with
``settings(parent=settings.get_profile(...))``-free helpers in their own module if ever needed.
"""

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", derandomize=True, max_examples=30, print_blob=True, database=None, **_common)
settings.register_profile("dev", max_examples=15, **_common)
settings.register_profile("thorough", max_examples=300, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

# Tests write only to temporary folders: decoded data-set caches (twintricks.datasets.cache_dir)
# go to a folder of this session (subprocesses inherit it), removed when the session ends.
_CACHE_DIR = tempfile.TemporaryDirectory(prefix="twintricks-test-cache-")
os.environ["TWINTRICKS_CACHE_DIR"] = _CACHE_DIR.name

# One persistent XLA compilation cache for the session, shared by this process and every child it
# starts: each Trainer jits its step afresh (a new function object, so jax's in-memory cache misses)
# and the multi-process and kill/resume tests start new processes, yet most compile the same HLO
# with the same options again. A hit loads the executable XLA compiled for exactly that key, so
# results are unchanged (the bit-identity tests still compare values); measured on a jax Trainer
# built three times in one process: 45/24/23 s without, 69/3.6/6.4 s with (2 loaded cores).
_XLA_CACHE_DIR = tempfile.TemporaryDirectory(prefix="twintricks-test-xla-")
os.environ["JAX_COMPILATION_CACHE_DIR"] = _XLA_CACHE_DIR.name
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.2"

# pytest-xdist runs one worker per core (addopts -n auto), and each worker's torch (OpenMP) and XLA
# (Eigen) would start a thread per core as well: 2 workers on 2 cores ran 4 busy pools that preempt
# one another (twintricks.threads.auto_threads measured 2 threads 4x slower than 1 on a loaded 2-core
# machine). Each worker gets its share of the cores, set before torch and jax are imported; measured
# on test_mixing.py + test_policy_families.py, 2 workers on 2 cores: 287 -> 260 CPU-s, 154 -> 141 s.
# A variable set by hand (OMP_NUM_THREADS, a thread flag in XLA_FLAGS) is kept.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    from twintricks.threads import set_threads

    _share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_share))
    if "xla_cpu_multi_thread_eigen" not in os.environ.get("XLA_FLAGS", ""):
        set_threads(_share, torch=False)

# pytest-xdist runs one worker per core (addopts -n auto): on a GPU machine each worker's jax would
# otherwise reserve 75 % of the GPU's memory at its first array, and the second worker would fail.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


#: XLA flags for the child processes of the tests that check how processes behave together (several
#: processes or devices, a killed or hung peer, a kill and a resume) and compare jax with jax under the
#: same flags, not a kernel's arithmetic with torch's (those run in-process at XLA's default level).
#: LLVM's optimization level 0 more than halves the compile that dominates each child: a jax trajectory
#: child (fastnet, every trick kind, 2 host devices) took 36 CPU-s at the default level, 16 at level 0,
#: its steps 0.11 s -> 0.14 s. Its losses move in the last bits (2.25638580 -> 2.25638604: another
#: instruction selection), the same way in every run and process, so the equalities these tests
#: assert hold as they do at the default level.
CHILD_XLA_FLAGS = "--xla_backend_optimization_level=0"


def slow_scale() -> float:
    """Size factor for tests marked ``slow``: CI runs them reduced (TWINTRICKS_SLOW_SCALE, default 0.1)."""
    return float(os.environ.get("TWINTRICKS_SLOW_SCALE", "0.1"))


#: The CIFAR-10 JPEG archive beside the checkout (``../shared/data``), or ``TWINTRICKS_CIFAR10``.
CIFAR10_ARCHIVE = Path(
    os.environ.get("TWINTRICKS_CIFAR10", Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz")
)


#: The files that take longest (one-process durations on 2 cores, 2026-12-07), run first: pytest-xdist
#: hands whole files to its workers in collection order (--dist loadfile), so a long file collected
#: late (test_train.py, alphabetically near the end) ran alone while the other worker sat idle.
LONGEST_FIRST = ("test_train.py", "test_distributed.py", "test_parity.py", "test_mixing.py",
                 "test_policy_families.py", "test_optim.py", "test_ops.py", "test_bench.py", "test_checkpoint.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its order
