"""pipelines/local_runner.py: the local runner asks Beam's own introspection once per DoFn object,
and gets Beam's answers (the Beam internals it patches still exist under these names)."""
from __future__ import annotations

import gc

import apache_beam as beam
from apache_beam.runners.direct import transform_evaluator
from apache_beam.transforms import userstate

from pipelines import local_runner
from pipelines.trends import ReviewTrends, ScoreTags


def test_specs_are_beams_and_remembered_per_dofn_object():
    original = userstate.get_dofn_specs if not local_runner._remember_dofn_specs.cache_info().currsize \
        else None
    local_runner.install()
    assert transform_evaluator.is_stateful_dofn is userstate.is_stateful_dofn
    assert transform_evaluator.get_dofn_specs is userstate.get_dofn_specs
    scorer, reviewer = ScoreTags(), ReviewTrends()
    state, timers = userstate.get_dofn_specs(scorer)
    assert state == {ScoreTags.STATE} and timers == {ScoreTags.EVALUATE}
    if original is not None:
        assert original(ScoreTags()) == (state, timers)
    for _ in range(3):
        assert transform_evaluator.is_stateful_dofn(scorer) is True
        assert transform_evaluator.is_stateful_dofn(reviewer) is False
    assert scorer in local_runner._known and reviewer in local_runner._known
    n = len(local_runner._known)
    del scorer, reviewer
    gc.collect()
    assert len(local_runner._known) == n - 2  # a bundle's copy is forgotten with it


def test_a_stateless_map_is_not_stateful():
    local_runner.install()
    assert transform_evaluator.is_stateful_dofn(beam.Map(lambda x: x).dofn) is False
