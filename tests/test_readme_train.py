"""The README's "Train on your own images" commands run as written, on a tiny synthetic folder named
as the README names it, with size options appended (argparse keeps the last value): a fastnet of
width 2 on 16 px views, one epoch of 4 steps."""

from __future__ import annotations

import json
import pathlib
import re
import shlex
import socket
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SECTION = (ROOT / "README.md").read_text().split("## Train on your own images", 1)[1].split("\n## ", 1)[0]
COMMANDS = re.findall(r"```bash\n(.*?)\n```", SECTION, flags=re.S)
TINY = ["--model", "fastnet", "--width", "2", "--image-size", "16", "--batch-size", "6", "--eval-batch-size", "6",
        "--epochs", "1", "--workers", "0", "--threads", "1", "--no-progress"]


def test_the_section_covers_layout_packing_image_size_workers_resume_and_scale_out():
    assert len(COMMANDS) == 5 and all("\n" not in c for c in COMMANDS)
    for words in ("photos/train/cat", "twintricks data pack", "--image-size", "--workers", "--resume", "--save-every",
                  "torchrun", "--dataset shards", "--on-bad-image skip", "config.json"):
        assert words in SECTION, words


@pytest.fixture()
def photos(tmp_path, monkeypatch):
    from data_images import make_folder

    make_folder(tmp_path / "photos", classes=("cat", "dog", "owl"), train=8, test=2)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XLA_FLAGS", "")  # --threads sets it for the process; restored afterwards
    return tmp_path


def _run(command: str, extra=()):
    """A README command in this process (``twintricks ...``), with ``extra`` appended to a ``train``."""
    from twintricks_cli import main

    argv = shlex.split(command)
    assert argv[0] == "twintricks", command
    return main(argv[1:] + (list(extra) if argv[1] == "train" else []))


def test_readme_train_pack_and_resume_commands_run(photos, monkeypatch):
    import torch

    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # this process's torch threads stay as they are
    local = [c for c in COMMANDS if c.startswith("twintricks ")]
    assert len(local) == 4
    train, pack, train_packed, resume = local
    assert _run(train, TINY) == 0
    record = json.loads((photos / "runs" / "photos" / "config.json").read_text())["data"]
    assert record["train"]["images"] == 24 and record["train"]["classes"] == ["cat", "dog", "owl"]
    assert _run(pack) == 0
    assert _run(train_packed, TINY) == 0
    packed = json.loads((photos / "runs" / "photos-jax" / "config.json").read_text())["data"]
    assert packed["train"]["fingerprint"] == record["train"]["fingerprint"]  # the same images, indexed alike
    assert _run(resume, TINY) == 0  # the run is complete: it resumes after its last epoch
    summary = json.loads((photos / "runs" / "photos" / "summary.json").read_text())
    assert summary["epochs"] == 1 and summary["image_size"] == 16


@pytest.mark.slow
def test_readme_torchrun_command_runs(photos):
    """The scale-out command, as torchrun would run it (2 processes, gloo on this CPU)."""
    from twintricks_cli import main

    assert main(["data", "pack", "photos", "photos-packed"]) == 0
    (command,) = [c for c in COMMANDS if c.startswith("torchrun ")]
    argv = shlex.split(command)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--master_port={port}", *argv[1:], *TINY]
    r = subprocess.run(cmd, cwd=photos, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((photos / "runs" / "photos-2" / "summary.json").read_text())
    assert summary["world_size"] == 2
