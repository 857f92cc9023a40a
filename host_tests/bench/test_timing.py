"""``ztp bench timing`` (issue 13 item 2): the statistic, and a run with tiny sizes. Timings are
never asserted (STYLE.md §5); the benchmark itself reports whether the classes separate."""

from __future__ import annotations

import pytest
from ztp.bench._timing import mann_whitney, run


def test_mann_whitney():
    auc, p = mann_whitney([5.0, 6.0, 7.0, 8.0] * 5, [1.0, 2.0, 3.0, 4.0] * 5)
    assert auc == 1.0 and p < 0.001  # perfectly separated
    auc, p = mann_whitney([1.0, 2.0, 3.0] * 5, [1.0, 2.0, 3.0] * 5)
    assert auc == 0.5 and p == pytest.approx(1.0)
    auc, p = mann_whitney([1.0] * 10, [1.0] * 10)  # all tied
    assert auc == 0.5 and p == 1.0
    auc, _ = mann_whitney([1.0, 4.0], [2.0, 3.0])
    assert auc == 0.5


def test_timing_rows():
    table = run(identities=3, gap_s=0, server_cpu=None, client_cpu=None, settle_s=0)
    assert [row[0] for row in table.rows] == ["1: uncached", "2: 0 s later"]
    for r in table.data["rounds"]:  # type: ignore[union-attr]
        assert len(r["known_ms"]) == len(r["unknown_ms"]) == 3
