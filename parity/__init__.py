"""Cross-framework verification: conversion, hypothesis strategies, the trick registry and its checks.

The only library package that imports both PyTorch and JAX (the command line in
:mod:`twintricks_cli` and the harness in :mod:`twintricks_bench` use it).
"""
