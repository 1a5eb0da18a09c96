"""A supervised process ends with its supervisor.

``ordersync run`` starts each component in a session of its own (so Ctrl-C reaches only the supervisor,
which stops them in order). If the supervisor itself is killed (SIGKILL, the OOM killer) its children
would live on, and a restarted supervisor would start a second connector per store and a webhook
receiver that cannot bind its port. So the supervisor names itself in the environment, and each child
asks Linux to send it SIGTERM when that parent goes (``prctl(PR_SET_PDEATHSIG)``).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

ENV = "ORDERSYNC_SUPERVISOR_PID"
PR_SET_PDEATHSIG = 1


def end_with_supervisor() -> None:
    """In a process started by the supervisor: SIGTERM once the supervisor is gone."""
    supervisor = os.environ.get(ENV)
    if not supervisor or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        return  # not allowed here (some sandboxes): the supervisor's own shutdown still stops us
    if os.getppid() != int(supervisor):  # it was already gone before the call above
        os.kill(os.getpid(), signal.SIGTERM)
