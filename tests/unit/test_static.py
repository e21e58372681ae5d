"""Tests for L{pistatsd.web.static}: in memory, no sockets, no sleeping."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http import stringToDatetime
from twisted.web.resource import Resource
from twisted.web.server import Site

from pistatsd.web.static import StaticFiles, contentTypeFor, contenttypes
from tests.privileges import file_modes_bind_root
from tests.support import Client, Response, build_request, parse_responses, request

SMALL = bytes(range(256)) * 16  # 4 KiB
BIG = os.urandom(1024 * 1024)  # 1 MiB
INDEX = b"<!doctype html><title>pistatsd</title>INDEX-PAGE"
DOT_SECRET = b"TOPSECRET-DOTFILE"
OUTSIDE_SECRET = b"TOPSECRET-OUTSIDE"
CHUNK = 64 * 1024


class _Root(Resource):
    """
    Mimic pistatsd's root: everything it does not handle goes to the
    static files.
    """

    def __init__(self, files: StaticFiles) -> None:
        super().__init__()
        self._files = files

    def getChild(self, path: bytes, request: object) -> Resource:
        return self._files


def _openFdsTo(path: str) -> list[int]:
    """
    This process's file descriptors open on C{path} (Linux C{/proc}).
    """
    real = os.path.realpath(path)
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == real:
                found.append(int(name))
        except OSError:
            pass
    return found


class _PausingTransport(StringTransport):
    """
    A L{StringTransport} that pauses its streaming producer once more than
    C{limit} bytes are buffered, as a real TCP transport does when the peer
    reads slowly.  L{drain} plays the peer reading everything.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 8888),
            peerAddress=IPv4Address("TCP", "127.0.0.1", 40000),
        )
        self.limit = limit
        self.full = False
        self.received = b""

    def write(self, data: bytes) -> None:
        super().write(data)
        if not self.full and self.producer is not None and len(self.value()) > self.limit:
            self.full = True
            self.producer.pauseProducing()

    def writeSequence(self, data: list[bytes]) -> None:
        self.write(b"".join(data))

    def drain(self) -> bool:
        """
        Move what was written to C{received}; resume the producer if it had
        been paused.  Returns whether it had been.
        """
        self.received += self.value()
        self.clear()
        if self.full:
            self.full = False
            self.producer.resumeProducing()
            return True
        return False


class _SlowClient(Client):
    """
    L{Client} over a L{_PausingTransport}.
    """

    def __init__(self, site: Site, limit: int) -> None:
        self.transport = _PausingTransport(limit)
        self.channel = site.buildProtocol(self.transport.getPeer())
        self.channel.makeConnection(self.transport)


