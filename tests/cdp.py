"""A small Chrome DevTools Protocol client for browser tests (asyncio + C{websockets}).

Only what the dashboard tests need: launch a headless Chromium, open a page
target over the browser connection (flat sessions), send commands and await
their replies, record events (every request URL, console errors, uncaught
exceptions), evaluate JavaScript, poll for a condition with a deadline and
take screenshots.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import websockets

__all__ = ["Browser", "CDPError", "Page", "launch"]

_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")

#: Flags for a quiet, reproducible headless browser that calls nobody.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)


class CDPError(Exception):
    """A command answered with an error, or the browser went away."""


class _Connection:
    """One WebSocket to the browser; replies matched by id, events fanned out."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                message = json.loads(raw)
                if "id" in message:
                    future = self._pending.pop(message["id"], None)
                    if future is not None and not future.done():
                        future.set_result(message)
                else:
                    for listener in list(self._listeners):
                        listener(message)
        except websockets.ConnectionClosed:
            pass
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(CDPError("browser connection closed"))
            self._pending.clear()

    async def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Send one command and return its C{result}; raise L{CDPError} on error."""
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        await self._ws.send(json.dumps(message))
        try:
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(ident, None)
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def listen(self, listener: Callable[[dict[str, Any]], None]) -> None:
        self._listeners.append(listener)

    async def close(self) -> None:
        await self._ws.close()
        with contextlib.suppress(Exception):
            await self._reader


class Page:
    """One page target, attached through a flat session.

    @ivar requests: every URL the page asked for (HTTP requests and WebSockets),
        in order.
    @ivar errors: uncaught exceptions and console/log errors (CSP violations
        included), as text.
    """

    def __init__(self, connection: _Connection, target: str, session: str) -> None:
        self._connection = connection
        self.target = target
        self.session = session
        self.requests: list[str] = []
        self.websockets: list[str] = []
        self.errors: list[str] = []
        self._events: list[tuple[str, dict[str, Any]]] = []
        self._waiters: list[tuple[str, asyncio.Future[dict[str, Any]]]] = []
        connection.listen(self._on_event)

    def _on_event(self, message: dict[str, Any]) -> None:
        if message.get("sessionId") != self.session:
            return
        method, params = message.get("method", ""), message.get("params", {})
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Network.webSocketCreated":
            self.requests.append(params["url"])
            self.websockets.append(params["url"])
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            self.errors.append(f"exception: {text}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = params.get("args", [])
            self.errors.append(
                "console: " + " ".join(str(a.get("value", a.get("description"))) for a in args)
            )
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            self.errors.append(
                f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}"
            )
        self._events.append((method, params))
        for name, future in list(self._waiters):
            if name == method and not future.done():
                future.set_result(params)
                self._waiters.remove((name, future))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """A command for this page."""
        return await self._connection.send(method, params, session=self.session)

    async def enable(self) -> None:
        """Turn on the domains whose events we record."""
        for domain in ("Page", "Runtime", "Network", "Log"):
            await self.send(f"{domain}.enable")

    async def navigate(self, url: str, timeout: float = 30.0) -> None:
        """Go to C{url} and wait for its C{load} event."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.append(("Page.loadEventFired", future))
        result = await self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise CDPError(f"navigating to {url}: {result['errorText']}")
        await asyncio.wait_for(future, timeout)

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of C{expression} (promises awaited); JS errors raise."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"{expression!r} threw: {text}")
        return result["result"].get("value")

    async def wait_for(
        self,
        expression: str,
        timeout: float = 20.0,
        step: float = 0.1,
        describe: str | None = None,
    ) -> Any:
        """Poll C{expression} until it is truthy; return it, or fail after C{timeout}.

        On timeout the error shows C{describe} evaluated (for context), if given.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if loop.time() >= deadline:
                context = await self.evaluate(describe) if describe else None
                raise AssertionError(
                    f"{expression} still false after {timeout}s; context: {context!r}; "
                    f"errors: {self.errors}"
                )
            await asyncio.sleep(step)

    async def viewport(
        self, width: int, height: int, scale: float = 1.0, mobile: bool = False
    ) -> None:
        """Emulate a screen of C{width} x C{height} CSS pixels."""
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=scale,
            mobile=mobile,
        )

    async def color_scheme(self, scheme: str) -> None:
        """Emulate C{prefers-color-scheme: scheme} (C{light} or C{dark})."""
        await self.send(
            "Emulation.setEmulatedMedia",
            features=[{"name": "prefers-color-scheme", "value": scheme}],
        )

    async def screenshot(self, full_page: bool = True) -> bytes:
        """A PNG of the page (the whole scrollable page when C{full_page})."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            metrics = await self.send("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params["captureBeyondViewport"] = True
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": size["height"],
                "scale": 1,
            }
        result = await self.send("Page.captureScreenshot", **params)
        return base64.b64decode(result["data"])


