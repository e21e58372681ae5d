"""The dashboard's alerts in a real headless Chromium: the banner of what fires (severity
colours, hidden when nothing fires) and the firing periods shaded on the charts.

Same harness as L{tests.integration.test_dashboard}: the real daemon, the browser over
the DevTools protocol, screenshots in C{test-artifacts/}.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.cdp import launch
from tests.daemon import Daemon
from tests.integration.test_dashboard import (
    FAST,
    WWW,
    chromium,  # noqa: F401  (a fixture)
    exceptions,
    next_frames,
    run,
    save,
)
from tests.integration.test_dashboard import assets as assets

pytestmark = pytest.mark.real

ALERTS = "window.pistatsdAlerts && window.pistatsdAlerts.stats()"
JSON = {"Content-Type": "application/json"}


def alerts_when(condition: str) -> str:
    """JS: the alerts' stats when C{condition} (about C{s}) holds, else null."""
    return f"(() => {{ const s = {ALERTS}; return s && ({condition}) ? s : null; }})()"


#: The banner as shown, read in one synchronous step.
BANNER = """(() => {
    const b = document.getElementById('alert-banner');
    const r = b.getBoundingClientRect();
    return {
        hidden: b.hidden,
        height: r.height,
        severity: b.dataset.severity,
        title: document.getElementById('alert-title').textContent,
        items: [...b.querySelectorAll('li')].map(li => [li.className,
            li.querySelector('strong').textContent,
            li.querySelector('.alert-severity').textContent]),
        colours: [...b.querySelectorAll('.alert-severity')]
            .map(e => getComputedStyle(e).backgroundColor),
        border: getComputedStyle(b).borderLeftColor,
    };
})()"""


@pytest.fixture
def daemon(assets, tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "temp").write_text("35000\n")
    config = tmp_path / "p.toml"
    config.write_text(
        f"sensor-root = [{json.dumps(str(root))}]\n"
        "[alerts.hot]\n"
        'series = "sensors.room"\n'
        "above = 30\n"
        'severity = "critical"\n'
        "[alerts.warm]\n"
        'series = "sensors.room"\n'
        "above = 25\n"
    )
    d = Daemon(["--www", WWW, *FAST, "--config", str(config)]).start()
    d.root = root  # type: ignore[attr-defined]
    yield d
    assert d.stop() == 0
    assert "Traceback" not in d.text()


def set_sensor(daemon: Daemon, millidegrees: int, method: str = "PUT") -> None:
    """Write the sensor's file, then (re)define it so the daemon reads it at once."""
    root: Path = daemon.root  # type: ignore[attr-defined]
    (root / "temp").write_text(f"{millidegrees}\n")
    document = {"path": str(root / "temp"), "scale": 0.001, "unit": "C"}
    path = "/api/sensors/room"
    if method == "POST":
        document["name"], path = "room", "/api/sensors"
    status, _, raw = daemon.get(path, JSON, method, json.dumps(document).encode())
    assert status in (200, 201), raw


def test_banner_and_bands(daemon, chromium):  # noqa: F811
    origin = f"http://127.0.0.1:{daemon.port}"

    async def go():
        async with launch(chromium) as browser:
            page = await browser.new_page()
            await page.viewport(1280, 900)
            await page.color_scheme("light")
            await page.navigate(origin + "/")
            quiet = await page.wait_for(alerts_when("s.polls >= 1 && !s.error"), describe=ALERTS)
            assert quiet["firing"] == [] and quiet["bannerHidden"] is True
            banner = await page.evaluate(BANNER)
            assert banner["hidden"] and banner["height"] == 0

            await asyncio.to_thread(set_sensor, daemon, 35000, "POST")
            stats = await page.wait_for(
                alerts_when("s.firing.length === 2 && s.periods.length === 2"),
                timeout=30,
                describe=ALERTS,
            )
            assert sorted(stats["firing"]) == ["hot", "warm"]
            assert stats["announced"] in (
                "Alert firing: hot, warm.",
                "Alert firing: warm, hot.",
            )
            assert all(p["to"] is None for p in stats["periods"])
            banner = await page.evaluate(BANNER)
            assert not banner["hidden"] and banner["height"] > 20
            assert banner["severity"] == "critical"
            assert banner["title"] == "2 alerts firing"
            assert sorted(banner["items"]) == [
                ["alert-item sev-critical", "hot", "critical"],
                ["alert-item sev-warning", "warm", "warning"],
            ]
            critical, warning = (
                banner["colours"] if banner["items"][0][1] == "hot" else reversed(banner["colours"])
            )
            assert critical != warning  # severity colours
            assert banner["border"] == "rgb(185, 28, 28)"  # --bad: a critical one fires

            # The firing period is shaded on the live charts and on the trends.
            drawn = await page.wait_for(
                alerts_when("s.drawn['plot-cpu'] >= 2 && s.drawn['trend-cpu'] >= 2"),
                timeout=30,
                describe=ALERTS,
            )
            assert drawn["drawn"]["plot-memory"] >= 2
            await next_frames(page)
            save("dashboard-alerts.png", await page.screenshot())

            # Resolved: the banner hides, the periods close (and stay shaded).
            await asyncio.to_thread(set_sensor, daemon, 20000)
            stats = await page.wait_for(
                alerts_when("s.firing.length === 0 && s.periods.every(p => p.to !== null)"),
                timeout=30,
                describe=ALERTS,
            )
            assert len(stats["periods"]) == 2
            assert stats["bannerHidden"] is True
            assert stats["announced"].startswith("Resolved: ")
            assert (await page.evaluate(BANNER))["hidden"]
            assert exceptions(page) == []
            assert page.errors == []

    run(go())