class _TreeMixin:
    """
    Build the tree every test serves.

        root/
          index.html  small.html  big.bin  empty.txt  .secret
          app.js  style.css  data.json  logo.svg  mod.wasm  lib.mjs
          pic.PNG  blob.zzqq9  README
          sub/index.html  sub/deeper/index.html  noindex/listed-file.txt
          .git/config
          inside-link -> small.html      inside-dir -> sub
          escape-file -> ../outside/secret.txt
          escape-dir -> ../outside       dot-link -> .secret
          fifo (a named pipe)
        outside/secret.txt  outside/index.html
    """

    mktemp: Callable[[], str]

    def buildTree(self) -> None:
        base = self.mktemp()
        os.makedirs(base)
        self.base = os.path.abspath(base)
        self.rootPath = os.path.join(self.base, "root")
        self.outside = os.path.join(self.base, "outside")
        os.mkdir(self.rootPath)
        os.mkdir(self.outside)
        files = {
            "index.html": INDEX,
            "small.html": SMALL,
            "big.bin": BIG,
            "empty.txt": b"",
            ".secret": DOT_SECRET,
            "app.js": b"console.log(1)",
            "style.css": b"body{}",
            "data.json": b"{}",
            "logo.svg": b"<svg/>",
            "mod.wasm": b"\0asm",
            "lib.mjs": b"export {}",
            "pic.PNG": b"\x89PNG",
            "blob.zzqq9": b"?",
            "README": b"readme",
            "sub/index.html": b"SUB-INDEX",
            "sub/deeper/index.html": b"DEEPER-INDEX",
            "noindex/listed-file.txt": b"listed",
            ".git/config": DOT_SECRET,
        }
        for name, content in files.items():
            path = os.path.join(self.rootPath, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(content)
        for name in ("secret.txt", "index.html"):
            with open(os.path.join(self.outside, name), "wb") as f:
                f.write(OUTSIDE_SECRET)
        links = {
            "inside-link": "small.html",
            "inside-dir": "sub",
            "escape-file": "../outside/secret.txt",
            "escape-dir": "../outside",
            "dot-link": ".secret",
            "abs-escape": os.path.join(self.outside, "secret.txt"),
        }
        for name, target in links.items():
            os.symlink(target, os.path.join(self.rootPath, name))
        os.mkfifo(os.path.join(self.rootPath, "fifo"))

    def path(self, name: str) -> str:
        return os.path.join(self.rootPath, name)


class _Base(_TreeMixin, SynchronousTestCase):
    """
    Tree + a site mounted like pistatsd's.
    """

    def setUp(self) -> None:
        self.buildTree()
        self.files = StaticFiles(self.rootPath, chunk_size=CHUNK)
        self.site = Site(_Root(self.files))

    def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        return request(self.site, "GET", path, headers=headers)

    def countOpens(self) -> list[bytes]:
        """
        Record every path C{os.open} is called with from now on.
        """
        opened: list[bytes] = []
        realOpen = os.open

        def countingOpen(path: bytes, *args: object, **kwargs: object) -> int:
            opened.append(path)
            return realOpen(path, *args, **kwargs)

        self.patch(os, "open", countingOpen)
        return opened

    def denyOpen(self, name: str, error: OSError) -> None:
        """
        Make C{os.open} of C{name} (in the root) fail with C{error}.
        """
        target = os.fsencode(self.path(name))
        realOpen = os.open

        def denyingOpen(path: bytes, *args: object, **kwargs: object) -> int:
            if path == target:
                raise error
            return realOpen(path, *args, **kwargs)

        self.patch(os, "open", denyingOpen)

    def assertNotFound(self, response: Response) -> None:
        self.assertEqual(response.status, 404)
        self.assertEqual(response.header("content-type"), "text/plain; charset=utf-8")
        for secret in (DOT_SECRET, OUTSIDE_SECRET, SMALL[:64], INDEX):
            self.assertNotIn(secret, response.body)


class ServeTests(_Base):
    """
    Plain GET and HEAD.
    """

    def test_smallFile(self) -> None:
        r = self.get("/small.html")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, SMALL)
        self.assertEqual(r.header("content-type"), "text/html; charset=utf-8")
        self.assertEqual(r.header("content-length"), "4096")
        self.assertEqual(r.header("x-content-type-options"), "nosniff")
        self.assertEqual(r.header("accept-ranges"), "bytes")
        self.assertIsNone(r.header("transfer-encoding"))

    def test_validators(self) -> None:
        r = self.get("/small.html")
        st = os.stat(self.path("small.html"))
        etag = r.header("etag")
        self.assertRegex(etag, r'^"[0-9a-f]+-[0-9a-f]+-[0-9a-f]+"$')
        self.assertIn(f"{st.st_mtime_ns:x}", etag)
        self.assertEqual(stringToDatetime(r.header("last-modified").encode()), int(st.st_mtime))

    def test_etagChangesWithContent(self) -> None:
        before = self.get("/small.html").header("etag")
        with open(self.path("small.html"), "ab") as f:
            f.write(b"more")
        self.assertNotEqual(self.get("/small.html").header("etag"), before)

    def test_rootIndex(self) -> None:
        r = self.get("/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, INDEX)
        self.assertEqual(r.header("content-type"), "text/html; charset=utf-8")

    def test_subdirectoryIndex(self) -> None:
        self.assertEqual(self.get("/sub/").body, b"SUB-INDEX")
        self.assertEqual(self.get("/sub/deeper/").body, b"DEEPER-INDEX")
        self.assertEqual(self.get("/sub/index.html").body, b"SUB-INDEX")

    def test_percentEncodedName(self) -> None:
        with open(self.path("with space.txt"), "wb") as f:
            f.write(b"spaced")
        r = self.get("/with%20space.txt")
        self.assertEqual((r.status, r.body), (200, b"spaced"))

    def test_emptyFile(self) -> None:
        r = self.get("/empty.txt")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"")
        self.assertEqual(r.header("content-length"), "0")

    def test_headSmall(self) -> None:
        r = request(self.site, "HEAD", "/small.html")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("content-length"), "4096")
        self.assertEqual(r.header("content-type"), "text/html; charset=utf-8")
        self.assertTrue(r.raw.endswith(b"\r\n\r\n"))
        self.assertEqual(r.body, b"")

    def test_headBig(self) -> None:
        client = Client(self.site)
        client.send(build_request("HEAD", "/big.bin"))
        raw = client.transport.value()
        self.assertTrue(raw.endswith(b"\r\n\r\n"))
        self.assertNotIn(BIG[:32], raw)
        [r] = parse_responses(raw.replace(b"Content-Length: 1048576", b"X-L: 1048576"))
        self.assertEqual(r.status, 200)
        self.assertIn(b"Content-Length: 1048576", raw)
        self.assertEqual(_openFdsTo(self.path("big.bin")), [])

    def test_bigFile(self) -> None:
        r = self.get("/big.bin")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("content-length"), str(len(BIG)))
        self.assertEqual(r.header("content-type"), "application/octet-stream")
        self.assertIsNone(r.header("transfer-encoding"))
        self.assertEqual(r.body, BIG)
        self.assertEqual(_openFdsTo(self.path("big.bin")), [])

    def test_keepAlive(self) -> None:
        """
        Several responses, small and streamed, on one connection.
        """
        client = Client(self.site)
        for path in ("/small.html", "/big.bin", "/", "/nope"):
            client.send(build_request("GET", path))
        responses = client.responses()
        self.assertEqual([r.status for r in responses], [200, 200, 200, 404])
        self.assertEqual(responses[1].body, BIG)
        self.assertEqual(responses[2].body, INDEX)

    def test_siteRoot(self) -> None:
        """
        A L{StaticFiles} also works as the L{Site}'s root resource.
        """
        site = Site(StaticFiles(FilePath(self.rootPath)))
        self.assertEqual(request(site, "GET", "/").body, INDEX)
        self.assertEqual(request(site, "GET", "/sub/deeper/").body, b"DEEPER-INDEX")
        self.assertEqual(request(site, "GET", "/small.html").body, SMALL)
        self.assertEqual(request(site, "GET", "/.secret").status, 404)

    def test_rootThroughSymlink(self) -> None:
        """
        A root given as a symlink is resolved once; its files are served.
        """
        alias = os.path.join(self.base, "alias")
        os.symlink(self.rootPath, alias)
        site = Site(_Root(StaticFiles(alias)))
        self.assertEqual(request(site, "GET", "/small.html").body, SMALL)
        self.assertEqual(request(site, "GET", "/inside-link").body, SMALL)
        self.assertEqual(request(site, "GET", "/escape-file").status, 404)

    def test_badArguments(self) -> None:
        self.assertRaises(ValueError, StaticFiles, self.rootPath, chunk_size=0)
        self.assertRaises(ValueError, StaticFiles, self.rootPath, cache_bytes=-1)


