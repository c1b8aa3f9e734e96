"""LiveCheck's patches of other libraries (Faust's ``faust.livecheck.patches``).

A LiveCheck app applies them when it is made, as Faust's does; each is
applied once per process, however often it is asked for.
"""

from __future__ import annotations

from detstream.web.session_headers import add_session_headers

from .propagation import current_test_headers

__all__ = ["patch_aiohttp_session", "patch_all"]


def patch_all() -> None:
    """Apply every LiveCheck patch."""
    patch_aiohttp_session()


def patch_aiohttp_session() -> None:
    """Every aiohttp ``ClientSession`` made from now on sends the current test's headers.

    A request started while a test is current (``current_test()``: in a
    triggered test, an agent's event or a view's request that carries one)
    carries its ``LiveCheck-Test-*`` headers, so the service it calls serves
    it as part of the test, whichever session the code under test uses.
    """
    add_session_headers(current_test_headers)
