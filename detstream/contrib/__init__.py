"""Integrations with other software, as Faust's ``faust.contrib``.

- :mod:`detstream.contrib.asgi`: an App co-hosted with an ASGI web server
  (uvicorn, hypercorn, ...) on one event loop, either direction;
  ``detstream.contrib.fastapi`` is the same module under Faust's older name.

Nothing here is imported by ``import detstream``; each module imports only
what it needs, and no web framework.
"""

__all__: list[str] = []
