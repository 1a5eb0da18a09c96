"""``ordersync process`` with a bug planted in the order stage: the order whose id is in ``BUG_ORDER_ID``
raises a RuntimeError, once (``BUG_FLAG`` is created when it has). Everything else is the real processor
on faust's real code paths, so a test can see what a worker does with an exception that is not bad data.

    python -m tests.apps.processor_with_a_bug process --app-id ... --data-dir ...
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ordersync import cli
from ordersync.processors import agents

real_step = agents.step_order


def step_with_a_bug(raw: Any, *args: Any, **kwargs: Any) -> Any:
    flag = Path(os.environ["BUG_FLAG"])
    if raw["source_order_id"] == os.environ["BUG_ORDER_ID"] and not flag.exists():
        flag.touch()
        raise RuntimeError("a planted bug")
    return real_step(raw, *args, **kwargs)


agents.step_order = step_with_a_bug

if __name__ == "__main__":
    cli.main()
