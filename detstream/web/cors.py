"""CORS: which other origins may call a page, its preflight answer and its response headers.

Faust serves CORS through aiohttp-cors: ``cors_options`` on ``@app.page`` (or
``Blueprint.route``) and the ``web_cors_options`` setting are mappings from an
origin (``"https://example.com"``, or ``"*"`` for any) to
``ResourceOptions(allow_credentials, expose_headers, allow_headers,
max_age, allow_methods)`` or a dict of the same keys. The same rules are
here, in a few functions with no aiohttp, so the in-process client and the
server answer alike:

- A page has CORS when it names ``cors_options`` or the setting names any.
  Its rules per origin are its own, else the setting's (an origin the page
  names replaces the setting's rules for that origin, whole).
- **Preflight** (``OPTIONS`` on such a page) needs ``Origin`` and
  ``Access-Control-Request-Method``; the method must be one the view
  answers (or one the origin's ``allow_methods`` lists, ``"*"`` for any);
  every ``Access-Control-Request-Headers`` name must be in ``allow_headers``
  (``"*"`` for any). The answer is 200 with ``Access-Control-Allow-Origin``
  (the request's origin), ``-Allow-Credentials: true`` when allowed,
  ``-Max-Age``, ``-Allow-Methods`` (the requested method) and
  ``-Allow-Headers`` (the requested headers); anything refused is 403 saying
  why. The view's own ``options`` method is not called on such a page.
- **Other requests** with an ``Origin`` the rules know get
  ``Access-Control-Allow-Origin``, ``-Allow-Credentials`` and
  ``-Expose-Headers`` (``"*"``: every header of the response but the simple
  ones), on every answer of the page, errors included.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from detstream.errors import InvalidArgument

from .views import Request, Response, error_response

__all__ = ["OriginRules", "ResourceOptions", "add_cors_headers", "cors_rules", "parse_cors_options",
           "preflight"]

#: response headers a browser shows a script anyway (the CORS "simple response headers").
SIMPLE_RESPONSE_HEADERS = frozenset({
    "cache-control", "content-language", "content-type", "expires", "last-modified", "pragma",
})
_FIELDS = ("allow_credentials", "expose_headers", "allow_headers", "max_age", "allow_methods")


class ResourceOptions(NamedTuple):
    """CORS rules for one origin (Faust's ``faust.web.ResourceOptions``).

    ``expose_headers``, ``allow_headers`` and ``allow_methods`` are lists of
    names, or ``"*"`` for any.
    """

    allow_credentials: bool = False
    expose_headers: str | Iterable[str] = ()
    allow_headers: str | Iterable[str] = ()
    max_age: int | None = None
    allow_methods: str | Iterable[str] | None = ()


@dataclass(frozen=True)
class OriginRules:
    """One origin's rules, checked and normalized: header and method names upper case."""

    allow_credentials: bool = False
    expose_headers: str | tuple[str, ...] = ()
    allow_headers: str | frozenset[str] = frozenset()
    max_age: int | None = None
    allow_methods: str | frozenset[str] = frozenset()

    def allows_method(self, method: str) -> bool:
        return self.allow_methods == "*" or method.upper() in self.allow_methods


#: origin (or ``"*"``) -> its rules.
CorsRules = Mapping[str, OriginRules]


def parse_cors_options(value: Any, *, what: str) -> dict[str, OriginRules]:
    """``{origin: ResourceOptions | dict}`` checked and normalized; ``what`` names it in errors."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgument(
            f"{what} must map an origin (or '*') to ResourceOptions or a dict, got "
            f"{type(value).__name__} {value!r}"
        )
    rules: dict[str, OriginRules] = {}
    for origin, options in value.items():
        if not isinstance(origin, str) or not origin:
            raise InvalidArgument(f"{what}: an origin must be a non-empty str, got {origin!r}")
        rules[origin] = _origin_rules(options, f"{what}[{origin!r}]")
    return rules


def _origin_rules(options: Any, what: str) -> OriginRules:
    if isinstance(options, OriginRules):
        return options
    if hasattr(options, "_asdict"):  # Faust's or aiohttp-cors' ResourceOptions
        fields = dict(options._asdict())
    elif isinstance(options, Mapping):
        fields = dict(options)
    else:
        raise InvalidArgument(f"{what} must be ResourceOptions or a dict, got {options!r}")
    unknown = sorted(set(fields) - set(_FIELDS))
    if unknown:
        raise InvalidArgument(f"{what}: unknown option(s) {', '.join(unknown)}; "
                              f"the options are {', '.join(_FIELDS)}")
    credentials = fields.get("allow_credentials", False)
    if not isinstance(credentials, bool):
        raise InvalidArgument(f"{what}: allow_credentials must be True or False, got {credentials!r}")
    max_age = fields.get("max_age")
    if max_age is not None and (isinstance(max_age, bool) or not isinstance(max_age, int)
                                or max_age < 0):
        raise InvalidArgument(f"{what}: max_age must be seconds as an int >= 0, got {max_age!r}")
    expose = _names(fields.get("expose_headers"), f"{what}: expose_headers", upper=False)
    return OriginRules(
        allow_credentials=credentials,
        expose_headers=expose if isinstance(expose, str) else tuple(sorted(expose)),
        allow_headers=_names(fields.get("allow_headers"), f"{what}: allow_headers"),
        max_age=max_age,
        allow_methods=_names(fields.get("allow_methods"), f"{what}: allow_methods"),
    )


def _names(value: Any, what: str, *, upper: bool = True) -> str | frozenset[str]:
    """``"*"``, or a list of names as a set (upper case unless told otherwise)."""
    if value is None:
        return frozenset()
    if value == "*":
        return "*"
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidArgument(f"{what} must be '*' or a list of names, got {value!r}")
    names = list(value)
    if not all(isinstance(name, str) and name.strip() for name in names):
        raise InvalidArgument(f"{what} must be '*' or a list of names, got {value!r}")
    return frozenset(name.strip().upper() if upper else name.strip() for name in names)


def cors_rules(page: CorsRules | None, defaults: CorsRules) -> CorsRules | None:
    """A page's rules over the setting's, or None when neither names any (no CORS)."""
    if not page and not defaults:
        return None
    return {**defaults, **(page or {})}


def _rules_for(rules: CorsRules, origin: str) -> OriginRules | None:
    return rules.get(origin, rules.get("*"))


def preflight(request: Request, rules: CorsRules, view_methods: Iterable[str]) -> Response:
    """The answer to an ``OPTIONS`` request on a page with CORS ``rules``."""
    origin = request.headers.get("Origin")
    if origin is None:
        return _refused("the request has no Origin header")
    method = request.headers.get("Access-Control-Request-Method")
    if not method:
        return _refused("the request has no Access-Control-Request-Method header")
    options = _rules_for(rules, origin)
    if options is None:
        return _refused(f"origin {origin!r} is not allowed")
    answered = {m.upper() for m in view_methods if m.lower() != "options"}
    if method.upper() not in answered and not options.allows_method(method):
        return _refused(f"method {method!r} is not allowed here (allowed: "
                        f"{', '.join(sorted(answered)) or 'none'})")
    asked = request.headers.get("Access-Control-Request-Headers", "")
    headers = [h.strip() for h in asked.split(",") if h.strip()]
    if not isinstance(options.allow_headers, str):  # "*": any
        refused = sorted({h.upper() for h in headers} - options.allow_headers)
        if refused:
            return _refused(f"headers not allowed: {', '.join(refused)}")
    answer = Response(status=200, content_type="text/plain")
    answer.headers["Access-Control-Allow-Origin"] = origin
    if options.allow_credentials:
        answer.headers["Access-Control-Allow-Credentials"] = "true"
    if options.max_age is not None:
        answer.headers["Access-Control-Max-Age"] = str(options.max_age)
    answer.headers["Access-Control-Allow-Methods"] = method
    if headers:
        answer.headers["Access-Control-Allow-Headers"] = ",".join(headers)
    return answer


def _refused(why: str) -> Response:
    return error_response(403, f"CORS preflight request failed: {why}")


def add_cors_headers(request: Request, response: Response, rules: CorsRules) -> None:
    """Add the CORS headers for the request's ``Origin`` to an answer of a page with ``rules``."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    options = _rules_for(rules, origin)
    if options is None:
        return
    if options.expose_headers == "*":
        exposed = sorted(h for h in response.headers if h.lower() not in SIMPLE_RESPONSE_HEADERS)
        if exposed:
            response.headers["Access-Control-Expose-Headers"] = ",".join(exposed)
    elif options.expose_headers:
        response.headers["Access-Control-Expose-Headers"] = ",".join(options.expose_headers)
    response.headers["Access-Control-Allow-Origin"] = origin
    if options.allow_credentials:
        response.headers["Access-Control-Allow-Credentials"] = "true"
