"""The README's Python examples run as written (each in its own interpreter, like a user would)."""

import pathlib
import re
import subprocess
import sys

import pytest

README = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
EXAMPLES = re.findall(r"```python\n(.*?)\n```", README, flags=re.S)


def test_readme_has_an_example_per_backend():
    assert "import torch_impl" in EXAMPLES[0] and "jax" not in EXAMPLES[0]
    assert "import jax_impl" in EXAMPLES[1] and "torch" not in EXAMPLES[1]


def test_readme_shows_how_to_check_your_own_port():
    assert any("from parity import" in e and "check_module" in e for e in EXAMPLES)


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_readme_example_runs(index):
    proc = subprocess.run([sys.executable, "-c", EXAMPLES[index]], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
