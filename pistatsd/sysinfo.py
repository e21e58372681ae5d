"""Reading the machine: one cheap, defensive snapshot of its vital signs.

Nothing here touches time or the reactor.  The sampler (L{pistatsd.sampler})
decides I{when} to look and passes the time in (the clock time, for CPU
windows, and the wall-clock time, for the snapshot's C{timestamp}); this
module only knows I{how} to look.  Every source (psutil, sysfs) is injectable so tests can give
exact numbers, and every part of the snapshot is collected on its own so one
broken source (a disk that vanished, a sensor driver that throws) costs that
part only, never the whole snapshot.
"""

from __future__ import annotations

import socket
import string
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Protocol, TypeVar, TypeVarTuple

import psutil as _psutil
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from pistatsd.episodes import Episodes
from pistatsd.jsontypes import JSONObject
from pistatsd.machine.cpufreq import CpuFrequency
from pistatsd.machine.net import NetCollector
from pistatsd.machine.power import PiPower

_log = Logger()

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

Snapshot = JSONObject
"""The JSON-ready dict described in SPEC section 3."""

PREFERRED_SENSORS: tuple[str, ...] = ("cpu_thermal", "coretemp", "k10temp", "soc_thermal")
"""Sensor names that measure the CPU die, most useful first.

A Raspberry Pi calls it C{cpu_thermal}, Intel C{coretemp}, AMD C{k10temp};
anything else (ACPI zones, NVMe, wifi chips) says less about load.
"""

THROTTLED_PATH = "devices/platform/soc/soc:firmware/get_throttled"
"""Where the Raspberry Pi firmware driver exposes its throttle word, below the sysfs root."""

THROTTLE_FLAGS: tuple[str, ...] = ("under_voltage", "freq_capped", "throttled", "soft_temp_limit")
"""Names of bits 0..3 (happening now); bits 16..19 are the same flags since boot."""

_SINCE_BOOT_SHIFT = 16
_HEX_DIGITS = frozenset(string.hexdigits.lower())

# Fields that Linux already counts inside "user"/"nice": psutil (and htop)
# subtract them from the total so they are not counted twice.
_GUEST_FIELDS = ("guest", "guest_nice")
# Fields during which the CPU did nothing useful.
_IDLE_FIELDS = ("idle", "iowait")


class CpuTimes(Protocol):
    """What C{psutil.cpu_times()} returns: a named tuple of seconds per CPU state,
    whose fields differ between kernels (hence read by name)."""

    _fields: ClassVar[tuple[str, ...]]


class CpuReading(NamedTuple):
    """One look at the CPU counters, and when it was taken.

    CPU percent only exists I{between} two readings, so a reading keeps the
    clock time at which it was taken: the window between two readings is the
    C{interval} a snapshot reports.  That clock is the (monotonic) reactor's,
    so a stepped wall clock never makes a window negative or a day long; the
    wall-clock time of the reading, for timestamps, is kept beside it.  The
    load average is read at the same moment so that a CPU section can be
    built from two readings alone.
    """

    when: float
    total: CpuTimes
    per_cpu: Sequence[CpuTimes]
    load: list[float] | None
    timestamp: float | None = None
    """Wall-clock (epoch) time of the reading; C{None} means the same as C{when}."""
    freq_mhz: float | None = None
    """The CPU's current clock frequency at the reading, where cpufreq tells it."""


def cpu_percent_between(before: CpuTimes, after: CpuTimes) -> float:
    """Busy percentage of the CPU between two C{psutil.cpu_times()} tuples.

    This is psutil's own arithmetic, done here because C{psutil.cpu_percent}
    keeps hidden global state (or sleeps): busy = total - idle - iowait over
    the per-field deltas, where negative deltas (counters that went backwards,
    which happens) count as zero and guest time is not counted twice.  A
    window with no ticks at all is 0.0.  The result is clamped to 0..100 and
    rounded to one decimal, like psutil.
    """
    deltas = {
        name: max(0.0, getattr(after, name) - getattr(before, name)) for name in after._fields
    }
    total = sum(deltas.values()) - sum(deltas.get(name, 0.0) for name in _GUEST_FIELDS)
    if total <= 0:
        return 0.0
    busy = total - sum(deltas.get(name, 0.0) for name in _IDLE_FIELDS)
    return round(min(100.0, max(0.0, busy / total * 100.0)), 1)


