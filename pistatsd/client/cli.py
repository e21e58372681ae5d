"""Command line: parse and check everything first, then run one command under C{react}."""

from __future__ import annotations

import argparse
import math
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import NoReturn, TextIO

from attrs import Factory, frozen
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.protocol import Protocol
from twisted.internet.stdio import StandardIO
from twisted.internet.task import react

from pistatsd.client import rest
from pistatsd.client.failures import OutputClosed, describe
from pistatsd.client.tls import Trust, load_cafile
from pistatsd.client.urls import BaseURL
from pistatsd.client.websocket import EchoSession, Session, WatchSession, client_endpoint
from pistatsd.numbers import decimal_float, integer, plain_decimal
from pistatsd.reactors import IPistatsdReactor

PROG = "pistatsd-client"
#: Words Python reads as numbers that are not finite ones (a usage error saying so).
NON_FINITE = ("inf", "infinity", "nan")
#: Exit status of a command stopped by Ctrl-C (except C{watch}, whose normal end that is).
INTERRUPTED = 130
Number = int | float
Write = Callable[[str], None]


@frozen
class Invocation:
    """Everything one run needs, checked before the reactor starts (so usage errors never
    reach the network)."""

    command: str
    base: BaseURL
    trust: Trust = Factory(Trust)
    timeout: float = 10.0
    interval: float | None = None
    summary: bool = False
    numbers: tuple[Number, ...] = ()
    post: bool = False
    count: int | None = None
    series: tuple[str, ...] = ()
    since: float = 3600.0
    points: int = 60
    table: bool = False


# -- argument types (each raises ArgumentTypeError: argparse turns it into usage + exit 2) --