class Browser:
    """A running Chromium and the CDP connection to it."""

    def __init__(self, process: asyncio.subprocess.Process, connection: _Connection) -> None:
        self.process = process
        self._connection = connection
        self.stderr: list[str] = []

    async def new_page(self, before_load: str | None = None) -> Page:
        """A fresh tab on C{about:blank}, attached, with events enabled.

        C{before_load}: JavaScript run in every document before its own scripts.
        """
        target = await self._connection.send("Target.createTarget", {"url": "about:blank"})
        attached = await self._connection.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self._connection, target["targetId"], attached["sessionId"])
        await page.enable()
        if before_load:
            await page.send("Page.addScriptToEvaluateOnNewDocument", source=before_load)
        return page

    async def close(self, timeout: float = 10.0) -> None:
        """Ask the browser to quit; kill it if it will not."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._connection.send("Browser.close"), 5)
        with contextlib.suppress(Exception):
            await self._connection.close()
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def _drain(stream: asyncio.StreamReader, sink: list[str]) -> None:
    """Keep reading the browser's stderr so it never blocks on a full pipe."""
    while line := await stream.readline():
        sink.append(line.decode("utf-8", "replace"))
        del sink[:-200]


@contextlib.asynccontextmanager
async def launch(
    executable: str, extra_flags: Sequence[str] = (), timeout: float = 30.0
) -> AsyncIterator[Browser]:
    """Start a headless Chromium with a throw-away profile; yields a L{Browser}."""
    profile = tempfile.mkdtemp(prefix="pistatsd-chromium-")
    process = await asyncio.create_subprocess_exec(
        executable,
        *CHROMIUM_FLAGS,
        *extra_flags,
        f"--user-data-dir={profile}",
        "about:blank",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        # HOME too: crash reports, dconf and the NSS database land in the throw-away profile.
        env=dict(os.environ, HOME=profile, LANG="en_US.UTF-8", TZ=os.environ.get("TZ", "UTC")),
    )
    assert process.stderr is not None
    seen: list[str] = []
    drain: asyncio.Task[None] | None = None
    browser: Browser | None = None
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        url = None
        while url is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"chromium printed no DevTools URL in {timeout}s:\n{''.join(seen)}"
                )
            try:
                line = await asyncio.wait_for(process.stderr.readline(), remaining)
            except TimeoutError:
                continue
            if not line:
                raise AssertionError(
                    f"chromium exited ({await process.wait()}) before listening:\n{''.join(seen)}"
                )
            text = line.decode("utf-8", "replace")
            seen.append(text)
            match = _LISTENING.search(text)
            if match:
                url = match.group(1)
        drain = asyncio.ensure_future(_drain(process.stderr, seen))
        ws = await websockets.connect(url, max_size=None, ping_interval=None, open_timeout=timeout)
        browser = Browser(process, _Connection(ws))
        browser.stderr = seen
        yield browser
    finally:
        if browser is not None:
            await browser.close()
        elif process.returncode is None:
            process.kill()
            await process.wait()
        if drain is not None:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain
        shutil.rmtree(profile, ignore_errors=True)
