"""Raspberry Pi power, added to the C{throttled} part: when each flag last changed, and voltages.

The throttle word itself is read and decoded by L{pistatsd.sysinfo} (it is
SPEC section 3); this module adds what section 11 asks for:

 - C{changed}: for each flag, the wall-clock time (epoch seconds) of the
   sample in which it was seen changing, C{None} until then.  A flag seen
   changing is one whose "now" bit differs from the previous sample's, or
   whose "since boot" bit rose while "now" stayed clear: an under-voltage
   that came and went between two samples is still dated (to the sample
   that noticed it).
 - C{core_volts} and C{input_volts}, from a hwmon voltage input whose label
   names the rail (C{in*_label} of C{VDD_CORE}, C{EXT5V}, ...).

What a real Pi exposes, honestly: on a Pi 4 and earlier the only power
hwmon chip is C{rpi_volt}, which has an under-voltage alarm
(C{in0_lcrit_alarm}) and no voltage reading; the core voltage is known only
to the firmware (C{vcgencmd measure_volts}, which pistatsd does not spawn).
A Pi 5's PMIC rails (C{VDD_CORE}, C{EXT5V}, ...) are read by
C{vcgencmd pmic_read_adc} through the firmware mailbox, not hwmon, on the
kernels Raspberry Pi OS ships today.  So both values are usually C{None};
they fill in on kernels whose hwmon drivers label those rails.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pistatsd.machine.readings import Troubles, read_int, read_text

FLAGS: tuple[str, ...] = ("under_voltage", "freq_capped", "throttled", "soft_temp_limit")
"""The four flags of the throttle word (as in L{pistatsd.sysinfo.THROTTLE_FLAGS})."""

CORE_LABELS = frozenset({"vdd_core", "vcore", "core"})
"""hwmon C{in*_label}s (lower case, C{_v} suffix dropped) that measure the SoC core rail."""

INPUT_LABELS = frozenset({"ext5v", "vin", "input"})
"""hwmon C{in*_label}s that measure the board's supply (the USB-C 5 V input on a Pi 5)."""

REDISCOVER_SECONDS = 60.0
"""How often hwmon is searched again for the voltage inputs."""

_VOLTAGE_INPUT = re.compile(r"in(\d+)_input$")


class FlagChanges:
    """Remembers the previous throttle flags and when each one last changed."""

    def __init__(self) -> None:
        self._now: Mapping[str, bool] | None = None
        self._since_boot: Mapping[str, bool] | None = None
        self.changed: dict[str, float | None] = dict.fromkeys(FLAGS)

    def observe(
        self, now: Mapping[str, bool], since_boot: Mapping[str, bool], timestamp: float
    ) -> dict[str, float | None]:
        """Take one reading (stamped C{timestamp}); the change times so far, as a new dict."""
        if self._now is not None and self._since_boot is not None:
            for flag in self.changed:
                flipped = now.get(flag) != self._now.get(flag)
                came_and_went = bool(since_boot.get(flag)) and not self._since_boot.get(flag)
                if flipped or came_and_went:
                    self.changed[flag] = timestamp
        self._now, self._since_boot = dict(now), dict(since_boot)
        return dict(self.changed)


class Voltages:
    """Core and input voltages from labelled hwmon inputs; C{None} where not exposed."""

    def __init__(self, sys_root: str | Path = "/sys") -> None:
        self._hwmon = Path(sys_root) / "class" / "hwmon"
        self._inputs: dict[str, Path] | None = None
        self._listed_at = 0.0
        self._troubles = Troubles("throttled")

    def read(self, when: float) -> dict[str, float | None]:
        """C{{"core_volts": v, "input_volts": v}} in volts (three decimals)."""
        inputs = self._discover(when)
        volts: dict[str, float | None] = {"core_volts": None, "input_volts": None}
        for key, path in inputs.items():
            millivolts = read_int(path)
            if millivolts is None:
                self._troubles.warn(
                    "volts", "cannot read {path}; {rail} is null", path=path, rail=key
                )
            else:
                volts[key] = round(millivolts / 1000.0, 3)
        if None not in (volts[key] for key in inputs):
            self._troubles.clear("volts")
        return volts

    def _discover(self, when: float) -> dict[str, Path]:
        if self._inputs is not None and when - self._listed_at < REDISCOVER_SECONDS:
            return self._inputs
        self._listed_at = when
        inputs: dict[str, Path] = {}
        for chip in sorted(self._hwmon.glob("hwmon*"), key=lambda p: (len(p.name), p.name)):
            for label_file in sorted(chip.glob("in*_label")):
                number = label_file.name[2:].split("_", 1)[0]
                label = (read_text(label_file) or "").lower().replace(" ", "_").removesuffix("_v")
                key = (
                    "core_volts"
                    if label in CORE_LABELS
                    else "input_volts"
                    if label in INPUT_LABELS
                    else None
                )
                path = chip / f"in{number}_input"
                if key is not None and key not in inputs and path.exists():
                    inputs[key] = path
        self._inputs = inputs
        return inputs


class PiPower:
    """Adds change times and voltages to a decoded throttle word; never raises."""

    def __init__(self, sys_root: str | Path = "/sys") -> None:
        """
        @param sys_root: where sysfs is mounted; tests point it at a fixture tree.
        """
        self._changes = FlagChanges()
        self._voltages = Voltages(sys_root)
        self._troubles = Troubles("throttled")

    def annotate(self, flags: Mapping[str, Any], when: float, timestamp: float) -> dict[str, Any]:
        """C{flags} (from L{pistatsd.sysinfo.parse_throttled}) plus C{changed} and the volts.

        @param when: the sample's clock time, to pace the search of hwmon.
        @param timestamp: the sample's wall-clock time, which dates changes.
        """
        result = dict(flags)
        try:
            result["changed"] = self._changes.observe(flags["now"], flags["since_boot"], timestamp)
            result.update(self._voltages.read(when))
        except Exception:
            self._troubles.failure("bug", "cannot add change times and volts to throttled")
            result.setdefault("changed", dict.fromkeys(FLAGS))
            result.setdefault("core_volts", None)
            result.setdefault("input_volts", None)
        return result
