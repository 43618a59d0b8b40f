"""What the local streaming job changes in the BundleBasedDirectRunner, in its own process only.

* The Pub/Sub read: pipelines/local_reader.py (stoppable, big messages).
* **DoFn introspection once per DoFn object.** The runner asks ``is_stateful_dofn(dofn)`` for every
  consumer of every committed bundle (transform_evaluator.py ``should_execute_serially``, called
  from executor.py ``schedule_consumption``) and again when a bundle starts; each call walks every
  method of the DoFn with ``inspect.signature`` (transforms/userstate.py ``get_dofn_specs``).
  Profiled with py-spy on the running local job (2026-12-08, ``make dev``'s 3,000 events): about a
  third of the job's samples were in ``get_dofn_specs`` and the ``inspect`` calls under it. A DoFn's
  state and timer specs are the default values of its methods' parameters, fixed once the object
  exists, so they are remembered per object (weakly: a bundle's unpickled copy is forgotten with
  it). Beam's own answer is unchanged: the same function computes it, once.

Both are Beam internals (Beam 2.77): tests/unit/test_local_runner.py fails on an upgrade that moves
them. Dataflow never loads this module.
"""
from __future__ import annotations

import functools
import weakref

from pipelines import local_reader


def install() -> None:
    """Both changes, in this process (idempotent)."""
    local_reader.install()
    _remember_dofn_specs()


_known: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # DoFn object → (state specs, timer specs)


@functools.cache
def _remember_dofn_specs() -> None:
    from apache_beam.runners.direct import transform_evaluator
    from apache_beam.transforms import userstate

    compute = userstate.get_dofn_specs
    known = _known

    def get_dofn_specs(dofn):
        try:
            return known[dofn]
        except (KeyError, TypeError):  # TypeError: an object that cannot be weakly referenced
            pass
        specs = compute(dofn)
        try:
            known[dofn] = specs
        except TypeError:
            pass
        return specs

    def is_stateful_dofn(dofn) -> bool:
        state_specs, timer_specs = get_dofn_specs(dofn)
        return bool(state_specs or timer_specs)

    # transform_evaluator imported both names; direct_runner and direct_userstate call them
    # through the userstate module at call time
    for module in (userstate, transform_evaluator):
        module.get_dofn_specs = get_dofn_specs
        module.is_stateful_dofn = is_stateful_dofn
