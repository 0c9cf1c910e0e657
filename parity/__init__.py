"""Cross-framework verification: conversion, strategies, the trick registry, checks and the CLI.

The only package that imports both PyTorch and JAX.
"""