class ContentTypeTests(_Base):
    """
    C{Content-Type} from the extension.
    """

    def test_served(self) -> None:
        expected = {
            "/app.js": "text/javascript; charset=utf-8",
            "/lib.mjs": "text/javascript; charset=utf-8",
            "/style.css": "text/css; charset=utf-8",
            "/data.json": "application/json",
            "/logo.svg": "image/svg+xml",
            "/mod.wasm": "application/wasm",
            "/pic.PNG": "image/png",
            "/blob.zzqq9": "application/octet-stream",
            "/README": "application/octet-stream",
            "/big.bin": "application/octet-stream",
        }
        for path, ctype in expected.items():
            r = self.get(path)
            self.assertEqual((path, r.status, r.header("content-type")), (path, 200, ctype))
            self.assertEqual(r.header("x-content-type-options"), "nosniff")

    def test_the_web_s_types_leave_the_system_table_unbuilt(self) -> None:
        table = contenttypes._buildTypeTable
        table.cache_clear()
        self.addCleanup(table.cache_clear)
        for name in (b"index.html", b"app.js", b"style.css", b"icon.svg", b"font.woff2"):
            contentTypeFor(name)
        self.assertEqual(table.cache_info().currsize, 0)
        # An unusual extension builds it, once, from mimetypes and the system's files.
        self.assertEqual(contentTypeFor(b"song.mp3"), b"audio/mpeg")
        contentTypeFor(b"page.xhtml")
        self.assertEqual((table.cache_info().currsize, table.cache_info().misses), (1, 1))

    def test_contentTypeFor(self) -> None:
        self.assertEqual(contentTypeFor(b"a.HTML"), b"text/html; charset=utf-8")
        self.assertEqual(contentTypeFor(b"a.txt"), b"text/plain; charset=utf-8")
        self.assertEqual(contentTypeFor(b"archive.tar.gz"), b"application/gzip")
        self.assertEqual(contentTypeFor(b"font.woff2"), b"font/woff2")
        self.assertEqual(contentTypeFor(b"noext"), b"application/octet-stream")
        self.assertEqual(contentTypeFor(b"trailingdot."), b"application/octet-stream")
        self.assertEqual(contentTypeFor(b"caf\xc3\xa9.\xc3\xa9"), b"application/octet-stream")


