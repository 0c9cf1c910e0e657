"""twintricks: image-classification training tricks written twice, in PyTorch and in JAX.

The distribution holds four packages:

* ``twintricks`` (this one): framework-free pieces both backends share — argument checks and,
  later, the NumPy-level data sets. It imports neither torch nor jax.
* ``torch_impl``: the tricks as PyTorch functions and modules, images ``[N, C, H, W]``.
* ``jax_impl``: the tricks as pure JAX functions, images ``[N, H, W, C]``.
* ``parity``: imports both; conversion, hypothesis strategies, the trick registry, the checks
  and the ``twintricks`` command line.
"""

__version__ = "0.1.0"
