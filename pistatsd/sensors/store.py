"""C{<state-dir>/sensors.json}: sensor definitions that survive restarts and power cuts.

A Raspberry Pi loses power without warning, so a save is atomic: a temporary
file in the same directory is written, flushed and fsynced, renamed over the
old one, and the directory is fsynced so the rename itself is durable.  A
reader sees the old file or the new one, never half of either.

A file that cannot be understood at start-up is never overwritten: it is
moved aside (C{sensors.json.corrupt-<UTC time>}) for a person to look at,
and the daemon starts with no sensors.  A file that is sound but holds some
invalid definitions (hand-edited, or written by a version that allowed what
this one refuses) loses nothing either: the invalid ones are written to
C{sensors.json.rejected-<UTC time>}, each with the reason, the valid ones
are kept and saved back, and one log line says so.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from collections.abc import Callable, Sequence

from attrs import frozen
from twisted.logger import Logger

from pistatsd.files import write_atomically
from pistatsd.jsontypes import JSONValue
from pistatsd.sensors.model import FileSensor, InvalidSensor, parse_file_sensor

_log = Logger()

FILENAME = "sensors.json"
FORMAT_VERSION = 1
#: 256 sensors with 4 KiB paths fit comfortably; anything bigger is not ours.
MAX_FILE_SIZE = 4 * 1024 * 1024
#: Invalid definitions whose problem is named in the log line (the file has them all).
LOGGED_PROBLEMS = 5
#: The temporary files of L{pistatsd.files.write_atomically} for this file.
_TEMP_PREFIX = "." + FILENAME + "."
_TEMP_SUFFIX = ".tmp"


class CorruptFile(ValueError):
    """The sensors file exists but does not hold a valid list of definitions."""


class SaveRefused(OSError):
    """Saving would overwrite a file that could not be read at start-up."""


@frozen
class Rejected:
    """A definition of the file that cannot be loaded, kept for a person to fix."""

    index: int
    entry: object
    problem: str


@frozen
class Decoded:
    """What the file holds: the valid definitions, and the invalid ones set apart."""

    sensors: list[FileSensor]
    rejected: list[Rejected]


def encode(sensors: Sequence[FileSensor]) -> bytes:
    """The file's contents: versioned, indented for people, sorted for stable diffs."""
    document = {
        "version": FORMAT_VERSION,
        "sensors": [s.definition() for s in sorted(sensors, key=lambda s: s.name)],
    }
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def decode(data: bytes) -> Decoded:
    """Definitions from the file's contents; L{CorruptFile} if it is not a sensors document.

    One invalid definition does not spoil the others: it is returned apart,
    with its problem (a second definition of a name is one too).  Only the
    structure is checked here, not confinement: if the allowed roots were
    narrowed since, the sensor is kept and its reads report the problem,
    rather than the definition being lost.
    """
    try:
        document: JSONValue = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CorruptFile(f"not valid JSON ({e})") from None
    if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
        raise CorruptFile(f"not a version {FORMAT_VERSION} sensors document")
    entries = document.get("sensors")
    if not isinstance(entries, list):
        raise CorruptFile('no "sensors" list')
    sensors: list[FileSensor] = []
    rejected: list[Rejected] = []
    names: set[str] = set()
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            rejected.append(Rejected(index, entry, "not an object"))
            continue
        try:
            sensor = parse_file_sensor(entry)
        except InvalidSensor as e:
            rejected.append(Rejected(index, entry, str(e)))
            continue
        if sensor.name in names:
            rejected.append(Rejected(index, entry, f"a second sensor named {sensor.name!r}"))
            continue
        names.add(sensor.name)
        sensors.append(sensor)
    return Decoded(sensors, rejected)


def encode_rejected(rejected: Sequence[Rejected]) -> bytes:
    """The set-aside file: each invalid definition as it was, with why it was refused."""
    document = {
        "version": FORMAT_VERSION,
        "rejected": [
            {"index": r.index, "problem": r.problem, "definition": r.entry} for r in rejected
        ],
    }
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