class ConditionalTests(_Base):
    """
    C{If-None-Match} and C{If-Modified-Since}.
    """

    def setUp(self) -> None:
        super().setUp()
        first = self.get("/small.html")
        self.etag = first.header("etag")
        self.lastModified = first.header("last-modified")

    def assertNotModified(self, r: Response) -> None:
        self.assertEqual(r.status, 304)
        self.assertEqual(r.body, b"")
        self.assertTrue(r.raw.endswith(b"\r\n\r\n"))
        self.assertEqual(r.header("etag"), self.etag)
        self.assertIn(r.header("content-length"), (None, "4096"))

    def test_ifNoneMatch(self) -> None:
        self.assertNotModified(self.get("/small.html", {"If-None-Match": self.etag}))

    def test_ifNoneMatchList(self) -> None:
        r = self.get("/small.html", {"If-None-Match": f'"nope", W/{self.etag} , "other"'})
        self.assertNotModified(r)

    def test_ifNoneMatchStar(self) -> None:
        self.assertNotModified(self.get("/small.html", {"If-None-Match": "*"}))

    def test_ifNoneMatchMiss(self) -> None:
        r = self.get("/small.html", {"If-None-Match": '"nope", "other"'})
        self.assertEqual((r.status, r.body), (200, SMALL))

    def test_ifModifiedSince(self) -> None:
        self.assertNotModified(self.get("/small.html", {"If-Modified-Since": self.lastModified}))

    def test_ifModifiedSinceOlder(self) -> None:
        st = os.stat(self.path("small.html"))
        os.utime(self.path("small.html"), ns=(st.st_atime_ns, st.st_mtime_ns + 10**10))
        r = self.get("/small.html", {"If-Modified-Since": self.lastModified})
        self.assertEqual((r.status, r.body), (200, SMALL))

    def test_ifModifiedSinceMalformed(self) -> None:
        r = self.get("/small.html", {"If-Modified-Since": "yesterday-ish"})
        self.assertEqual((r.status, r.body), (200, SMALL))

    def test_ifNoneMatchWins(self) -> None:
        """
        A non-matching If-None-Match beats a matching If-Modified-Since.
        """
        r = self.get(
            "/small.html",
            {"If-None-Match": '"nope"', "If-Modified-Since": self.lastModified},
        )
        self.assertEqual((r.status, r.body), (200, SMALL))

    def test_bigFileNotModified(self) -> None:
        """
        A 304 for a streamed file does not even open it.
        """
        etag = self.get("/big.bin").header("etag")
        opened = self.countOpens()
        r = self.get("/big.bin", {"If-None-Match": etag})
        self.assertEqual((r.status, r.body), (304, b""))
        self.assertEqual(r.header("etag"), etag)
        self.assertEqual(opened, [])