def base_url(text: str) -> BaseURL:
    """BASE_URL argument."""
    try:
        return BaseURL.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def number(text: str) -> Number:
    """A number to add: an integer stays an integer (exact in JSON), else a finite float.

    The syntax is the server's (L{pistatsd.numbers}): C{1_0} or C{٣} are not numbers.
    """
    value: Number | None = integer(text)
    if value is None:
        value = decimal_float(text)
    if value is None:
        if text.lstrip("+-").lower() in NON_FINITE:
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        raise argparse.ArgumentTypeError(f"{text!r} is not a number")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer beyond float range
        finite = False
    if not finite:
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def seconds(text: str) -> float:
    """A positive number of seconds, written as a plain decimal (C{0.5}, C{10})."""
    value = plain_decimal(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be more than 0 seconds")
    return value


def positive_int(text: str) -> int:
    """A count of at least 1."""
    value = integer(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


#: Units of a C{--since} duration, in seconds (a year is 365 days).
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
#: Most points the daemon returns for one query.
MAX_POINTS = 5000


def duration(text: str) -> float:
    """A span such as C{15m}, C{1h}, C{7d}, C{1y}: digits, then one unit of s, m, h, d, w, y."""
    unit = DURATION_UNITS.get(text[-1:])
    count = integer(text[:-1]) if text[:1].isdigit() else None
    if unit is None or count is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration (a whole number and a unit: 15m, 1h, 7d, 1y)"
        )
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be more than 0")
    if count > 10 * 366 * 86400 // unit:
        raise argparse.ArgumentTypeError(f"{text!r}: at most 10 years")
    return float(count * unit)


def points(text: str) -> int:
    """How many points to ask for: 1 to L{MAX_POINTS}."""
    value = positive_int(text)
    if value > MAX_POINTS:
        raise argparse.ArgumentTypeError(f"{text!r}: at most {MAX_POINTS}")
    return value


def series_name(text: str) -> str:
    """A series name as the daemon lists them (C{cpu.percent}); no commas, not empty."""
    if not text or "," in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a series name")
    return text


# -- the parser ---------------------------------------------------------------


def _connection_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--cafile/--insecure/--timeout, accepted before or after the command.

    On the sub-commands the defaults are suppressed, so that a value given
    before the command is not overwritten by the sub-parser's default.
    """

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--cafile",
        metavar="FILE",
        default=default(None),
        help="trust the server certificates signed by the PEM certificate(s) in FILE "
        "(a private CA, or a self-signed certificate)",
    )
    group.add_argument(
        "--insecure",
        action="store_true",
        default=default(False),
        help="do not check the server certificate at all (prints a warning)",
    )
    parser.add_argument(
        "--timeout",
        metavar="S",
        type=seconds,
        default=default(10.0),
        help="give up connecting, or waiting for a reply, after S seconds (default 10)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, one sub-parser per command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Talk to a pistatsd daemon. BASE_URL is http(s)://host:port or "
        "ws(s)://host:port, with a path prefix behind a proxy (https://host/pistatsd/); "
        "the URL of one of its resources (http://pi:8888/stats, ws://pi:8888/ws/broadcast) "
        "names the daemon too. The client derives /stats, /sum and ws(s)://.../ws/... from it.",
    )
    _connection_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=summary)
        sub.add_argument("base", metavar="BASE_URL", type=base_url)
        _connection_options(sub, top=False)
        return sub

    stats = command("stats", "print the daemon's current stats (GET /stats)")
    stats.add_argument(
        "--interval", metavar="S", type=seconds, help="measure CPU over S seconds (0 < S <= 10)"
    )
    stats.add_argument(
        "--summary",
        action="store_true",
        help="one screen (24 lines of 80 columns at most) instead of the JSON",
    )

    total = command("sum", "add numbers on the server (GET /sum, or POST with --post)")
    total.add_argument("numbers", metavar="NUMBER", nargs="*", type=number)
    total.add_argument("--post", action="store_true", help="send them as a JSON object body")

    command("echo", "send each line of stdin to /ws/echo and print each reply")

    watch = command("watch", "print one line per /ws/broadcast tick until Ctrl-C")
    watch.add_argument("--count", metavar="N", type=positive_int, help="stop after N ticks")

    past = command("history", "print a sparkline per series over a past span (GET /stats/series)")
    past.add_argument(
        "--series",
        metavar="NAME",
        type=series_name,
        action="append",
        required=True,
        help="a series to show (cpu.percent, memory.percent, load.1, ...); repeat for more",
    )
    past.add_argument(
        "--since",
        metavar="DURATION",
        type=duration,
        default=3600.0,
        help="how far back: 15m, 1h, 24h, 7d, 1y (default 1h)",
    )
    past.add_argument(
        "--points",
        metavar="N",
        type=points,
        default=60,
        help=f"points per series (default 60, at most {MAX_POINTS})",
    )
    past.add_argument("--table", action="store_true", help="a table of values, one row per point")

    command("alerts", "print the daemon's alerts, firing ones first (GET /api/alerts)")
    return parser


def _late_numbers(
    parser: argparse.ArgumentParser, args: argparse.Namespace, extras: list[str]
) -> list[Number]:
    """Numbers given after an option (C{sum URL --post 1 2}), which argparse leaves over.

    Anything left over by another command, or that is not a number, is a usage error.
    """
    if args.command != "sum":
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    numbers = list(args.numbers)
    for text in extras:
        try:
            numbers.append(number(text))
        except argparse.ArgumentTypeError as e:
            if text.startswith("-"):
                parser.error(f"unrecognized arguments: {text}")
            parser.error(f"argument NUMBER: {e}")
    return numbers


def parse_arguments(argv: Sequence[str] | None = None) -> Invocation:
    """The checked invocation; prints usage and exits 2 on any usage error.

    The CA file is read here, before the reactor runs: it is small, and a
    wrong path is a usage error.
    """
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        args.numbers = _late_numbers(parser, args, extras)
    if args.cafile is not None and args.insecure:
        parser.error("--cafile and --insecure cannot be used together")
    trust = Trust()
    if args.insecure:
        trust = Trust(verify=False)
    elif args.cafile is not None:
        try:
            with open(args.cafile, "rb") as f:
                trust = Trust(root=load_cafile(f.read(), args.cafile))
        except OSError as e:
            parser.error(f"--cafile {args.cafile}: {e.strerror or e}")
        except ValueError as e:
            parser.error(str(e))
    return Invocation(
        command=args.command,
        base=args.base,
        trust=trust,
        timeout=args.timeout,
        interval=getattr(args, "interval", None),
        summary=getattr(args, "summary", False),
        numbers=tuple(getattr(args, "numbers", ())),
        post=getattr(args, "post", False),
        count=getattr(args, "count", None),
        series=tuple(getattr(args, "series", None) or ()),
        since=getattr(args, "since", 3600.0),
        points=getattr(args, "points", 60),
        table=getattr(args, "table", False),
    )


# -- running ------------------------------------------------------------------


class _Interruption:
    """What Ctrl-C does to the running command.

    C{react} stops the reactor on SIGINT/SIGTERM; this runs first, as a
    "before shutdown" trigger, and the reactor waits for the Deferred it
    returns (a WebSocket gets to close cleanly with 1000).
    """

    def __init__(self) -> None:
        self.happened = False
        self.handler: Callable[[], Deferred[None] | None] | None = None

    def __call__(self) -> Deferred[None] | None:
        self.happened = True
        return self.handler() if self.handler is not None else None


async def _request(
    reactor: IPistatsdReactor, invocation: Invocation, write: Write, interruption: _Interruption
) -> int:
    client = rest.http_client(reactor, invocation.trust, invocation.timeout)
    base, timeout = invocation.base, invocation.timeout
    if invocation.command == "stats":
        work = rest.stats(
            reactor, client, base, timeout, write, invocation.interval, invocation.summary
        )
    elif invocation.command == "history":
        work = rest.history(
            reactor,
            client,
            base,
            timeout,
            write,
            invocation.series,
            invocation.since,
            invocation.points,
            invocation.table,
        )
    elif invocation.command == "alerts":
        work = rest.alerts(reactor, client, base, timeout, write)
    else:
        work = rest.add(reactor, client, base, timeout, write, invocation.numbers, invocation.post)
    pending = ensureDeferred(work)

    def cancel() -> None:
        pending.cancel()

    interruption.handler = cancel
    try:
        await pending
    except Exception:
        if interruption.happened:  # cancelled by Ctrl-C, whatever treq wrapped it in
            return INTERRUPTED
        raise
    return 0


def _session(
    reactor: IPistatsdReactor,
    invocation: Invocation,
    write: Write,
    warn: Write,
    stdio: Callable[[Protocol], object],
) -> Session:
    base, timeout = invocation.base, invocation.timeout
    endpoint = client_endpoint(reactor, base, invocation.trust, timeout)
    if invocation.command == "echo":
        return EchoSession(reactor, base, "/ws/echo", endpoint, timeout, warn, stdio=stdio)
    return WatchSession(
        reactor, base, "/ws/broadcast", endpoint, timeout, warn, write=write, count=invocation.count
    )


async def run(
    reactor: IPistatsdReactor,
    invocation: Invocation,
    write: Write,
    warn: Write,
    stdio: Callable[[Protocol], object] | None = None,
) -> int:
    """Run one command; its exit status. Expected failures are reported here, on one line.

    C{write} prints a result line, C{warn} a message for stderr; C{stdio}
    connects a protocol to stdin/stdout (C{StandardIO} on C{reactor} by default).
    """
    interruption = _Interruption()
    trigger = reactor.addSystemEventTrigger("before", "shutdown", interruption)
    if invocation.base.secure and not invocation.trust.verify:
        warn("warning: --insecure: the server's certificate is not checked")
    if stdio is None:

        def stdio(protocol: Protocol) -> object:
            return StandardIO(protocol, reactor=reactor)

    try:
        if invocation.command in ("stats", "sum", "history", "alerts"):
            return await _request(reactor, invocation, write, interruption)
        session = _session(reactor, invocation, write, warn, stdio)
        interruption.handler = session.interrupt
        return await session.start()
    except OutputClosed:
        return 1
    except Exception as e:
        message = describe(e, invocation.base.netloc, invocation.timeout)
        if message is None:
            raise
        warn(message)
        return 1
    finally:
        if not interruption.happened:  # (removing a trigger that already ran only warns)
            reactor.removeSystemEventTrigger(trigger)


def _printer(stream: TextIO, prefix: str = "") -> Write:
    """Print whole lines at once (flushed, so a pipe sees each tick as it comes)."""

    def write(line: str) -> None:
        try:
            stream.write(f"{prefix}{line}\n")
            stream.flush()
        except BrokenPipeError:
            # Point the stream at /dev/null so Python's own flush at exit stays quiet too.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
            raise OutputClosed() from None

    return write


async def _main(reactor: IPistatsdReactor, invocation: Invocation) -> None:
    try:
        write, warn = _printer(sys.stdout), _printer(sys.stderr, f"{PROG}: ")
        code = await run(reactor, invocation, write, warn)
    except Exception:
        traceback.print_exc()
        sys.stderr.write(f"{PROG}: internal error (the traceback above is a bug)\n")
        code = 1
    if code:
        raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The C{pistatsd-client} console script."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    try:
        invocation = parse_arguments(argv)
    except KeyboardInterrupt:  # Ctrl-C before the reactor (and its SIGINT handler) runs
        sys.exit(INTERRUPTED)
    react(_main, (invocation,))