def cpu_section(before: CpuReading | None, after: CpuReading) -> JSONObject:
    """The snapshot's C{cpu} part for the window from C{before} to C{after}.

    With no C{before} (the very first reading) there is no window yet, so the
    percentages and the interval are C{None} ("warming up") rather than a
    misleading 0.0.
    """
    count = len(after.per_cpu)
    if before is None:
        percent: float | None = None
        per_cpu: list[float | None] = [None] * count
        interval: float | None = None
    else:
        percent = cpu_percent_between(before.total, after.total)
        per_cpu = _per_cpu_percent(before.per_cpu, after.per_cpu)
        interval = round(after.when - before.when, 3)
    return {
        "percent": percent,
        "per_cpu": per_cpu,
        "count": count,
        "load": after.load,
        "interval": interval,
        "freq_mhz": after.freq_mhz,
    }


def _per_cpu_percent(before: Sequence[CpuTimes], after: Sequence[CpuTimes]) -> list[float | None]:
    """Per-CPU percentages; C{None} for all when a CPU came or went (hotplug)."""
    if len(before) != len(after):
        return [None] * len(after)
    return [cpu_percent_between(b, a) for b, a in zip(before, after, strict=True)]


def parse_throttled(text: str) -> Snapshot:
    """Decode the Raspberry Pi firmware's throttle word.

    The kernel writes it as bare hex (C{"%x"}, e.g. C{"50005"}); a C{0x}
    prefix and C{vcgencmd}'s C{"throttled=0x50005"} are accepted too.  The
    C{raw} field is always normalised to C{0x...} so clients see one format.

    @raise ValueError: when C{text} is not such a number.
    """
    digits = text.strip().lower().removeprefix("throttled=").removeprefix("0x")
    if not digits or not set(digits) <= _HEX_DIGITS:
        raise ValueError(f"not a throttle word: {text!r}")
    value = int(digits, 16)
    return {
        "raw": hex(value),
        "now": _flags(value),
        "since_boot": _flags(value >> _SINCE_BOOT_SHIFT),
    }


def _flags(value: int) -> dict[str, bool]:
    """The four throttle flags held in the low four bits of C{value}."""
    return {name: bool(value >> bit & 1) for bit, name in enumerate(THROTTLE_FLAGS)}


def pick_celsius(sensors: Mapping[str, float]) -> float | None:
    """The one temperature to headline: a CPU sensor if any, else the first.

    Names are compared with C{-} read as C{_} because sysfs thermal zones say
    C{cpu-thermal} where psutil's hwmon names say C{cpu_thermal}.
    """
    normalised = {name.replace("-", "_"): value for name, value in sensors.items()}
    for name in PREFERRED_SENSORS:
        if name in normalised:
            return normalised[name]
    return next(iter(sensors.values()), None)