class RangeTests(_Base):
    """
    Single byte ranges, 416, and falling back to the whole file.
    """

    def rng(self, value: str, path: str = "/small.html", **extra: str) -> Response:
        return self.get(path, {"Range": value, **extra})

    def assertPartial(self, r: Response, first: int, last: int, content: bytes) -> None:
        self.assertEqual(r.status, 206)
        self.assertEqual(r.header("content-range"), f"bytes {first}-{last}/{len(content)}")
        self.assertEqual(r.header("content-length"), str(last - first + 1))
        self.assertEqual(r.body, content[first : last + 1])

    def test_closed(self) -> None:
        self.assertPartial(self.rng("bytes=0-99"), 0, 99, SMALL)
        self.assertPartial(self.rng("bytes=100-100"), 100, 100, SMALL)

    def test_open(self) -> None:
        self.assertPartial(self.rng("bytes=4000-"), 4000, 4095, SMALL)

    def test_suffix(self) -> None:
        self.assertPartial(self.rng("bytes=-100"), 3996, 4095, SMALL)
        self.assertPartial(self.rng("bytes=-99999"), 0, 4095, SMALL)

    def test_clamped(self) -> None:
        self.assertPartial(self.rng("bytes=4000-99999"), 4000, 4095, SMALL)

    def test_unsatisfiable(self) -> None:
        for value in ("bytes=4096-", "bytes=5000-6000", "bytes=-0"):
            r = self.rng(value)
            self.assertEqual((value, r.status), (value, 416))
            self.assertEqual(r.header("content-range"), "bytes */4096")
            self.assertNotIn(SMALL[:64], r.body)

    def test_emptyFileUnsatisfiable(self) -> None:
        r = self.rng("bytes=0-", path="/empty.txt")
        self.assertEqual(r.status, 416)
        self.assertEqual(r.header("content-range"), "bytes */0")

    def test_wholeFileFallback(self) -> None:
        for value in ("bytes=0-1,5-6", "bytes=abc", "bytes=5-1", "items=0-1", "bytes", "0-5"):
            r = self.rng(value)
            self.assertEqual((value, r.status, r.body), (value, 200, SMALL))
            self.assertIsNone(r.header("content-range"))

    def test_bigStreamedRange(self) -> None:
        """
        A range longer than a chunk is streamed from its offset.
        """
        self.assertPartial(self.rng("bytes=100000-899999", "/big.bin"), 100000, 899999, BIG)
        self.assertEqual(_openFdsTo(self.path("big.bin")), [])

    def test_bigShortRange(self) -> None:
        self.assertPartial(self.rng("bytes=-10", "/big.bin"), len(BIG) - 10, len(BIG) - 1, BIG)
        self.assertPartial(self.rng("bytes=5-5", "/big.bin"), 5, 5, BIG)
        self.assertEqual(_openFdsTo(self.path("big.bin")), [])

    def test_bigUnsatisfiable(self) -> None:
        r = self.rng("bytes=2000000-", "/big.bin")
        self.assertEqual(r.status, 416)
        self.assertEqual(r.header("content-range"), f"bytes */{len(BIG)}")
        self.assertEqual(_openFdsTo(self.path("big.bin")), [])

    def test_bigShortRead(self) -> None:
        """
        A file that changes while we read it is a 503, not wrong bytes.
        """
        self.patch(os, "pread", lambda fd, n, offset: b"x")
        r = self.rng("bytes=0-9", "/big.bin")
        self.assertEqual(r.status, 503)
        self.assertEqual(r.header("content-type"), "text/plain; charset=utf-8")
        self.assertIsNone(r.header("content-range"))
        self.assertEqual(_openFdsTo(self.path("big.bin")), [])

    def test_ifRangeEtag(self) -> None:
        etag = self.get("/small.html").header("etag")
        self.assertPartial(self.rng("bytes=0-9", **{"If-Range": etag}), 0, 9, SMALL)
        r = self.rng("bytes=0-9", **{"If-Range": '"stale"'})
        self.assertEqual((r.status, r.body), (200, SMALL))
        r = self.rng("bytes=0-9", **{"If-Range": "W/" + etag})
        self.assertEqual((r.status, r.body), (200, SMALL))

    def test_ifRangeDate(self) -> None:
        lastModified = self.get("/small.html").header("last-modified")
        self.assertPartial(self.rng("bytes=0-9", **{"If-Range": lastModified}), 0, 9, SMALL)
        r = self.rng("bytes=0-9", **{"If-Range": "Thu, 01 Jan 1970 00:00:00 GMT"})
        self.assertEqual((r.status, r.body), (200, SMALL))


