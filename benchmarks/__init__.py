"""Scripts that measure compress (each prints figures and writes JSON; see benchmarks/RESULTS.md). A package so that
the tests import them as benchmarks.<script>."""
