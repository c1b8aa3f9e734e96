"""Headless Chromium for the page tests, driven over the DevTools protocol on a pipe.

``--remote-debugging-pipe`` makes Chromium read protocol commands from file
descriptor 3 and write answers and events to descriptor 4, each message a
JSON object ended by a NUL byte: no port, no network, no client library.
Every wait is a blocking read of that pipe bounded by ``TIMEOUT`` (never a
sleep): an answer, or the event a command causes (the page's load), is
read when Chromium sends it.

``scripts/bootstrap`` installs Debian's ``chromium`` when it is missing;
without it these tests fail (they do not skip) and say so.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: seconds any one answer or event may take before the test fails.
TIMEOUT = 60.0
#: what keeps Chromium off the (closed) network and quiet: without the background
#: networking flags its connections are refused and it retries them. Even with them it
#: still looked up Google's hosts (accounts., clients2., update.googleapis.com) through the
#: machine's resolver; the resolver rule answers every name but localhost "not found"
#: inside Chromium, so no lookup leaves it (the page is a file: it needs no network).
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--disable-domain-reliability",
    "--disable-client-side-phishing-detection", "--no-pings",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
    "--hide-scrollbars", "--force-device-scale-factor=1",
)


def executable() -> str:
    """The Chromium binary; an AssertionError naming the fix when there is none."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, ("chromium is not installed: run scripts/bootstrap (it installs Debian's "
                   "chromium package), or apt-get install --no-install-recommends chromium")
    return found


def run_once(args: Sequence[str], *, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[bytes]:
    """Chromium once with ``args`` (``--screenshot=...``, ``--dump-dom``) in a fresh profile."""
    with tempfile.TemporaryDirectory(prefix="detstream-chromium-") as profile:
        return subprocess.run(
            [executable(), *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True, timeout=timeout, check=True,
        )


class ProtocolError(Exception):
    """Chromium answered a command with an error."""


class Browser:
    """One headless Chromium with one page, driven by DevTools protocol commands."""

    def __init__(self, width: int = 1400, height: int = 900) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="detstream-chromium-")
        to_browser, self._commands = os.pipe()
        self._answers, from_browser = os.pipe()

        def as_fds_3_and_4() -> None:
            """In the child, before exec: the pipe ends where Chromium looks for them.

            Moved above 10 first, so that neither end is overwritten while the
            other is put in place, whatever numbers the pipes got.
            """
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser, from_browser)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self._process = subprocess.Popen(
            [executable(), *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={self._profile.name}",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4), preexec_fn=as_fds_3_and_4,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    # -- the protocol ---------------------------------------------------------------
    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events that come first are kept)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._read()
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise ProtocolError(f"{method}: {answer['error']}")
                return dict(answer.get("result", {}))
            self._events.append(answer)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """A command to the page."""
        return self.send(method, self._session, **params)

    def wait_for(self, method: str) -> dict[str, Any]:
        """The next event ``method`` of the page (one already received counts)."""
        while True:
            for event in self._events:
                if event.get("method") == method and event.get("sessionId") == self._session:
                    self._events.remove(event)
                    return dict(event.get("params", {}))
            self._events.append(self._read())

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._answers], [], [], TIMEOUT)
            assert ready, f"chromium sent nothing for {TIMEOUT:g}s"
            chunk = os.read(self._answers, 1 << 20)
            assert chunk, "chromium closed its DevTools pipe (it exited)"
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return dict(json.loads(message))

    # -- what the tests do ----------------------------------------------------------
    def open(self, path: Path) -> None:
        """Load a file and wait for its load event (its scripts have run by then)."""
        self._events.clear()
        self.call("Page.navigate", url=path.resolve().as_uri())
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-able; a promise is awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def hover(self, selector: str) -> None:
        """Move the mouse onto the centre of the element ``selector`` (scrolled into view)."""
        x, y = self.evaluate(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            " el.scrollIntoView({block: 'center', inline: 'center'});"
            " const r = el.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)

    def click(self, selector: str) -> None:
        """Press and release the mouse on the element ``selector``."""
        self.hover(selector)
        x, y = self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (AssertionError, OSError, ProtocolError):
            pass
        try:
            self._process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._commands)
        os.close(self._answers)
        self._profile.cleanup()