class SecurityTests(_Base):
    """
    Names we never serve: 404, short text, no file content, no traceback.
    """

    def test_refused(self) -> None:
        paths = [
            "/.secret",
            "/.git/config",
            "/sub/../.secret",
            "/..",
            "/../outside/secret.txt",
            "/sub/..",
            "/.",
            "/./small.html",
            "/%2e%2e/outside/secret.txt",
            "/%2E%2E/outside/secret.txt",
            "/sub/%2e%2e/%2esecret",
            "/%2esecret",
            "/%2e%2e%2foutside%2fsecret.txt",
            "/sub%2f..%2f.secret",
            "/sub%2findex.html",
            "/small.html%00.txt",
            "/small.html%00",
            "/sub%5c..%5c.secret",
            "/sub//index.html",
            "//small.html",
            "/sub///",
            "/escape-file",
            "/escape-dir/secret.txt",
            "/escape-dir/",
            "/escape-dir",
            "/abs-escape",
            "/dot-link",
            "/fifo",
            "/missing.html",
            "/missing/",
            "/small.html/",
            "/small.html/x",
            "/" + "a" * 5000,
        ]
        for path in paths:
            r = self.get(path)
            with self.subTest(path=path):
                self.assertNotFound(r)

    def test_refusedHead(self) -> None:
        r = request(self.site, "HEAD", "/.secret")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.body, b"")

    def test_symlinkLoop(self) -> None:
        os.symlink("loop-b", self.path("loop-a"))
        os.symlink("loop-a", self.path("loop-b"))
        self.assertNotFound(self.get("/loop-a"))

    def test_insideSymlinks(self) -> None:
        r = self.get("/inside-link")
        self.assertEqual((r.status, r.body), (200, SMALL))
        # The type is that of the file actually served (the link's target).
        self.assertEqual(r.header("content-type"), "text/html; charset=utf-8")
        self.assertEqual(self.get("/inside-dir/").body, b"SUB-INDEX")
        self.assertEqual(self.get("/inside-dir/deeper/").body, b"DEEPER-INDEX")

    def test_indexSymlinkEscaping(self) -> None:
        """
        A directory's index.html that is a symlink out of the root is
        refused too.
        """
        os.mkdir(self.path("trap"))
        os.symlink(os.path.join(self.outside, "index.html"), self.path("trap/index.html"))
        self.assertNotFound(self.get("/trap/"))

    def test_noListing(self) -> None:
        r = self.get("/noindex/")
        self.assertNotFound(r)
        self.assertNotIn(b"listed-file", r.body)

    def test_unreadable(self) -> None:
        """
        A file we may not open is a 403 (whoever runs the tests: the
        permission error is injected).
        """
        self.denyOpen("style.css", PermissionError(13, "Permission denied"))
        r = self.get("/style.css")
        self.assertEqual(r.status, 403)
        self.assertEqual(r.header("content-type"), "text/plain; charset=utf-8")
        self.assertNotIn(b"body{}", r.body)
        self.assertNotIn(b"Traceback", r.body)

    def test_unreadableBig(self) -> None:
        """
        A large file that cannot be opened gets a clean 403, for GET, HEAD
        and ranges alike: no file headers, no partial response.
        """
        self.denyOpen("big.bin", PermissionError(13, "Permission denied"))
        for method, headers in [("GET", {}), ("HEAD", {}), ("GET", {"Range": "bytes=0-9"})]:
            r = request(self.site, method, "/big.bin", headers=headers)
            self.assertEqual((method, headers, r.status), (method, headers, 403))
            self.assertIsNone(r.header("etag"))
            self.assertIsNone(r.header("content-range"))
            self.assertEqual(r.header("content-type"), "text/plain; charset=utf-8")

    def test_unreadableForReal(self) -> None:
        """
        A file whose mode forbids reading, for real: as root too, with its
        override of file modes dropped for the request.
        """
        os.chmod(self.path("style.css"), 0)
        self.addCleanup(os.chmod, self.path("style.css"), 0o644)
        with file_modes_bind_root():
            with self.assertRaises(PermissionError):  # whoever we are, it cannot be read
                open(self.path("style.css"), "rb").close()
            r = self.get("/style.css")
        self.assertIn(r.status, (403, 404))
        self.assertNotIn(b"body{}", r.body)

    def test_unexpectedError(self) -> None:
        """
        An unexpected I/O error is logged and answered with a bare 500.
        """
        self.denyOpen("style.css", OSError(5, "Input/output error"))
        r = self.get("/style.css")
        self.assertEqual(r.status, 500)
        self.assertNotIn(b"Traceback", r.body)
        self.assertNotIn(b"Input/output", r.body)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_fifoNeverOpened(self) -> None:
        """
        A fifo is refused from its C{stat}: opening it could block.
        """
        opened = self.countOpens()
        self.assertNotFound(self.get("/fifo"))
        self.assertEqual([p for p in opened if p.endswith(b"fifo")], [])

    def test_fifoSwappedIn(self) -> None:
        """
        Even if what we open turns out not to be a regular file (a race
        with the stat), we refuse it instead of blocking or streaming it.
        """
        realFstat = os.fstat

        def fifoFstat(fd: int) -> os.stat_result:
            st = realFstat(fd)
            values = list(st)
            values[0] = stat.S_IFIFO | 0o644
            return os.stat_result(values)

        self.patch(os, "fstat", fifoFstat)
        self.assertNotFound(self.get("/style.css"))
        self.assertEqual(_openFdsTo(self.path("style.css")), [])


