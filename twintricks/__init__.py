"""twintricks: image-classification training tricks written twice, in PyTorch and in JAX.

The distribution holds six packages:

* ``twintricks`` (this one): framework-free pieces both backends share — argument checks, the
  NumPy-level data sets, the training recipe, the checkpoint format and file writing. It imports
  neither torch nor jax.
* ``torch_impl``: the tricks as PyTorch functions and modules, images ``[N, C, H, W]``.
* ``jax_impl``: the tricks as pure JAX functions, images ``[N, H, W, C]``.
* ``parity``: imports both; verification only — conversion, hypothesis strategies, the trick
  registry and its checks.
* ``twintricks_cli``: the ``twintricks`` command line; ``twintricks_bench``: the benchmark harness.
"""

__version__ = "0.1.0"
