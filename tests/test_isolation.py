"""Each backend stands alone: torch_impl imports without JAX, jax_impl without PyTorch.

Each check runs in a fresh interpreter whose import system refuses the other framework, so an
accidental import (even a lazy one reached at import time) fails here.
"""

import subprocess
import sys
import textwrap

import pytest

BLOCKER = textwrap.dedent(
    """
    import sys

    BLOCKED = {blocked!r}

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is blocked in this test")
            return None

    sys.meta_path.insert(0, Blocker())
    """
)

CASES = {
    "torch_impl": (
        ["jax", "jaxlib", "flax", "optax"],
        """
        import torch, torch_impl
        import torch_impl.ops, torch_impl.models, torch_impl.data, torch_impl.train
        import twintricks.checks
        assert torch_impl.__all__
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not loaded, loaded
        print("ok")
        """,
    ),
    "jax_impl": (
        ["torch", "torchvision"],
        """
        import jax, jax_impl
        import jax_impl.ops, jax_impl.models, jax_impl.data, jax_impl.train
        import twintricks.checks
        assert jax_impl.__all__
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not loaded, loaded
        print("ok")
        """,
    ),
}


@pytest.mark.parametrize("package", list(CASES))
def test_backend_imports_without_the_other_framework(package):
    blocked, body = CASES[package]
    code = BLOCKER.format(blocked=blocked) + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")


def test_the_blocker_blocks():
    """The harness itself must be able to fail: importing the blocked framework raises."""
    code = BLOCKER.format(blocked=["torch"]) + "import torch\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "blocked" in proc.stderr
