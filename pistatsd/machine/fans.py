"""The C{fans} part: C{{"<chip>/<label>": rpm}} from the kernel's hwmon fan inputs.

Each C{/sys/class/hwmon/hwmon*/} directory is one chip, named by its C{name}
file (C{pwmfan} or C{cooling_fan} for a Raspberry Pi 5's fan header,
C{nct6775}, C{thinkpad}, ...); each C{fan<N>_input} is a speed in RPM, labelled
by C{fan<N>_label} where the driver gives one, else C{fan<N>}.  Hwmon numbers
change across reboots, so keys use the chip's name, never C{hwmonN}; two
chips of the same name are told apart by adding it (C{pwmfan@hwmon3/fan1}).

Fans on a Pi 4 (the official case fan, a fan shim) are switched by a GPIO
and have no tachometer: they expose no C{fan*_input}, so C{fans} is C{{}}.

Reading a fan input asks the driver, which may read a chip over I2C; hwmon
drivers cache their readings (typically for a second or more), so this is a
sub-millisecond read, done once per sample.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pistatsd.machine.readings import Troubles, read_int, read_text

REDISCOVER_SECONDS = 60.0
"""How often the hwmon chips are listed again (a driver loaded late, a USB controller)."""

_FAN_INPUT = re.compile(r"fan(\d+)_input$")


class FanCollector:
    """Builds the C{fans} part from hwmon; never raises.

    The fan files are found once and kept (globbing sysfs every second would
    cost more than reading them), and looked for again every
    L{REDISCOVER_SECONDS}; a fan that cannot be read is left out meanwhile.
    """

    def __init__(self, sys_root: str | Path = "/sys") -> None:
        """
        @param sys_root: where sysfs is mounted; tests point it at a fixture tree.
        """
        self._hwmon = Path(sys_root) / "class" / "hwmon"
        self._fans: dict[str, Path] | None = None
        self._listed_at = 0.0
        self._troubles = Troubles("fans")

    def section(self, when: float) -> dict[str, Any]:
        """C{{"fans": {key: rpm}}} at clock time C{when}; C{{}} where no fan reports a speed."""
        try:
            return {"fans": self._read(when)}
        except Exception:
            self._troubles.failure("bug", "cannot build the fans part; it is empty")
            return {"fans": {}}

    def _read(self, when: float) -> dict[str, int]:
        fans = self._discover(when)
        speeds: dict[str, int] = {}
        for key, path in fans.items():
            rpm = read_int(path)
            if rpm is None or rpm < 0:
                self._troubles.warn("read", "cannot read {path}; leaving that fan out", path=path)
                continue
            speeds[key] = rpm
        if len(speeds) == len(fans):
            self._troubles.clear("read")
        return speeds

    def _discover(self, when: float) -> dict[str, Path]:
        if self._fans is not None and when - self._listed_at < REDISCOVER_SECONDS:
            return self._fans
        self._listed_at = when
        fans: dict[str, Path] = {}
        for chip in sorted(self._hwmon.glob("hwmon*"), key=lambda p: (len(p.name), p.name)):
            name = read_text(chip / "name") or chip.name
            for path in sorted(chip.glob("fan*_input")):
                match = _FAN_INPUT.match(path.name)
                if match is None:
                    continue
                number = match.group(1)
                label = read_text(chip / f"fan{number}_label") or f"fan{number}"
                key = f"{name}/{label}"
                if key in fans:
                    key = f"{name}@{chip.name}/{label}"
                fans[key] = path
        self._fans = fans
        return fans