class SensorStore:
    """Loads and atomically saves the definitions of HTTP-defined sensors.

    L{save} blocks (it fsyncs): the service runs it in a worker thread.
    """

    def __init__(self, directory: str, wall: Callable[[], float] = time.time) -> None:
        """
        @param wall: the wall clock, for the date in a corrupt file's new name.
        """
        self.directory = directory
        self.path = os.path.join(directory, FILENAME)
        self._wall = wall
        self._refuse_saves: str | None = None

    def load(self) -> list[FileSensor]:
        """The saved definitions; none when there is no file, or it is corrupt.

        Blocking, but run once at start-up, before any client is served.
        """
        self._remove_leftovers()
        try:
            with open(self.path, "rb") as f:
                data = f.read(MAX_FILE_SIZE + 1)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as e:
            # Unreadable (permissions?): starting empty is fine, overwriting is not.
            self._refuse_saves = f"{self.path} could not be read at start-up ({e.strerror})"
            _log.error(
                "Cannot read sensors file {path}: {error}; starting with no sensors, "
                "and changes will not be saved until it is fixed",
                path=self.path,
                error=e.strerror,
            )
            return []
        try:
            if len(data) > MAX_FILE_SIZE:
                raise CorruptFile(f"larger than {MAX_FILE_SIZE} bytes")
            decoded = decode(data)
        except CorruptFile as e:
            self._move_aside(str(e))
            return []
        if decoded.rejected:
            self._set_aside(decoded)
        else:
            _log.info(
                "Loaded {count} sensor(s) from {path}", count=len(decoded.sensors), path=self.path
            )
        return decoded.sensors

    def _aside_path(self, kind: str) -> str:
        """A new file name beside the sensors file: C{sensors.json.<kind>-<UTC time>[-n]}."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._wall()))
        aside = f"{self.path}.{kind}-{stamp}"
        n = 0
        while os.path.lexists(aside):
            n += 1
            aside = f"{self.path}.{kind}-{stamp}-{n}"
        return aside

    def _set_aside(self, decoded: Decoded) -> None:
        """Write the invalid definitions to their own file, then save the valid ones back.

        Until the invalid ones are safely elsewhere the sensors file is the
        only copy of them, so if they cannot be written it is not overwritten.
        """
        problems = "; ".join(f"#{r.index}: {r.problem}" for r in decoded.rejected[:LOGGED_PROBLEMS])
        if len(decoded.rejected) > LOGGED_PROBLEMS:
            problems += f"; and {len(decoded.rejected) - LOGGED_PROBLEMS} more"
        aside = self._aside_path("rejected")
        try:
            self._write(aside, encode_rejected(decoded.rejected))
        except OSError as e:
            self._refuse_saves = (
                f"{self.path} holds invalid definitions that could not be set aside"
            )
            _log.error(
                "Sensors file {path}: {rejected} invalid definition(s) ({problems}) could not "
                "be set aside ({error}); loaded the {count} valid one(s), and changes will "
                "not be saved until it is fixed",
                path=self.path,
                rejected=len(decoded.rejected),
                problems=problems,
                error=e.strerror or str(e),
                count=len(decoded.sensors),
            )
            return
        saved = ""
        try:
            self.save(decoded.sensors)
        except OSError as e:
            saved = f"; could not save the valid ones back ({e.strerror or e})"
        _log.error(
            "Sensors file {path}: set {rejected} invalid definition(s) aside in {aside} "
            "({problems}); loaded the {count} valid one(s){saved}",
            path=self.path,
            rejected=len(decoded.rejected),
            aside=aside,
            problems=problems,
            count=len(decoded.sensors),
            saved=saved,
        )

    def _move_aside(self, problem: str) -> None:
        aside = self._aside_path("corrupt")
        try:
            os.rename(self.path, aside)
        except OSError as e:
            self._refuse_saves = f"{self.path} is corrupt and could not be moved aside"
            _log.error(
                "Sensors file {path} is corrupt ({problem}) and could not be moved aside "
                "({error}); starting with no sensors, and changes will not be saved",
                path=self.path,
                problem=problem,
                error=e.strerror,
            )
            return
        _log.error(
            "Sensors file {path} is corrupt ({problem}); moved it to {aside} "
            "and starting with no sensors",
            path=self.path,
            problem=problem,
            aside=aside,
        )

    def _remove_leftovers(self) -> None:
        """Temporary files of a save interrupted by a crash or power cut."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        for name in names:
            if name.startswith(_TEMP_PREFIX) and name.endswith(_TEMP_SUFFIX):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.directory, name))

    def save(self, sensors: Sequence[FileSensor]) -> None:
        """Replace the file atomically and durably; C{OSError} on failure, file unchanged."""
        if self._refuse_saves is not None:
            raise SaveRefused(errno.EPERM, "not overwriting: " + self._refuse_saves)
        self._write(self.path, encode(sensors))

    def _write(self, path: str, data: bytes) -> None:
        """Write C{path} in the directory atomically and durably (temp file, fsync, rename)."""
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        write_atomically(path, data, 0o600)
