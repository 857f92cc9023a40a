"""ztp.bench: on-demand benchmarks against named references (``ztp bench ...``).

See docs/bench.md. Each benchmark returns a :class:`Table`; nothing here runs in the tests
except a smoke test with tiny sizes that checks the rows, never the timings.
"""

from ._common import BenchError, Table

__all__ = ["BenchError", "Table"]