class RedirectAndMethodTests(_Base):
    """
    Directory redirects and 405.
    """

    def test_redirect(self) -> None:
        r = self.get("/sub")
        self.assertEqual(r.status, 301)
        self.assertEqual(r.header("location"), "./sub/")
        self.assertNotIn(b"SUB-INDEX", r.body)

    def test_redirectKeepsQuery(self) -> None:
        r = self.get("/sub/deeper?x=1&y=%20")
        self.assertEqual(r.status, 301)
        self.assertEqual(r.header("location"), "./deeper/?x=1&y=%20")

    def test_redirectQuotesName(self) -> None:
        os.mkdir(self.path("a b:c"))
        r = self.get("/a%20b%3Ac")
        self.assertEqual(r.status, 301)
        self.assertEqual(r.header("location"), "./a%20b%3Ac/")

    def test_methodNotAllowed(self) -> None:
        for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
            r = request(self.site, method, "/small.html", body=b"x")
            self.assertEqual((method, r.status), (method, 405))
            self.assertEqual(r.header("allow"), "GET, HEAD")
            self.assertEqual(r.header("content-type"), "text/plain; charset=utf-8")
            self.assertNotIn(SMALL[:64], r.body)


class CacheTests(_Base):
    """
    The small-file LRU cache.
    """

    def test_hitDoesNotReopen(self) -> None:
        opened = self.countOpens()
        self.assertEqual(self.get("/small.html").body, SMALL)
        self.assertEqual(self.get("/small.html").body, SMALL)
        self.assertEqual(request(self.site, "HEAD", "/small.html").status, 200)
        self.assertEqual([p for p in opened if p.endswith(b"small.html")], [opened[0]])
        self.assertIn(os.fsencode(os.path.realpath(self.path("small.html"))), opened)

    def test_invalidatedByMtime(self) -> None:
        """
        Same size, new content, new mtime: the new content is served.
        """
        self.assertEqual(self.get("/small.html").body, SMALL)
        new = bytes(reversed(SMALL))
        st = os.stat(self.path("small.html"))
        with open(self.path("small.html"), "r+b") as f:
            f.write(new)
        os.utime(self.path("small.html"), ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        r = self.get("/small.html")
        self.assertEqual(r.body, new)
        self.assertEqual(r.header("content-length"), "4096")

    def test_invalidatedBySize(self) -> None:
        self.get("/small.html")
        st = os.stat(self.path("small.html"))
        with open(self.path("small.html"), "wb") as f:
            f.write(b"short")
        os.utime(self.path("small.html"), ns=(st.st_atime_ns, st.st_mtime_ns))
        r = self.get("/small.html")
        self.assertEqual((r.body, r.header("content-length")), (b"short", "5"))

    def test_invalidatedByInode(self) -> None:
        """
        A file replaced by rename (same size and mtime, new inode) is
        reloaded.
        """
        self.get("/small.html")
        st = os.stat(self.path("small.html"))
        new = bytes(reversed(SMALL))
        tmp = self.path("small.tmp")
        with open(tmp, "wb") as f:
            f.write(new)
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.rename(tmp, self.path("small.html"))
        self.assertEqual(self.get("/small.html").body, new)

    def test_lruBound(self) -> None:
        names = [f"f{i}.txt" for i in range(6)]
        for name in names:
            with open(self.path(name), "wb") as f:
                f.write(name.encode() * 250)  # 1500 bytes
        # What one entry costs (body plus bookkeeping), measured on a probe.
        probe = StaticFiles(self.rootPath)
        request(Site(_Root(probe)), "GET", "/" + names[0])
        cost = probe.cached_bytes
        self.assertGreaterEqual(cost, 1500)
        limit = 3 * cost + cost // 2  # room for three entries, not four
        files = StaticFiles(self.rootPath, cache_bytes=limit)
        site = Site(_Root(files))

        def cachedNames() -> list[str]:
            return [os.path.basename(os.fsdecode(p)) for p in files.cached_paths]

        for name in names:
            r = request(site, "GET", "/" + name)
            self.assertEqual(r.body, name.encode() * 250)
            self.assertLessEqual(files.cached_bytes, limit)
        self.assertEqual(cachedNames(), names[-3:])
        # A hit makes an entry the most recently used...
        request(site, "GET", "/" + names[3])
        self.assertEqual(cachedNames(), [names[4], names[5], names[3]])
        # ...so the next miss evicts the least recently used one.
        request(site, "GET", "/" + names[0])
        self.assertEqual(cachedNames(), [names[5], names[3], names[0]])
        self.assertLessEqual(files.cached_bytes, limit)

    def test_tooBigForCache(self) -> None:
        files = StaticFiles(self.rootPath, cache_bytes=3000, cache_file_max=8192)
        site = Site(_Root(files))
        self.assertEqual(request(site, "GET", "/small.html").body, SMALL)
        self.assertEqual(request(site, "GET", "/big.bin").body, BIG)
        self.assertEqual(files.cached_paths, [])
        self.assertEqual(files.cached_bytes, 0)
        self.assertEqual(request(site, "GET", "/app.js").body, b"console.log(1)")
        self.assertEqual(len(files.cached_paths), 1)

    def test_cacheDisabled(self) -> None:
        files = StaticFiles(self.rootPath, cache_bytes=0)
        site = Site(_Root(files))
        self.assertEqual(request(site, "GET", "/small.html").body, SMALL)
        self.assertEqual((files.cached_paths, files.cached_bytes), ([], 0))


class StreamingTests(_Base):
    """
    Large files: a push producer that respects backpressure and always
    closes its file.
    """

    def startSlow(self, path: str = "/big.bin", **headers: str) -> _SlowClient:
        # As with a real TCP transport, whose buffer limit (64 KiB) is smaller
        # than the default chunk (128 KiB), one chunk fills the buffer.
        client = _SlowClient(self.site, limit=CHUNK // 2)
        client.send(build_request("GET", path, headers))
        return client

    def test_backpressure(self) -> None:
        client = self.startSlow()
        transport = client.transport
        # Only about one chunk is buffered before the producer is paused.
        self.assertTrue(transport.full)
        self.assertLessEqual(len(transport.value()), CHUNK + 1024)
        self.assertEqual(len(_openFdsTo(self.path("big.bin"))), 1)
        rounds = 0
        while transport.drain():
            rounds += 1
            self.assertLessEqual(len(transport.value()), CHUNK + 1024)
            self.assertLess(rounds, 1000)
        self.assertGreaterEqual(rounds, len(BIG) // CHUNK - 1)
        [r] = parse_responses(transport.received)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, BIG)
        self.assertEqual(_openFdsTo(self.path("big.bin")), [])

    def test_backpressureRange(self) -> None:
        client = self.startSlow(Range="bytes=1000-700000")
        while client.transport.drain():
            pass
        [r] = parse_responses(client.transport.received)
        self.assertEqual(r.status, 206)
        self.assertEqual(r.body, BIG[1000:700001])
        self.assertEqual(_openFdsTo(self.path("big.bin")), [])

    def test_nextRequestAfterStream(self) -> None:
        """
        The producer is unregistered when done, so the connection goes on.
        """
        client = self.startSlow()
        client.send(build_request("GET", "/small.html"))
        while client.transport.drain():
            pass
        responses = parse_responses(client.transport.received + client.transport.value())
        self.assertEqual([r.status for r in responses], [200, 200])
        self.assertEqual(responses[0].body, BIG)
        self.assertEqual(responses[1].body, SMALL)

    def test_disconnectMidStream(self) -> None:
        client = self.startSlow()
        client.transport.drain()
        self.assertEqual(len(_openFdsTo(self.path("big.bin"))), 1)
        client.close()
        self.assertEqual(_openFdsTo(self.path("big.bin")), [])
        # A late resume (the transport does not know yet) writes nothing.
        before = client.transport.value()
        client.transport.full = True
        client.transport.drain()
        self.assertEqual(client.transport.value(), b"")
        self.assertNotIn(BIG[-64:], before)

    def test_stopProducing(self) -> None:
        """
        The channel's C{stopProducing} (before it drops the connection)
        releases the file.
        """
        client = self.startSlow()
        client.transport.producer.stopProducing()
        self.assertEqual(_openFdsTo(self.path("big.bin")), [])
        client.close()

    def test_truncatedWhileStreaming(self) -> None:
        """
        If the file shrinks under us the promised length cannot be met: the
        connection is dropped and the file closed.
        """
        client = self.startSlow()
        os.truncate(self.path("big.bin"), 1000)
        client.transport.drain()
        self.assertTrue(client.transport.disconnecting)
        self.assertEqual(_openFdsTo(self.path("big.bin")), [])
        client.close()
        self.assertLess(len(client.transport.received), len(BIG))

    def test_readErrorWhileStreaming(self) -> None:
        client = self.startSlow()

        def failingPread(fd: int, n: int, offset: int) -> bytes:
            raise OSError(5, "Input/output error")

        self.patch(os, "pread", failingPread)
        client.transport.drain()
        self.assertTrue(client.transport.disconnecting)
        self.assertEqual(_openFdsTo(self.path("big.bin")), [])
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        client.close()
