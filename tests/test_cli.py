"""The ``twintricks parity`` command: rows per trick, and a non-zero exit when a side disagrees."""

import pathlib
import subprocess
import sys

import pytest

import jax_impl.losses
from twintricks_cli import main


def test_parity_command_agrees_and_prints_a_row_per_trick(capsys):
    assert main(["parity", "--trick", "smooth_labels", "--trick", "cutout", "--examples", "3"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("smooth_labels", "cutout"))]
    assert len(rows) == 2 and all(row.rstrip().endswith("agree") for row in rows)
    assert "2 of 2 tricks agree" in out


def test_parity_command_exits_non_zero_when_one_implementation_is_changed(monkeypatch, capsys):
    original = jax_impl.losses.smooth_labels
    monkeypatch.setattr(jax_impl.losses, "smooth_labels", lambda *a, **k: original(*a, **k) * 0.99)
    assert main(["parity", "--trick", "smooth_labels", "--examples", "3"]) == 1
    out = capsys.readouterr().out
    assert "DISAGREE" in out and "0 of 1 tricks agree" in out


def test_parity_command_rejects_an_unknown_trick():
    with pytest.raises(SystemExit, match="unknown trick 'nope'"):
        main(["parity", "--trick", "nope"])


def test_parity_list_shows_every_tolerance_with_its_reason(capsys):
    from parity.registry import all_tricks

    assert main(["parity", "--list"]) == 0
    out = capsys.readouterr().out
    for name in all_tricks():
        assert name in out


def test_console_script_is_installed():
    script = pathlib.Path(sys.executable).with_name("twintricks")
    assert script.exists(), "pip install -e . installs the `twintricks` console script next to python"
    proc = subprocess.run([str(script), "parity", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--examples" in proc.stdout


def test_progress_bars_are_drawn_on_a_terminal_only(monkeypatch, capsys):
    """Issue 22 item 11: the README's main job wrote hundreds of bar lines into a log. A bar turns
    itself off when stderr is not a terminal (tqdm's disable=None) and is drawn when it is."""
    import io

    import torch

    from twintricks.datasets import load_digits
    from twintricks.recipe import TrainConfig
    from torch_impl.train import Trainer

    cfg = TrainConfig(width=2, batch_size=64, epochs=1)  # progress=True, the default
    trainer = Trainer(cfg, load_digits().subset(train=128, test=16), device="cpu")
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    trainer.train_epoch(0)  # stderr is pytest's capture: not a terminal
    assert capsys.readouterr().err == ""

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    trainer.train_epoch(0)
    assert "epoch 1/1" in term.getvalue() and "0/2" in term.getvalue()


# ----------------------------------------------------------------------------- checks before any data loads


@pytest.mark.parametrize(
    "args,message",
    [
        (["--randaugment", "--randaugment-magnitude", "31"], "--randaugment-magnitude must be below --randaugment-bins (31)"),
        (["--randaugment", "--randaugment-bins", "5", "--randaugment-magnitude", "5"], "the bins are 0..4, got 5"),
        (["--cutmix", "1.0", "--mix-mode", "pair", "--batch-size", "33"], "--batch-size must be even, got 33"),
        (["--teacher-model", "resnet18"], "--teacher-model set(s) the distillation teacher, but there is no --teacher"),
        (["--kd-alpha", "0.5", "--kd-temperature", "2"], "--kd-temperature, --kd-alpha set(s)"),
        (["--teacher-width", "8"], "--teacher-width set(s)"),
        (["--backend", "jax", "--devices", "3"], "--devices: `devices` must be in [1, "),
        (["--backend", "jax", "--devices", "2", "--device", "cpu:0"], "`device` 'cpu:0' names a single device"),
        # found by benchmarks/audit.py: surfaced while (or after) the data loaded, or were accepted
        (["--data-dir", "/nonexistent"], "--data-dir: --dataset digits is embedded, it would do nothing"),
        (["--dataset", "folder", "--data-dir", "/nonexistent/x"], "--data-dir /nonexistent/x: no such folder"),
        (["--dataset", "cifar10", "--download"], "--download needs --data-dir"),
        (["--download"], "--download fetches cifar10 only"),
        (["--teacher", "/nonexistent/t.ckpt"], "--teacher /nonexistent/t.ckpt: no such file"),
        (["--seed", "9223372036854775808"], "`seed` must be in"),
        (["--cutout-holes", "3"], "`cutout_holes` is a setting of `cutout`"),
        (["--backend", "jax", "--process-id", "-1"], "jax.distributed: --process-id must be in"),
        (["--backend", "jax", "--num-processes", "0"], "jax.distributed: --num-processes must be in"),
        (["--backend", "jax", "--coordinator", "localhost", "--num-processes", "2", "--process-id", "0"],
         "--coordinator must be 'HOST:PORT'"),
    ],
)
def test_train_values_that_need_each_other_fail_in_one_line_before_the_data_loads(monkeypatch, tmp_path, args, message):
    """These surfaced as a traceback after the data had loaded, or (the teacher's settings without
    --teacher) were silently ignored."""
    import twintricks_cli.train as cli_train

    def no_data(config):
        raise AssertionError("the data set was loaded before the check")

    monkeypatch.setattr(cli_train, "_load_data", no_data)
    argv = ["train", "--no-progress", "--epochs", "1", "--out", str(tmp_path / "run"), *args]
    if "--backend" not in args:
        argv += ["--backend", "torch"]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    text = str(exc.value.code)
    assert text.startswith("twintricks train: ") and "\n" not in text, text
    assert message in text, text
