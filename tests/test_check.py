"""Check your own port, functions: ``parity.check`` passes equal functions, fails with the
shrunk minimal counterexample, translates image layouts and keys; user checks run from the
command line (``twintricks parity --checks MODULE``) without touching the library's registry."""

from __future__ import annotations

import textwrap

import jax
import numpy as np
import pytest
import torch
from hypothesis import strategies as st

from parity import ParityError, Registry, check, function_check, load_checks
from parity import strategies as S
from parity.registry import library_registry
from twintricks_cli import main

SOFTMAX_TOL = dict(atol=1e-6, reason="float32 exp and sum in different orders: ulps of values <= 1")


def test_equal_functions_pass_and_report_their_examples():
    report = check(lambda x: torch.softmax(x, -1), lambda x: jax.nn.softmax(x, -1), inputs={"x": S.logits(3, 5)}, **SOFTMAX_TOL)
    assert report.ok and report.examples >= 1 and report.checks == report.examples


def test_a_wrong_port_fails_with_the_minimal_counterexample():
    with pytest.raises(ParityError) as info:
        check(lambda x: torch.softmax(x, -1), lambda x: jax.nn.softmax(x, 0), inputs={"x": S.logits(3, 4)}, **SOFTMAX_TOL)
    msg = str(info.value)
    assert "torch and jax disagree" in msg and "out: " in msg and "max abs err" in msg
    # hypothesis shrinks the logits to all zeros: softmax over 4 columns (1/4) vs over 3 rows (1/3)
    assert "minimal counterexample" in msg and "x = array([[0., 0., 0., 0.]," in msg
    assert "torch 0.25 vs jax 0.3333" in msg


def test_image_arguments_and_outputs_are_translated_between_layouts():
    # a horizontal flip: the last axis in NCHW, the W axis (2) in NHWC
    report = check(
        lambda images: images.flip(-1), lambda images: images[:, :, ::-1],
        inputs={"images": S.image_batches(shape=(2, 3, 4, 1))}, images="images", image_outputs=True,
    )
    assert report.ok
    with pytest.raises(ParityError):  # without the translation the two are not the same function
        check(lambda images: images.flip(-1), lambda images: images[:, :, ::-1],
              inputs={"images": S.image_batches(shape=(2, 3, 4, 3))}, image_outputs=True)


def test_keys_become_a_generator_and_a_key_from_one_seed():
    seen = {}

    def torch_fn(x, key):
        seen["torch"] = type(key).__name__
        return x * 2

    def jax_fn(x, key):
        seen["jax"] = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
        return x * 2

    check(torch_fn, jax_fn, inputs={"x": S.logits(2, 3)}, keys="key", examples=2)
    assert seen == {"torch": "Generator", "jax": True}


def test_a_case_strategy_and_a_params_record_feed_both_sides():
    import jax_impl
    import torch_impl

    def t(images, targets, num_classes, params):
        return torch_impl.mixup(images, targets, torch_impl.MixupParams(**params), num_classes=num_classes)

    def j(images, targets, num_classes, params):
        return jax_impl.mixup(images, targets, jax_impl.MixupParams(**params), num_classes=num_classes)

    report = check(t, j, inputs=S.mixup_cases(dtype=np.float32), images="images", image_outputs=("out[0]",),
                   atol=1e-6, rtol=1e-6, reason="float32 λ·a + (1-λ)·b, fused or not: ulps of values <= 1")
    assert report.ok


def test_a_tolerance_needs_its_reason_and_arguments_are_checked():
    with pytest.raises(ValueError, match="reason"):
        function_check("x", abs, np.abs, inputs={"x": st.just(1.0)}, atol=1e-3, reason="")
    with pytest.raises(TypeError, match="torch_fn must be callable"):
        function_check("x", 3, abs, inputs={}, atol=0, reason="")
    with pytest.raises(TypeError, match="inputs must be a dict"):
        function_check("x", abs, np.abs, inputs=[1], atol=0, reason="")
    with pytest.raises(ValueError, match="images names"):
        function_check("x", abs, np.abs, inputs={"x": st.just(1.0)}, images="y", atol=0, reason="")


def test_a_registry_is_independent_of_the_library_one():
    mine = Registry()
    mine.add(function_check("double", lambda x: x * 2, lambda x: x * 2, inputs={"x": S.logits(2, 2)}, atol=0, reason=""))
    with pytest.raises(ValueError, match="already registered"):
        mine.add(mine.get("double"))
    assert mine.names() == ["double"] and "double" not in library_registry()


# ----------------------------------------------------------------------- the command line

CHECKS_MODULE = '''
import jax
import torch
from parity import function_check
from parity import strategies as S

TOL = dict(atol=1e-6, reason="float32 exp and sum in different orders")
CHECKS = [
    function_check("my_softmax", lambda x: torch.softmax(x, -1), lambda x: jax.nn.softmax(x, -1),
                   inputs={{"x": S.logits(2, 3)}}, **TOL),
]


def register(registry):
    # no tolerance: calibrated from torch in float64
    registry.add(function_check("my_tanh", lambda x: torch.tanh(x), lambda x: jax.numpy.tanh(x), inputs={{"x": S.logits(2, 3)}}))
    {extra}
'''


def _write(tmp_path, monkeypatch, name, extra=""):
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(CHECKS_MODULE.format(extra=extra)))
    monkeypatch.syspath_prepend(str(tmp_path))


def test_cli_runs_a_users_checks_with_the_table_and_exit_code(tmp_path, monkeypatch, capsys):
    _write(tmp_path, monkeypatch, "my_port_checks")
    assert main(["parity", "--checks", "my_port_checks", "--examples", "3"]) == 0
    out = capsys.readouterr().out
    assert "my_softmax" in out and "my_tanh" in out and "2 of 2 tricks agree" in out
    assert "label_smoothing" not in out  # the library's own checks are not mixed in
    assert {t.name for t in load_checks("my_port_checks")} == {"my_softmax", "my_tanh"}


def test_cli_exits_1_when_a_users_check_disagrees(tmp_path, monkeypatch, capsys):
    bad = ('registry.add(function_check("bad_softmax", lambda x: torch.softmax(x, -1), '
           'lambda x: jax.nn.softmax(x, 0), inputs={"x": S.logits(2, 3)}, **TOL))')
    _write(tmp_path, monkeypatch, "my_bad_checks", extra=bad)
    assert main(["parity", "--checks", "my_bad_checks", "--examples", "3"]) == 1
    out = capsys.readouterr().out
    assert "bad_softmax" in out and "DISAGREE" in out and "2 of 3 tricks agree" in out


def test_cli_names_a_module_that_declares_no_checks(tmp_path, monkeypatch):
    (tmp_path / "not_checks.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SystemExit, match="neither CHECKS"):
        main(["parity", "--checks", "not_checks"])
    with pytest.raises(SystemExit, match="ModuleNotFoundError"):
        main(["parity", "--checks", "no_such_module_anywhere"])
