"""Runs under a 30 % mix of injected Batch faults (429 with Retry-After, 500, 503, dropped connections, and
faults after the operation took effect) end exactly as without faults: same outcome, one user and one record
per (node, user), no user without a record, and revoke and expiry cleanup remove every user the app created.
The same scenario as `python -m bench faults`, with fewer runs."""

from __future__ import annotations

import os

import pytest

from bench.fault_bench import run_scenarios, summary

RUNS = int(os.environ.get("FAULT_RUNS", "20"))
RATE = 0.3


@pytest.mark.slow
def test_runs_under_thirty_percent_batch_faults_end_as_without_faults(stack, keys):
    stack.batch.reset_counters()
    expected, results = run_scenarios(stack, RUNS, RATE, wave=10, public_key=keys["alice"].public)
    counters = stack.batch.counters()
    report = summary(expected, results, RATE, sum(counters["injected"].values()), counters["total"])
    print(report)
    assert expected == "completed"
    assert len(results) == RUNS and all(r.good for r in results), report
    assert sum(counters["injected"].values()) > 0
