"""Loaded at start-up by every Python process that has this folder on ``PYTHONPATH`` (a server and each of
its workers): with ``LOGREG_TEST_WRITE_DELAY`` set, every registry save pauses that many seconds with the
version complete on disk but not yet published, under the model's lock: the window crash tests aim at."""

import os

_delay = float(os.environ.get("LOGREG_TEST_WRITE_DELAY") or 0)
if _delay > 0:
    import time

    from service.store.registry import ModelRegistry

    def _pause(self: ModelRegistry) -> None:
        time.sleep(_delay)

    ModelRegistry._before_publish = _pause  # type: ignore[method-assign]
