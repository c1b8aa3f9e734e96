"""Every private detail of mode and aiokafka that detstream relies on, in one place.

Both libraries lack a public way to do a few things detstream needs (widen a
supervisor's restart budget, learn the group generation a consumer joined
in, commit offsets for a given generation, ...). Reaching into their
internals from all over the code would make an upgrade a hunt; here each
reach is one small function, and ``tests/unit/test_compat.py`` checks every
one of them against the installed versions, so an upgrade that moves one
fails there, by name, instead of somewhere at run time.

Nothing here imports aiokafka: the functions take its objects as given.
"""

from __future__ import annotations

import mode

#: the versions these details were read from (tests/unit/test_compat.py checks them).
TESTED_MODE = "0.7"
TESTED_AIOKAFKA = "0.14"


# -- mode ------------------------------------------------------------------------------
def widen_restart_budget(supervisor: mode.SupervisorStrategy, restarts: float) -> None:
    """Let ``supervisor`` restart ``restarts`` actors at once before it gives up.

    mode sizes the rate limiter's bucket to ``over`` tokens; a OneForAllSupervisor
    restarting three actors at once would give up at once.
    """
    bucket = supervisor._bucket
    bucket.capacity = bucket._tokens = restarts
