"""Timers on a monotonic clock, so a wall clock that steps neither stops nor bursts them.

Twisted's reactors keep time with C{time.time} (C{ReactorBase.seconds}), and
every C{callLater}, C{LoopingCall} and C{TimerService} is a deadline on that
clock.  When the wall clock steps back an hour (a Raspberry Pi without a
real-time clock at every boot, NTP, C{date -s}), every timer waits an extra
hour: sampling, the broadcast, InfluxDB reporting, the heartbeat and the
systemd watchdog pings all stop, and systemd kills a healthy daemon.  A step
forward fires every pending deadline at once.

The fix is made once, by the composition root, on the reactor itself: its
C{seconds} becomes C{time.monotonic}.  This is simpler and more robust than
detecting steps and rescheduling:

 - every deadline in the process is computed from C{reactor.seconds()}
   (C{callLater}, C{DelayedCall.reset}, the sleep in C{timeout()}, the due
   test in C{runUntilCurrent}, C{LoopingCall}'s schedule), Twisted's own
   (HTTP idle and request timeouts, the connection pool, Autobahn's pings)
   as well as ours: one assignment fixes all of them, where step detection
   needs a watcher polling the clock, a list of every timer (Twisted's
   included), and still stalls or fires timers until the step is noticed;
 - C{IReactorTime.seconds} promises "the current time in seconds", not an
   epoch (C{task.Clock} counts from zero), so nothing relies on it being
   the date -- except Twisted's access-log date, which
   L{pistatsd.web.accesslog} takes from the wall clock instead;
 - what needs the date takes it explicitly: each component that stamps
   data takes a C{wall} callable (C{time.time} by default), so snapshot,
   broadcast and InfluxDB timestamps stay epoch seconds while durations,
   deadlines and uptimes are measured on the (monotonic) reactor.

Only a real reactor still on Twisted's default clock is changed: fakes
(C{task.Clock}, C{MemoryReactorClock}) are left alone, so tests drive time
exactly as before.  twistd schedules no timer before it calls
C{makeService}, but a C{.tac} file could: timers already scheduled are moved
onto the new clock with the time they had left, so none is lost or stalled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

from twisted.internet.base import DelayedCall, ReactorBase
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

_log = Logger()


def use_monotonic_clock(reactor: object, monotonic: Callable[[], float] = time.monotonic) -> bool:
    """Make a real reactor time its calls with C{monotonic}; True if it was changed.

    Call it before the reactor runs (the composition root does).  Anything
    else -- a fake reactor, or one whose clock was already replaced -- is
    left as it is, and the call returns False, so calling it twice is safe.

    @param monotonic: the new clock; injected by tests.
    """
    if not isinstance(reactor, ReactorBase) or reactor.seconds is not ReactorBase.seconds:
        return False
    wall = reactor.seconds()
    now = monotonic()
    calls = [cast(DelayedCall, call) for call in reactor.getDelayedCalls()]
    reactor.seconds = monotonic
    for call in calls:
        _move(call, wall, now, monotonic)
    if calls:
        _log.info("Moved {n} timers onto the monotonic clock", n=len(calls))
    return True


def _move(call: DelayedCall, wall: float, now: float, monotonic: Callable[[], float]) -> None:
    """Reschedule one pending call on C{monotonic}, with the time it had left.

    C{reset} to an earlier time moves the call within the reactor's heap.  A
    L{LoopingCall} also keeps its start time (its schedule and its missed
    interval count are reckoned from it): it is shifted by the same offset,
    so the loop keeps its phase and counts no missed intervals.
    """
    left = max(0.0, call.getTime() - wall)
    call.seconds = monotonic
    call.reset(left)
    loop = call.func
    if isinstance(loop, LoopingCall) and loop.call is call and loop.starttime is not None:
        offset = now - wall
        loop.starttime += offset
        last = getattr(loop, "_realLastTime", None)
        if last is not None:
            loop._realLastTime = last + offset
