"""WebSockets over loopback against the real daemon, with the independent C{websockets} client."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import psutil
import pytest
import websockets

from tests.daemon import Daemon


@pytest.fixture(scope="module")
def server():
    d = Daemon(["--broadcast-interval", "0.1", "--sample-interval", "0.5"]).start()
    yield d
    assert d.stop() == 0
    assert "Traceback" not in d.text()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 40))


def test_echo_text_and_binary(server):
    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws/echo") as ws:
            await ws.send("héllo")
            assert await ws.recv() == "héllo"
            await ws.send(b"\x00\x01\xff")
            assert await ws.recv() == b"\x00\x01\xff"

    run(go())


def test_broadcast_rate_and_identical_payloads(server):
    async def collect(ws, n):
        return [await ws.recv() for _ in range(n)]

    async def go():
        url = f"ws://127.0.0.1:{server.port}/ws/broadcast"
        async with websockets.connect(url) as a, websockets.connect(url) as b:
            hello_a, hello_b = json.loads(await a.recv()), json.loads(await b.recv())
            assert hello_a["type"] == hello_b["type"] == "hello"
            assert hello_a["id"] != hello_b["id"] and len(hello_a["id"]) == 32
            assert hello_a["interval"] == 0.1
            assert hello_a["history"], "the hello carries recent history"
            started = time.monotonic()
            msgs_a = await collect(a, 20)
            elapsed = time.monotonic() - started
            msgs_b = await collect(b, 20)
            # Both clients were connected for every tick: the same frames, byte for byte.
            sent_a = [json.loads(m)["sent"] for m in msgs_a]
            sent_b = [json.loads(m)["sent"] for m in msgs_b]
            common = sorted(set(sent_a) & set(sent_b))
            assert len(common) >= 18
            by_sent_a = {json.loads(m)["sent"]: m for m in msgs_a}
            by_sent_b = {json.loads(m)["sent"]: m for m in msgs_b}
            assert all(by_sent_a[s] == by_sent_b[s] for s in common)
            first = json.loads(msgs_a[0])
            assert first["type"] == "stats" and "cpu" in first and "memory" in first
            assert 1.2 <= elapsed <= 3.5, elapsed  # 20 ticks at 0.1 s

    run(go())


def test_oversized_message_closes_with_1009(server):
    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws/echo", max_size=None) as ws:
            await ws.send("x" * (64 * 1024 + 1))
            with pytest.raises(websockets.ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd.code == 1009

    run(go())


def test_origins(server):
    async def go():
        url = f"ws://127.0.0.1:{server.port}/ws/echo"
        async with websockets.connect(url, origin=f"http://127.0.0.1:{server.port}") as ws:
            await ws.send("same origin")
            assert await ws.recv() == "same origin"
        with pytest.raises(websockets.InvalidStatus) as info:
            async with websockets.connect(url, origin="http://evil.example"):
                pass
        assert info.value.response.status_code == 403

    run(go())


def _raw_websocket(port: int, path: str) -> socket.socket:
    """A client that handshakes and then never reads (tiny receive buffer)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    s.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    return s


def test_clients_that_never_read_stay_bounded():
    """Ten stuck clients: the server skips them (memory flat), a good client keeps its rate,
    and the stuck ones are eventually dropped."""
    d = Daemon(["--broadcast-interval", "0.05", "--history-seconds", "30"]).start()
    try:
        proc = psutil.Process(d.proc.pid)
        stuck = [_raw_websocket(d.port, "/ws/broadcast") for _ in range(10)]

        async def good_client():
            url = f"ws://127.0.0.1:{d.port}/ws/broadcast"
            async with websockets.connect(url) as ws:
                await ws.recv()  # hello
                rss_start = proc.memory_info().rss
                started = time.monotonic()
                count = 0
                health: dict = {}
                # Until the stuck clients' buffers are full and ticks are skipped.
                while time.monotonic() - started < 25:
                    await ws.recv()
                    count += 1
                    if count % 20 == 0:
                        reply = await asyncio.to_thread(d.get, "/health")
                        health = json.loads(reply[2])["websockets"]
                        if health["skipped_sends"] > 0 and time.monotonic() - started > 3:
                            break
                return count / (time.monotonic() - started), rss_start, health

        rate, rss_start, health = run(good_client())
        growth = proc.memory_info().rss - rss_start
        assert rate > 15, rate  # 20 per second expected
        assert health["skipped_sends"] > 0, health
        assert growth < 10 * 1024 * 1024, growth
        for s in stuck:
            s.close()
    finally:
        assert d.stop() == 0


def test_shutdown_closes_websockets_with_1001():
    d = Daemon().start()

    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{d.port}/ws/echo") as ws:
            await ws.send("ping")
            await ws.recv()
            d.terminate()
            with pytest.raises(websockets.ConnectionClosed) as info:
                await ws.recv()
            return info.value.rcvd.code

    try:
        assert run(go()) == 1001
    finally:
        assert d.stop() == 0


def test_health_counts_websocket_clients(server):
    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws/echo"):
            health = await asyncio.to_thread(server.get, "/health")
            return json.loads(health[2])

    health = run(go())
    assert health["websocket_clients"] >= 1
    assert health["websockets"]["clients"] >= 1


def test_wss_echo_with_the_generated_certificate(tmp_path):
    import ssl

    state = tmp_path / "state"
    d = Daemon(["--tls", "ssl:0:interface=127.0.0.1", "--state-dir", str(state)]).start()
    tls_port = d.bound_port("tls")
    try:
        context = ssl.create_default_context(cafile=str(state / "tls" / "cert.pem"))

        async def go():
            url = f"wss://localhost:{tls_port}/ws/echo"
            origin = f"https://localhost:{tls_port}"
            async with websockets.connect(url, ssl=context, origin=origin) as ws:
                await ws.send("secure")
                assert await ws.recv() == "secure"
            async with websockets.connect(
                f"wss://localhost:{tls_port}/ws/broadcast", ssl=context
            ) as ws:
                assert json.loads(await ws.recv())["type"] == "hello"

        run(go())
    finally:
        assert d.stop() == 0
