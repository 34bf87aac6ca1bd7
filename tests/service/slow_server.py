"""``vit-serve`` with every engine run delayed by ``VIT_TEST_ENGINE_DELAY_S`` seconds.

The overload, timeout and draining tests need an engine that is reliably busy; a tiny bundle runs in
well under a millisecond, so this wrapper (a real server process otherwise) holds each batch a while.
"""

from __future__ import annotations

import os
import time

from service import engine
from service.cli import main

DELAY_S = float(os.environ.get("VIT_TEST_ENGINE_DELAY_S", "0"))
_run = engine.Engine.run


def _slow_run(self, images):
    time.sleep(DELAY_S)
    return _run(self, images)


engine.Engine.run = _slow_run

if __name__ == "__main__":
    main()
