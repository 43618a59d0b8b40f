"""The reconciliation job's steps (pipelines/recount.py builds the graph from them), one module a
step: ``read`` (1-2: files, parse, winners), ``changes`` (3-4, 7: changes against the prior state,
per-tag deltas, the new states), ``rows`` (5: the rows the run reads), ``bases`` (6: bases and drift),
``days`` (7b: day cells), ``report`` (8: the report and the run record), ``tables`` (where the job
reads and writes). Related tags (7c) are pipelines/related.py.

Every composite returns a dict of its PCollections; one that counts something for the report
returns its ``counts`` PCollection of (name, n) pairs beside its output (nothing is appended to a
list passed in)."""
from __future__ import annotations

NAMESPACE = "recount"  # the job's Beam metrics namespace
COUNTS = "counts"  # a composite's output of (name, n) pairs, summed into the report's figures


def count_as(name: str):
    """element → (name, 1): one count per element."""
    return lambda _: (name, 1)
