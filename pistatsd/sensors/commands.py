"""Running command sensors: argv only, bounded output, a deadline, one run per command.

The programs come from the TOML file (never from HTTP) and are run with
C{spawnProcess}: no shell, a minimal environment (the daemon's secrets are
in its environment and must not leak to children), stdin closed, output
capped.  A program that outlives its timeout is killed.  However often the
service asks, a command runs at most once at a time: callers that ask while
it runs share its result, so a slow program never piles up copies of itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from attrs import define, field
from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.interfaces import IDelayedCall, IProcessTransport, IReactorTime
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from pistatsd.reactors import IPistatsdReactor
from pistatsd.sensors.model import CommandSensor, Reading, parse_number, scaled

_log = Logger()

#: Enough for any sensor's output; the rest is read and dropped.
MAX_OUTPUT = 4096
MAX_STDERR = 512
#: What a child gets as its environment: nothing of the daemon's.
CHILD_ENV: Mapping[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C",
}


class CommandFailed(Exception):
    """A command did not produce output to parse.

    @ivar message: safe to show to clients ("timed out after 5 s").
    @ivar detail: the start of its stderr, for the log only.
    """

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class _Capture(ProcessProtocol):
    """Collects a bounded amount of output and reports how the process ended."""

    def __init__(self, run: _Run) -> None:
        self._run = run
        self.stdout = bytearray()
        self.stderr = bytearray()

    def connectionMade(self) -> None:
        assert self.transport is not None  # spawnProcess connects it before this call
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        room = MAX_OUTPUT - len(self.stdout)
        if room > 0:
            self.stdout += data[:room]

    def errReceived(self, data: bytes) -> None:
        room = MAX_STDERR - len(self.stderr)
        if room > 0:
            self.stderr += data[:room]

    def processEnded(self, reason: Failure) -> None:
        self._run.ended(reason, bytes(self.stdout), bytes(self.stderr))


@define(eq=False)
class _Run:
    """One running process and everyone waiting for its output."""

    argv: tuple[str, ...]
    timeout: float
    on_end: Callable[[_Run], None]
    waiters: list[Deferred[bytes]] = field(factory=list)
    transport: IProcessTransport | None = None
    deadline: IDelayedCall | None = None
    timed_out: bool = False
    done: Deferred[None] = field(factory=Deferred)

    def wait(self) -> Deferred[bytes]:
        d: Deferred[bytes] = Deferred()
        self.waiters.append(d)
        return d

    def _notify(self, result: bytes | Failure) -> None:
        waiting, self.waiters = self.waiters, []
        for d in waiting:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)

    def kill(self, why: str) -> None:
        """SIGKILL the process and close our pipe ends (a grandchild may hold them)."""
        if self.transport is None:
            return
        with contextlib.suppress(ProcessExitedAlready, OSError):
            self.transport.signalProcess("KILL")
        self.transport.loseConnection()
        _log.debug("Killed {argv}: {why}", argv=self.argv, why=why)

    def _timeout_failure(self) -> Failure:
        return Failure(CommandFailed(f"timed out after {self.timeout:g} s (killed)"))

    def expire(self) -> None:
        """The deadline passed: kill it, and tell the waiters now, not when it is reaped."""
        self.deadline = None
        self.timed_out = True
        self.kill("timeout")
        self._notify(self._timeout_failure())

    def ended(self, reason: Failure, stdout: bytes, stderr: bytes) -> None:
        if self.deadline is not None and self.deadline.active():
            self.deadline.cancel()
        self.deadline = None
        detail = stderr.decode("utf-8", "replace").strip()
        result: bytes | Failure
        if self.timed_out:
            result = self._timeout_failure()  # for anyone who joined after the kill
        elif reason.check(ProcessDone):
            result = stdout
        elif isinstance(reason.value, ProcessTerminated):
            value = reason.value
            if value.signal is not None:
                message = f"killed by signal {value.signal}"
            else:
                message = f"exited with status {value.exitCode}"
            result = Failure(CommandFailed(message, detail))
        else:
            result = Failure(CommandFailed("ended abnormally", detail))
        # Forget the run first: a waiter's callback may ask for the next run at once.
        self.on_end(self)
        self._notify(result)
        self.done.callback(None)


class CommandRunner:
    """Spawns command-sensor programs on the injected reactor, never two of the same."""

    def __init__(self, reactor: IPistatsdReactor, env: Mapping[str, str] = CHILD_ENV) -> None:
        self._reactor = reactor
        self._clock: IReactorTime = reactor
        self._env = dict(env)
        self._running: dict[tuple[str, ...], _Run] = {}
        self._stopping = False

    @property
    def running(self) -> int:
        """How many processes are running now."""
        return len(self._running)

    def run(self, argv: tuple[str, ...], timeout: float) -> Deferred[bytes]:
        """The stdout of C{argv}; joins the run in progress if there is one.

        Fails with L{CommandFailed} on a non-zero exit, a signal or the timeout.
        """
        if self._stopping:
            return fail(CommandFailed("the daemon is stopping"))
        run = self._running.get(argv)
        if run is not None:
            return run.wait()
        run = _Run(argv, timeout, self._forget)
        waiter = run.wait()
        try:
            run.transport = self._reactor.spawnProcess(
                _Capture(run), argv[0], list(argv), env=self._env, path="/"
            )
        except Exception as e:
            run._notify(Failure(CommandFailed(f"cannot run {argv[0]}: {e}")))
            return waiter
        self._running[argv] = run
        run.deadline = self._clock.callLater(timeout, run.expire)
        return waiter

    def _forget(self, run: _Run) -> None:
        if self._running.get(run.argv) is run:
            del self._running[run.argv]

    def stop(self, grace: float = 5.0) -> Deferred[None]:
        """Kill every running process; fires once they are reaped (or after C{grace})."""
        self._stopping = True
        runs = list(self._running.values())
        if not runs:
            return succeed(None)
        for run in runs:
            if run.deadline is not None and run.deadline.active():
                run.deadline.cancel()
                run.deadline = None
            run.kill("the daemon is stopping")
        reaped: Deferred[Any] = DeferredList([r.done for r in runs], consumeErrors=True)
        reaped.addTimeout(grace, self._clock)

        def late(reason: Failure) -> None:
            _log.warn("Command sensors still running {grace} s after SIGKILL", grace=grace)

        return reaped.addCallbacks(lambda _: None, late)

    def start(self) -> None:
        """Allow runs again (after L{stop}, when a service is restarted)."""
        self._stopping = False


def parse_output(sensor: CommandSensor, output: bytes) -> Reading:
    """A reading from a command's stdout, with its pattern if it has one."""
    text = output.decode("utf-8", "replace")
    if sensor.pattern is not None:
        match = sensor.pattern.search(text)
        if match is None or match.group(1) is None:
            return Reading.failed("output did not match the pattern")
        text = match.group(1)
    try:
        raw = parse_number(text)
    except ValueError as e:
        return Reading.failed(f"output is {e}" if str(e) != "empty" else "no output")
    return scaled(raw, sensor)
