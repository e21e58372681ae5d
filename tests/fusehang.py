"""A FUSE filesystem whose C{statfs} hangs until it is told to answer: a stale mount, for real.

Run as root: C{python fusehang.py MOUNTPOINT}.  It moves into a mount
namespace of its own (so nothing else on the machine, a C{df} or another
test run, can trip over the hung mount), mounts a FUSE filesystem of type
C{fuse.hangfs} at MOUNTPOINT by speaking the kernel's FUSE protocol on
C{/dev/fuse} itself (no libfuse, no fusermount), and prints C{ready}.  From
then on every C{statfs} blocks until a line C{release} arrives on stdin;
C{hold} makes them block again; end of input (or C{quit}) unmounts and exits.
Other processes reach the mount through C{/proc/<pid>/root/MOUNTPOINT} and see
its mount table in C{/proc/<pid>/mountinfo}, or join the namespace
(C{nsenter --mount=/proc/<pid>/ns/mnt}).

The protocol subset is the one a C{statfs} needs: C{INIT} (answered as
protocol 7.19, which the kernel accepts from any server), C{GETATTR} of the
root directory, C{STATFS}; every other request is answered C{ENOSYS} or
C{ENOENT}.  Layouts are those of C{<linux/fuse.h>}.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys
import threading

CLONE_NEWNS = 0x00020000
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 2, 4, 16384, 1 << 18
MNT_DETACH = 2

FUSE_LOOKUP, FUSE_FORGET, FUSE_GETATTR, FUSE_STATFS = 1, 2, 3, 17
FUSE_INIT, FUSE_INTERRUPT, FUSE_DESTROY, FUSE_BATCH_FORGET = 26, 36, 38, 42
NO_REPLY = {FUSE_FORGET, FUSE_INTERRUPT, FUSE_BATCH_FORGET}

IN_HEADER = struct.Struct("<IIQQIIII")  # len, opcode, unique, nodeid, uid, gid, pid, padding
OUT_HEADER = struct.Struct("<IiQ")  # len, error, unique
INIT_OUT = struct.Struct("<IIIIHHI")  # major, minor, max_readahead, flags, max_bg, cong, max_write
ATTR_OUT = struct.Struct("<QII" + "QQQQQQIIIIIIIIII")  # valid, nsec, dummy, fuse_attr
STATFS_OUT = struct.Struct("<QQQQQIII" + "I" * 7)  # blocks bfree bavail files ffree bsize...

BLOCKS, BFREE, BAVAIL, FILES, FFREE, BSIZE = 1000, 400, 300, 100, 60, 4096
"""What C{statfs} says once released: 4 MB, 60 % used of what may be used."""

libc = ctypes.CDLL(None, use_errno=True)


def check(result: int, what: str) -> None:
    if result != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def reply(fd: int, unique: int, payload: bytes = b"", error: int = 0) -> None:
    try:
        os.write(fd, OUT_HEADER.pack(OUT_HEADER.size + len(payload), -error, unique) + payload)
    except OSError as e:
        if e.errno != errno.ENOENT:  # the request was interrupted meanwhile
            raise


def serve(fd: int, answer: threading.Event) -> None:
    """Answer requests until the kernel closes the connection (unmount)."""
    while True:
        try:
            data = os.read(fd, 1 << 20 | 4096)
        except OSError as e:
            if e.errno in (errno.EINTR, errno.EAGAIN, errno.ENOENT):
                continue
            return  # ENODEV: unmounted
        _, opcode, unique, nodeid, *_ = IN_HEADER.unpack_from(data)
        if opcode in NO_REPLY:
            continue
        if opcode == FUSE_INIT:
            # Whatever the kernel offers (7.x), 7.19 is answered: the kernel
            # speaks every older minor version, so this works on any kernel.
            reply(fd, unique, INIT_OUT.pack(7, 19, 0, 0, 12, 9, 1 << 17))
        elif opcode == FUSE_GETATTR and nodeid == 1:
            attr = (1, 0, 0, 0, 0, 0, 0, 0, 0, 0o40755, 2, 0, 0, 0, 4096, 0)
            reply(fd, unique, ATTR_OUT.pack(1, 0, 0, *attr))
        elif opcode == FUSE_STATFS:
            # Blocks this thread, so every later request waits too: a stuck server.
            answer.wait()
            reply(fd, unique, STATFS_OUT.pack(BLOCKS, BFREE, BAVAIL, FILES, FFREE, BSIZE,
                                              255, BSIZE, *([0] * 7)))  # fmt: skip
        elif opcode == FUSE_DESTROY:
            reply(fd, unique)
            return
        elif opcode == FUSE_LOOKUP:
            reply(fd, unique, error=errno.ENOENT)
        else:
            reply(fd, unique, error=errno.ENOSYS)


def main(mount_point: str) -> None:
    check(libc.unshare(CLONE_NEWNS), "unshare")
    check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "making / private")
    fd = os.open("/dev/fuse", os.O_RDWR)
    options = f"fd={fd},rootmode=40000,user_id=0,group_id=0,allow_other".encode()
    check(
        libc.mount(b"hangfs", mount_point.encode(), b"fuse.hangfs", MS_NOSUID | MS_NODEV, options),
        "mount",
    )
    answer = threading.Event()
    threading.Thread(target=serve, args=(fd, answer), daemon=True).start()
    print(f"ready {os.getpid()}", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "release":
            answer.set()
        elif command == "hold":
            answer.clear()
        elif command == "quit":
            break
        print(command, flush=True)
    answer.set()
    libc.umount2(mount_point.encode(), MNT_DETACH)
    os.close(fd)  # aborts the connection: anything still waiting fails with ENOTCONN


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except OSError as e:
        print(f"cannot mount: {e}", flush=True)
        sys.exit(3)
