"""A CPU quota for one server: the "Pi Zero 2-like" projection of bench/run.py.

A cgroup v1 ``cpu`` group with ``cpu.cfs_quota_us = fraction x cpu.cfs_period_us``:
every thread of every process in it together gets at most ``fraction`` of one
core.  A process enters it before it execs the server (``prefix()`` or
``shell_line()``), so its threads and any children inherit it; nothing is moved
after start.  The period is 10 ms rather than the kernel's default 100 ms: a
0.25 quota then stalls a busy server for at most 7.5 ms at a time, closer to a
uniformly slower core than 75 ms stalls would be.

Needs root and ``/sys/fs/cgroup/cpu`` (cgroup v1).  Only the group created
here is written to, and it is removed again once its processes are gone.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import time

CGROUP_CPU = "/sys/fs/cgroup/cpu"
PERIOD_US = 10_000


class CpuQuota:
    """One cgroup with a CFS quota; ``with CpuQuota(0.25, "name") as q: ...``."""

    def __init__(self, fraction, name, root=CGROUP_CPU, period_us=PERIOD_US):
        if not 0.01 <= fraction <= 2.0:
            raise ValueError(f"CPU quota {fraction} outside 0.01..2 cores")
        self.fraction, self.period_us = fraction, period_us
        self.quota_us = max(1000, round(fraction * period_us))  # the kernel's minimum: 1 ms
        self.path = os.path.join(root, f"pistatsd-bench-{os.getpid()}-{name}")

    def create(self):
        if not os.path.isdir(os.path.dirname(self.path)):
            raise RuntimeError(f"no cgroup v1 cpu controller at {os.path.dirname(self.path)}")
        os.mkdir(self.path)
        self._write("cpu.cfs_period_us", self.period_us)
        self._write("cpu.cfs_quota_us", self.quota_us)
        return self

    def _write(self, name, value):
        with open(os.path.join(self.path, name), "w") as f:
            f.write(str(value))

    def describe(self):
        share = self.quota_us / self.period_us
        return f"cgroup cpu.cfs_quota_us {self.quota_us} / period {self.period_us} = {share:g} core"

    def shell_line(self):
        """A shell line that puts the running shell into the group (for a wrapper script)."""
        return "echo $$ > {} || exit 1".format(shlex.quote(os.path.join(self.path, "cgroup.procs")))

    def prefix(self):
        """argv prefix: join the group, then exec the rest of the command line."""
        return ["sh", "-c", self.shell_line() + '; exec "$@"', "cpu-quota"]

    def stat(self):
        """cpu.stat of the group (nr_periods, nr_throttled, throttled_time in ns, ...)."""
        out = {}
        with contextlib.suppress(OSError), open(os.path.join(self.path, "cpu.stat")) as f:
            for line in f:
                k, _, v = line.partition(" ")
                with contextlib.suppress(ValueError):
                    out[k] = int(v)
        return out

    def remove(self, wait_s=20.0):
        """rmdir the group once its processes have gone (waits at most wait_s)."""
        end = time.monotonic() + wait_s
        while time.monotonic() < end:
            try:
                os.rmdir(self.path)
                return True
            except FileNotFoundError:
                return True
            except OSError:
                time.sleep(0.2)
        return False

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc):
        self.remove()


def throttle_note(stat):
    """One phrase from cpu.stat: how often the quota bit (periods with nothing to run
    are not counted by the kernel)."""
    if not stat.get("nr_periods"):
        return "cgroup: no periods recorded"
    return "quota hit in {} of {} busy periods (startup included)".format(
        stat.get("nr_throttled", 0), stat["nr_periods"]
    )


if __name__ == "__main__":
    # A self-check: a busy loop in a 0.25 group uses ~25% of a core.
    import subprocess
    import sys

    with CpuQuota(float(sys.argv[1]) if len(sys.argv) > 1 else 0.25, "selfcheck") as q:
        t0 = time.monotonic()
        r = subprocess.run(
            [
                *q.prefix(),
                sys.executable,
                "-c",
                "import os,time\nend=time.monotonic()+3\nwhile time.monotonic()<end: pass\n"
                "t=os.times(); print(t.user+t.system)",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        wall = time.monotonic() - t0
        print(q.describe())
        print(f"busy loop: {float(r.stdout):.2f} CPU-s in {wall:.2f} s; {throttle_note(q.stat())}")
