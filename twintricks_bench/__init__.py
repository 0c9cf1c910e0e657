"""The benchmark harness behind ``twintricks bench``.

:mod:`twintricks_bench.cases` says what is timed (one case per trick and implementation),
:mod:`twintricks_bench.timing` how (repeats, spread, memory, the machine), :mod:`twintricks_bench.train`
times the training step, and :mod:`twintricks_bench.harness` runs them and writes the results.
"""
