"""C{pistatsd-client stats --summary}: the whole machine on one terminal screen.

At most L{MAX_LINES} lines of at most L{WIDTH} columns, so it fits the
smallest terminal (and a phone's SSH app) without scrolling: the fixed
lines first (host, CPU, memory, network), then the parts whose length
depends on the machine (disks, file systems, processes, power) share what
is left, each cut short with a C{+N more} line when it does not fit.

Every value may be absent or null (a part the daemon does not collect, the
first sample's rates, a file system that timed out): it shows as C{-}, or
its line is left out.  Names come from the machine and are printed in a
terminal, so control characters in them (a process called
C{"\\x1b[2J"}) are shown escaped, never sent to the terminal.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from pistatsd.jsonread import mapping as _mapping
from pistatsd.jsonread import number as _number
from pistatsd.jsonread import sequence as _sequence

WIDTH = 80
MAX_LINES = 24
#: File systems at or above this fill are marked (the dashboard's warning colour).
FULL_PERCENT = 90.0
TOP = 3
BAR = 10

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_FLAGS = {
    "under_voltage": "under-voltage",
    "freq_capped": "frequency capped",
    "throttled": "throttled",
    "soft_temp_limit": "soft temperature limit",
}


def shown(name: object, limit: int | None = None) -> str:
    """A name from the machine, safe for a terminal and at most C{limit} columns.

    Non-printable characters (escape sequences, newlines, lone surrogates)
    become Python escapes; a name too long loses its middle, the start and
    the end being what tell mount points and devices apart.
    """
    text = name if isinstance(name, str) else "-" if name is None else str(name)
    text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
    if limit is not None and len(text) > limit:
        keep = limit - 1
        text = text[: (keep + 1) // 2] + "…" + text[len(text) - keep // 2 :]
    return text


def size(value: object) -> str:
    """Bytes in binary units: C{512 B}, C{1.5 KiB}, C{29.0 GiB}, C{-} when unknown."""
    number = _number(value)
    if number is None:
        return "-"
    unit = 0
    while abs(number) >= 1024 and unit < len(_UNITS) - 1:
        number /= 1024
        unit += 1
    if unit == 0:
        return f"{number:.0f} B"
    return f"{number:.0f} {_UNITS[unit]}" if abs(number) >= 100 else f"{number:.1f} {_UNITS[unit]}"


def rate(value: object) -> str:
    """Bytes per second: C{1.5 MiB/s}, C{-} when unknown (the first sample)."""
    text = size(value)
    return text if text == "-" else text + "/s"


def percent(value: object) -> str:
    number = _number(value)
    return "-" if number is None else f"{number:.1f}%"


def duration(seconds: object) -> str:
    number = _number(seconds)
    if number is None or number < 0:
        return "-"
    days, rest = divmod(int(number), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock


def bar(fill: object) -> str:
    """C{[#######---]}: a fill gauge that reads at a glance in any terminal."""
    number = _number(fill)
    if number is None:
        return "[" + "?" * BAR + "]"
    full = round(max(0.0, min(100.0, number)) / 100 * BAR)
    return "[" + "#" * full + "-" * (BAR - full) + "]"


def _fit(line: str) -> str:
    line = line.rstrip()
    return line if len(line) <= WIDTH else line[: WIDTH - 1] + "…"


def summary_lines(snapshot: Mapping[str, Any]) -> list[str]:
    """The screen for one C{/stats} snapshot: at most L{MAX_LINES} lines of L{WIDTH}."""
    fixed = [_header(snapshot), _cpu(snapshot), _memory(snapshot), *_network(snapshot)]
    fixed += _fans(_mapping(snapshot.get("fans")))
    power = _power(snapshot.get("throttled"))
    processes = _processes(_mapping(snapshot.get("processes")))
    left = MAX_LINES - len(fixed) - len(power) - len(processes)
    devices = _disk_io(_mapping(snapshot.get("disk_io")), max(0, min(3, left // 3)))
    left -= len(devices)
    filesystems = _filesystems(snapshot.get("filesystems"), max(0, left))
    lines = [*fixed, *devices, *filesystems, *processes, *power]
    return [_fit(line) for line in lines[:MAX_LINES]]


def format_screen(snapshot: Mapping[str, Any]) -> str:
    """L{summary_lines} as one block of text."""
    return "\n".join(summary_lines(snapshot))


def _header(snapshot: Mapping[str, Any]) -> str:
    host = shown(snapshot.get("hostname") or "-", 40)
    stamp = _number(snapshot.get("timestamp"))
    clock = "--:--:--" if stamp is None else time.strftime("%H:%M:%S", time.localtime(stamp))
    uptime = duration(_mapping(snapshot.get("uptime")).get("seconds"))
    return f"{host}  up {uptime}  at {clock}"


def _cpu(snapshot: Mapping[str, Any]) -> str:
    cpu = _mapping(snapshot.get("cpu"))
    parts = [f"cpu   {percent(cpu.get('percent')):>6}"]
    count = _number(cpu.get("count"))
    if count is not None:
        parts.append(f"{count:.0f} {'core' if count == 1 else 'cores'}")
    mhz = _number(cpu.get("freq_mhz"))
    if mhz is not None:
        parts.append(f"{mhz:.0f} MHz")
    load = [_number(v) for v in _sequence(cpu.get("load"))]
    parts.append("load " + (" ".join("-" if v is None else f"{v:.2f}" for v in load) or "-"))
    celsius = _number(_mapping(snapshot.get("temperature")).get("celsius"))
    parts.append("temp " + ("-" if celsius is None else f"{celsius:.1f}°C"))
    return "  ".join(parts)


def _memory(snapshot: Mapping[str, Any]) -> str:
    memory, swap = _mapping(snapshot.get("memory")), _mapping(snapshot.get("swap"))
    line = f"mem   {percent(memory.get('percent')):>6}"
    if _number(memory.get("total")):
        line += f"  {size(memory.get('used'))} of {size(memory.get('total'))}"
    if _number(swap.get("total")):
        line += f"  swap {percent(swap.get('percent'))}"
    return line


def _network(snapshot: Mapping[str, Any]) -> list[str]:
    net = snapshot.get("net")
    if not isinstance(net, Mapping):
        return []
    line = (
        f"net   rx {rate(net.get('rx_bytes_per_s')):>10}  tx {rate(net.get('tx_bytes_per_s')):>10}"
    )
    notes = []
    for name, interface in sorted(_mapping(net.get("interfaces")).items()):
        if not isinstance(interface, Mapping) or interface.get("virtual") is True:
            continue
        note = shown(name, 12) + (" up" if interface.get("up") is True else " down")
        signal = _number(_mapping(interface.get("wifi")).get("signal_dbm"))
        if signal is not None:
            note += f" {signal:.0f} dBm"
        notes.append(note)
    if notes:
        line += "  " + ", ".join(notes)
    return [line]


def _fans(fans: Mapping[str, Any]) -> list[str]:
    readings = [
        f"{shown(name, 24)} {rpm:.0f} rpm"
        for name, rpm in sorted((k, _number(v)) for k, v in fans.items())
        if rpm is not None
    ]
    return ["fans  " + ", ".join(readings)] if readings else []


def _disk_io(devices: Mapping[str, Any], room: int) -> list[str]:
    rows = [(name, d) for name, d in sorted(devices.items()) if isinstance(d, Mapping)]
    if not rows or room <= 0:
        return []
    lines = []
    shown_rows = rows if len(rows) <= room else rows[: room - 1]
    for name, device in shown_rows:
        line = (
            f"io    {shown(name, 10):<10} r {rate(device.get('read_bytes_per_s')):>10}"
            f"  w {rate(device.get('write_bytes_per_s')):>10}"
            f"  busy {percent(device.get('busy_percent')):>6}"
        )
        written = _number(device.get("written_bytes"))
        if written is not None:
            line += f"  wrote {size(written)}"
        lines.append(line)
    if len(shown_rows) < len(rows):
        lines.append(f"io    +{len(rows) - len(shown_rows)} more disks")
    return lines


def _filesystems(filesystems: object, room: int) -> list[str]:
    entries = [e for e in _sequence(filesystems) if isinstance(e, Mapping)]
    if not entries or room < 2:
        return []
    lines = ["filesystems"]
    fitting = entries if len(entries) <= room - 1 else entries[: room - 2]
    for entry in fitting:
        mount = shown(entry.get("mount"), 24)
        if entry.get("error"):
            lines.append(f"  {mount:<24} {shown(entry.get('error'), 40)}")
            continue
        fill = _number(entry.get("percent"))
        line = (
            f"  {mount:<24} {bar(fill)} {percent(fill):>6}"
            f"  {size(entry.get('free'))} free of {size(entry.get('total'))}"
        )
        if entry.get("read_only") is True:
            line += "  ro"
        if fill is not None and fill >= FULL_PERCENT:
            line += "  FULL"
        lines.append(line)
    if len(fitting) < len(entries):
        lines.append(f"  +{len(entries) - len(fitting)} more")
    return lines


def _processes(processes: Mapping[str, Any]) -> list[str]:
    if not processes:
        return []
    total, running, zombie = (_number(processes.get(key)) for key in ("total", "running", "zombie"))
    counts = "-" if total is None else f"{total:.0f}"
    details = []
    if running is not None:
        details.append(f"{running:.0f} running")
    if zombie is not None:
        details.append(f"{zombie:.0f} {'zombie' if zombie == 1 else 'zombies'}")
    line = f"procs {counts}" + (f" ({', '.join(details)})" if details else "")
    top = [e for e in _sequence(processes.get("top_cpu")) if isinstance(e, Mapping)][:TOP]
    lines = [line + ("; top CPU:" if top else "")]
    for entry in top:
        pid = _number(entry.get("pid"))
        lines.append(
            f"  {percent(entry.get('cpu_percent')):>6}  {size(entry.get('rss')):>9}  "
            f"{shown(entry.get('name'), 40)}" + ("" if pid is None else f" ({pid:.0f})")
        )
    return lines


def _power(throttled: object) -> list[str]:
    """Two lines on a Raspberry Pi (what is wrong now, since boot, the volts); none elsewhere."""
    if not isinstance(throttled, Mapping):
        return []
    now = _mapping(throttled.get("now"))
    boot = _mapping(throttled.get("since_boot"))
    active = [label for flag, label in _FLAGS.items() if now.get(flag) is True]
    past = [label for flag, label in _FLAGS.items() if boot.get(flag) is True]
    first = "power " + ("NOW: " + ", ".join(active).upper() if active else "ok now")
    volts = [
        f"{name} {value:.2f} V"
        for name, value in (
            ("core", _number(throttled.get("core_volts"))),
            ("input", _number(throttled.get("input_volts"))),
        )
        if value is not None
    ]
    if volts:
        first += "  " + "  ".join(volts)
    second = "      since boot: " + (", ".join(past) if past else "nothing")
    return [first, second]
