"""Blueprints (Faust's ``faust.web.Blueprint``): a set of pages defined once, served by apps.

::

    from detstream import web

    users = web.Blueprint("users")
    cache = users.cache(timeout=300.0)

    @users.route("/", name="list")
    class UserList(web.View):
        @cache.view()
        async def get(self, request):
            return self.json([...])

    @users.route("/{user_id}/", name="detail", cors_options={"*": {"allow_headers": "*"}})
    async def detail(web, request, user_id):
        return web.json({"id": user_id})

    users.static("/assets", "path/to/assets")

    users.register(app, url_prefix="/users/")   # now: /users/, /users/{user_id}/, /users/assets/...
    # or, when the web server starts (Faust's way for several blueprints):
    app.web.blueprints.add("/users/", users)     # a Blueprint, or its import path "pkg.web:users"

A blueprint only records its routes; ``register`` puts them on an app as
``@app.page`` pages named ``"{blueprint}:{name}"`` (``app.web.url_for("users:detail",
user_id=1)``), with the blueprint's ``url_prefix`` unless ``register`` names
another. One blueprint may be registered on several apps. Static routes are
named ``"{blueprint}.{name}"`` (default ``"static"``).

``app.web.blueprints.add`` waits until the web server starts (``detstream
worker``), or the first request of ``app.web.client()``, whichever is first;
adding one after that is an error.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from detstream.errors import InvalidArgument

from .cache import BackendArg, Cache
from .cors import parse_cors_options
from .views import View, view_class

if TYPE_CHECKING:
    from detstream.app import App

    from .routes import Web

__all__ = ["Blueprint", "BlueprintManager"]


class FutureRoute(NamedTuple):
    """A page a blueprint puts on an app when registered."""

    uri: str
    name: str
    handler: Any
    base: type[View]
    cors_options: Mapping[str, Any]


class FutureStaticRoute(NamedTuple):
    """Static files a blueprint serves once registered."""

    uri: str
    file_or_directory: Path
    name: str


class Blueprint:
    """Pages, static files and a cache, defined once and registered on apps (see the module doc)."""

    view_name_separator = ":"

    def __init__(self, name: str, *, url_prefix: str | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"a Blueprint needs a non-empty name, got {name!r}")
        _check_prefix(url_prefix)
        self.name = name
        self.url_prefix = url_prefix
        self.routes: list[FutureRoute] = []
        self.static_routes: list[FutureStaticRoute] = []

    def cache(self, timeout: float | timedelta | None = None, include_headers: bool = False,
              key_prefix: str | None = None, backend: BackendArg = None) -> Cache:
        """A cache for this blueprint's views: ``@cache.view()`` on a view method."""
        return Cache(timeout, include_headers, self.name if key_prefix is None else key_prefix,
                     backend)

    def route(self, uri: str, *, name: str | None = None,
              cors_options: Mapping[str, Any] | None = None,
              base: type[View] = View) -> Callable[[Any], Any]:
        """Decorate an ``async def view(web, request)`` or a View subclass; returns it unchanged."""
        if not isinstance(uri, str):
            raise InvalidArgument(f"Blueprint.route() takes a path str, got {uri!r}")
        where = f"cors_options of {self.name}.route({uri!r})"
        parse_cors_options(cors_options, what=where)  # bad options fail at the decorator line

        def decorate(handler: Any) -> Any:
            view_class(handler, base)  # so does a handler @app.page would refuse
            route_name = name or getattr(handler, "__name__", "") or uri
            self.routes.append(FutureRoute(uri, route_name, handler, base, cors_options or {}))
            return handler

        return decorate

    def static(self, uri: str, file_or_directory: str | Path, *, name: str | None = None) -> None:
        """Serve a directory's files under ``uri`` (or one file at ``uri``) once registered."""
        if not isinstance(uri, str):
            raise InvalidArgument(f"Blueprint.static() takes a path str, got {uri!r}")
        static_name = name or "static"
        if not static_name.startswith(self.name + "."):
            static_name = f"{self.name}.{static_name}"
        self.static_routes.append(FutureStaticRoute(uri, Path(file_or_directory), static_name))

    def register(self, app: App, *, url_prefix: str | None = None) -> None:
        """Put this blueprint's pages and static files on ``app``, under ``url_prefix``."""
        _check_prefix(url_prefix)
        prefix = url_prefix or self.url_prefix
        for route in self.routes:
            path = self._url_with_prefix(route.uri, prefix)
            app.page(path, name=self._view_name(route.name), base=route.base,
                     cors_options=route.cors_options)(route.handler)
        for static in self.static_routes:
            app.web.add_static(self._url_with_prefix(static.uri, prefix), static.file_or_directory,
                               name=static.name)

    def init_webserver(self, web: Web) -> None:
        """Called when the web server starts, for a blueprint added with ``web.blueprints.add``."""
        self.on_webserver_init(web)

    def on_webserver_init(self, web: Web) -> None:
        """Override to prepare something when the web server starts."""

    def _view_name(self, name: str) -> str:
        return self.view_name_separator.join([self.name, name])

    @staticmethod
    def _url_with_prefix(url: str, prefix: str | None) -> str:
        if not prefix:
            return url
        path = prefix.rstrip("/") + "/" + url.lstrip("/")
        return path[1:] if path.startswith("//") else path

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.name}>"


def _check_prefix(prefix: Any) -> None:
    if prefix is not None and not isinstance(prefix, str):
        raise InvalidArgument(f"a url_prefix must be a str such as '/users/', got {prefix!r}")


class BlueprintManager:
    """``app.web.blueprints``: blueprints registered when the web server starts (Faust's)."""

    def __init__(self, web: Web) -> None:
        self.web = web
        self.applied = False
        self._enabled: list[tuple[str, Blueprint | str]] = []
        #: blueprint name -> blueprint, once applied.
        self.active: dict[str, Blueprint] = {}

    def add(self, prefix: str, blueprint: Blueprint | str) -> None:
        """Register ``blueprint`` (or its import path ``"pkg.mod:name"``) under ``prefix``."""
        if self.applied:
            raise RuntimeError(
                f"cannot add blueprint {blueprint!r}: the web server has started (or a request "
                f"was answered); call blueprint.register(app, url_prefix=...) instead"
            )
        _check_prefix(prefix)
        if not isinstance(blueprint, (Blueprint, str)):
            raise InvalidArgument(f"web.blueprints.add() takes a Blueprint or its import path, "
                                  f"got {blueprint!r}")
        self._enabled.append((prefix, blueprint))

    def apply(self) -> None:
        """Register every added blueprint on the app, once."""
        if self.applied:
            return
        self.applied = True
        for prefix, blueprint in self._enabled:
            bp = _resolve(blueprint)
            self.active[bp.name] = bp
            bp.register(self.web.app, url_prefix=prefix)
            bp.init_webserver(self.web)


def _resolve(blueprint: Blueprint | str) -> Blueprint:
    if isinstance(blueprint, Blueprint):
        return blueprint
    module_name, sep, attr = blueprint.partition(":")
    if not sep:
        module_name, _, attr = blueprint.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise InvalidArgument(f"blueprint {blueprint!r} cannot be imported: {exc}") from None
    if not isinstance(found, Blueprint):
        raise InvalidArgument(f"{blueprint!r} is {found!r}, not a Blueprint")
    return found
