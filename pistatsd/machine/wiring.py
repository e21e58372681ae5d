"""Builds the whole-machine collectors that the sampler adds to every snapshot."""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from pistatsd.config import Config
from pistatsd.machine.diskio import DiskIOCollector
from pistatsd.machine.fans import FanCollector
from pistatsd.sampler import SnapshotPart


def machine_parts(
    config: Config,
    reactor: IReactorTime,
    sys_root: str = "/sys",
    proc_root: str = "/proc",
) -> list[SnapshotPart]:
    """The collectors of the new top-level keys of SPEC section 11, for L{Sampler}'s C{parts}.

    C{cpu.freq_mhz}, C{net} and the additions to C{throttled} extend parts
    of section 3 and are built by L{pistatsd.sysinfo.SystemCollector}
    itself; this adds C{disk_io} and C{fans}.  The roots are parameters so a
    test can build the daemon's parts on fixture trees.
    """
    del config, reactor  # nothing here is configurable or scheduled on its own
    return [DiskIOCollector(sys_root, proc_root), FanCollector(sys_root)]
