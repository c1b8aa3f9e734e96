"""Faust's older name of :mod:`detstream.contrib.asgi` (``faust.contrib.fastapi``): the same objects.

Nothing here imports FastAPI: its lifespan hook takes :func:`faust_lifespan`
as any ASGI framework's does.
"""

from .asgi import (
    AppNotRunnable,
    AsgiService,
    FaustLifespanMiddleware,
    LifespanProtocolError,
    LoopMismatch,
    bind_to_running_loop,
    faust_app_running,
    faust_lifespan,
    serve_asgi,
)

__all__ = [
    "AppNotRunnable", "AsgiService", "FaustLifespanMiddleware", "LifespanProtocolError",
    "LoopMismatch", "bind_to_running_loop", "faust_app_running", "faust_lifespan", "serve_asgi",
]
