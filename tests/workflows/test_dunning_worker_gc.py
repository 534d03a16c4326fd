"""The dunning worker's process settles the garbage collector once it is built
(``workflows.dunning.worker.settle_gc``): what was loaded so far leaves the generations, and the
youngest is collected less often."""

from __future__ import annotations

import gc

from workflows.dunning.worker import _GC_YOUNG, settle_gc


def test_settle_gc_freezes_start_up_objects_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    try:
        settle_gc()
        assert gc.get_threshold() == (_GC_YOUNG, before[1], before[2])
        assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
