"""The benchmark harness behind ``twintricks bench``.

:mod:`twintricks_bench.rows` says what is timed (one row per trick job, declared by family, each
case one implementation of it; :mod:`twintricks_bench.cases` holds the machinery they share),
:mod:`twintricks_bench.timing` how (repeats, spread, memory, the machine), :mod:`twintricks_bench.train`
times the training step, and :mod:`twintricks_bench.harness` runs them and writes the results.
"""