class SystemCollector:
    """Builds snapshots of one machine from psutil and sysfs.

    It remembers the previous CPU reading (CPU percent is a difference) and
    the boot time (it never changes, so it is read once).  Which parts are
    currently failing is remembered too, so that a broken source is logged
    once when it breaks, not every second.
    """

    def __init__(
        self,
        psutil: Any = _psutil,
        sys_root: str = "/sys",
        hostname: str | None = None,
        disk_path: str = "/",
        proc_root: str = "/proc",
        cpu_freq: CpuFrequency | None = None,
        net: NetCollector | None = None,
        power: PiPower | None = None,
    ) -> None:
        """
        @param psutil: the psutil module, or a fake with the functions used.
        @param sys_root: where sysfs is mounted; tests point it at a fake tree.
        @param hostname: reported name; defaults to this machine's.
        @param disk_path: the mount point whose usage C{disk} reports.
        @param proc_root: where procfs is mounted (for C{net}); tests point it at a fake tree.
        @param cpu_freq: reads C{cpu.freq_mhz}; one on C{sys_root} by default.
        @param net: builds C{net}; one on C{sys_root} and C{proc_root} by default.
        @param power: adds change times and volts to C{throttled}; one on C{sys_root} by default.
        """
        self._ps = psutil
        self._sys_root = Path(sys_root)
        self._cpu_freq = cpu_freq if cpu_freq is not None else CpuFrequency(sys_root)
        self._network = net if net is not None else NetCollector(sys_root, proc_root)
        self._power = power if power is not None else PiPower(sys_root)
        self.hostname = hostname if hostname is not None else socket.gethostname()
        self.disk_path = disk_path
        self._previous_cpu: CpuReading | None = None
        self._boot_time: float | None = None
        self._failing: set[str] = set()
        self._parts_failing = Episodes(
            _log,
            "Cannot collect {part}; it is null until it works again",
            "Collecting {part} works again",
            level=LogLevel.critical,
        )

    def collect(self, when: float, timestamp: float | None = None) -> Snapshot:
        """A full snapshot taken at clock time C{when}, stamped C{timestamp}.

        Each call also advances the CPU window: the C{cpu} part covers the
        clock time since the previous C{collect}.

        @param timestamp: the wall-clock time (epoch seconds) of the
            snapshot; C{when} when not given.
        """
        stamp = when if timestamp is None else timestamp
        snapshot: Snapshot = {
            "timestamp": stamp,
            "hostname": self.hostname,
            "cpu": self._part("cpu", self._cpu_since_previous, when, stamp),
            "temperature": self._part("temperature", self.temperature),
            "memory": self._part("memory", self._memory),
            "swap": self._part("swap", self._swap),
            "uptime": self._part("uptime", self._uptime, stamp),
            "disk": self._part("disk", self._disk),
            "net": self._part("net", self._network.net, when),
        }
        throttled = self._part("throttled", self.throttled, when, stamp)
        if throttled is not None:
            snapshot["throttled"] = throttled
        return snapshot

    def read_cpu(self, when: float, timestamp: float | None = None) -> CpuReading:
        """Read the CPU counters (total and per CPU) and load, at clock time C{when}.

        Cheap (one look at C{/proc/stat} and C{/proc/loadavg} on Linux) and
        side-effect free, so the sampler can take extra readings for
        on-demand measurements without disturbing the background window.

        @param timestamp: the wall-clock time of the reading; C{when} when not given.
        """
        total = self._ps.cpu_times()
        per_cpu = self._ps.cpu_times(percpu=True)
        return CpuReading(
            when=when,
            total=total,
            per_cpu=per_cpu,
            load=self._load(),
            timestamp=when if timestamp is None else timestamp,
            freq_mhz=self._cpu_freq.mhz(when),
        )

    def temperature(self) -> Snapshot:
        """C{{"celsius": float | None, "sensors": {name: float}}}.

        psutil first; when it has nothing (no function on this platform, an
        error, no sensors), the sysfs thermal zones.  No sensors at all is a
        normal answer (C{celsius} null), not an error.
        """
        sensors = self._psutil_temperatures() or self._sysfs_temperatures()
        return {"celsius": pick_celsius(sensors), "sensors": sensors}

    def throttled(self, when: float = 0.0, timestamp: float | None = None) -> Snapshot | None:
        """The Raspberry Pi throttle flags, or C{None} on other machines.

        A missing file is the normal case off a Pi and is silent; a file that
        exists but cannot be read or parsed is logged once.  The flags come
        with when each last changed and the core and input voltages
        (L{PiPower}), dated by C{timestamp} (C{when} if not given).
        """
        path = self._sys_root / THROTTLED_PATH
        try:
            text = path.read_text(encoding="ascii", errors="replace")
        except FileNotFoundError:
            return None
        except OSError as e:
            self._warn_once("throttled-read", "Cannot read {path}: {error}", path=path, error=e)
            return None
        try:
            flags = parse_throttled(text)
        except ValueError:
            self._warn_once("throttled-parse", "Unexpected {path}: {text!r}", path=path, text=text)
            return None
        self._clear("throttled-read")
        self._clear("throttled-parse")
        return self._power.annotate(flags, when, when if timestamp is None else timestamp)

    def _cpu_since_previous(self, when: float, timestamp: float) -> Snapshot:
        """The C{cpu} part over the window since the previous collect."""
        reading = self.read_cpu(when, timestamp)
        section = cpu_section(self._previous_cpu, reading)
        self._previous_cpu = reading
        return section

    def _load(self) -> list[float] | None:
        """1, 5 and 15 minute load averages; C{None} where the OS has none."""
        try:
            load = self._ps.getloadavg()
        except (AttributeError, OSError):
            return None
        return [round(value, 2) for value in load]

    def _memory(self) -> Snapshot:
        """RAM usage: what is left for programs is C{available}, not C{free}."""
        vm = self._ps.virtual_memory()
        return {
            "total": vm.total,
            "available": vm.available,
            "used": vm.used,
            "percent": vm.percent,
        }

    def _swap(self) -> Snapshot:
        """Swap usage: on an SD card, swapping is worth knowing about."""
        sm = self._ps.swap_memory()
        return {"total": sm.total, "used": sm.used, "percent": sm.percent}

    def _uptime(self, when: float) -> Snapshot:
        """Time since boot, from a boot time read once and cached."""
        if self._boot_time is None:
            self._boot_time = float(self._ps.boot_time())
        return {"seconds": round(when - self._boot_time, 1), "boot_time": self._boot_time}

    def _disk(self) -> Snapshot:
        """Usage of the file system holding C{disk_path}: a full SD card kills a Pi."""
        du = self._ps.disk_usage(self.disk_path)
        return {
            "path": self.disk_path,
            "total": du.total,
            "used": du.used,
            "free": du.free,
            "percent": du.percent,
        }

    def _psutil_temperatures(self) -> dict[str, float]:
        """Each psutil sensor's first reading, or C{{}} when psutil has none."""
        read = getattr(self._ps, "sensors_temperatures", None)
        if read is None:
            return {}
        try:
            found = read()
        except (AttributeError, OSError) as e:
            self._debug_once("psutil-sensors", "psutil has no temperatures: {error}", error=e)
            return {}
        except Exception as e:  # an unexpected psutil bug: sysfs may still answer
            self._warn_once("psutil-sensors", "psutil temperatures failed: {error!r}", error=e)
            return {}
        self._clear("psutil-sensors")
        return {
            name: round(entries[0].current, 1)
            for name, entries in (found or {}).items()
            if entries and entries[0].current is not None
        }

    def _sysfs_temperatures(self) -> dict[str, float]:
        """C{<sys_root>/class/thermal/thermal_zone*}: millidegrees, named by C{type}."""
        sensors: dict[str, float] = {}
        for zone in _thermal_zones(self._sys_root / "class" / "thermal"):
            reading = _read_zone(zone)
            if reading is not None:
                sensors.setdefault(*reading)
        return sensors

    def _part(self, name: str, read: Callable[[*_Ts], _T], *args: *_Ts) -> _T | None:
        """C{read(*args)}, or C{None} (logged once per episode) if it fails.

        This is what keeps one broken source from breaking the snapshot.
        """
        try:
            value = read(*args)
        except Exception:
            self._parts_failing.happened(name, Failure(), part=name)
            return None
        self._parts_failing.ended(name, part=name)
        return value

    def _warn_once(self, key: str, message: str, **fields: object) -> None:
        """Log a warning the first time C{key} goes wrong, then stay quiet."""
        if key not in self._failing:
            self._failing.add(key)
            _log.warn(message, **fields)

    def _debug_once(self, key: str, message: str, **fields: object) -> None:
        """Like L{_warn_once} for the expected, at debug level."""
        if key not in self._failing:
            self._failing.add(key)
            _log.debug(message, **fields)

    def _clear(self, key: str) -> None:
        """Forget that C{key} was failing, so its next failure is logged again."""
        self._failing.discard(key)


def _thermal_zones(thermal: Path) -> list[Path]:
    """Thermal zone directories in numeric order (zone10 after zone2)."""
    zones = thermal.glob("thermal_zone*")
    return sorted(zones, key=lambda p: (len(p.name), p.name))


def _read_zone(zone: Path) -> tuple[str, float] | None:
    """C{(name, celsius)} for one thermal zone, or C{None} if it has no reading."""
    try:
        millidegrees = int((zone / "temp").read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        name = (zone / "type").read_text().strip() or zone.name
    except OSError:
        name = zone.name
    return name, round(millidegrees / 1000.0, 1)
