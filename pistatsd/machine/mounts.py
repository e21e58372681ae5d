"""Which mounted filesystems are worth reporting: C{/proc/self/mountinfo}, filtered.

A Linux machine has dozens of mounts, most of them the kernel's own
(C{proc}, C{sysfs}, cgroups, C{devpts}...), containers' layers (C{overlay}),
snap packages (C{squashfs} loops) and systemd's per-user or per-service
C{tmpfs}.  A Raspberry Pi owner cares about C{/}, C{/boot/firmware}, USB
disks and network shares.  The rules, in order:

 1. Pseudo filesystems (L{EXCLUDED_TYPES}) and anything mounted below
    C{/proc}, C{/sys} or C{/dev} are left out.
 2. C{tmpfs} is kept only where filling it breaks the machine or loses
    data: C{/run} itself, C{/tmp}, and C{tmpfs} mounted by the owner (e.g.
    log2ram's C{/var/log}).  The ones systemd makes below C{/run}
    (C{/run/lock}, C{/run/user/1000}, C{/run/credentials/...}) are left
    out: they are tiny, per-session, and many (node_exporter and Telegraf
    leave out most C{tmpfs} for the same reason; C{/dev/shm} goes by rule 1).
 3. A mount point mounted over (systemd's C{ProtectHome=}, an automounter)
    is reported once, as its top mount: that is what C{statvfs} measures.
 4. Each filesystem (device number) is reported once: bind mounts (same
    device, another C{root}) and a device mounted twice are the same space.
    The mount of the filesystem's own root wins, else the first mounted.

C{mountinfo} is used rather than C{/proc/mounts} (or psutil, which reads
that) because only C{mountinfo} says which mounts are bind mounts (the
C{root} field) and which device each one is (C{major:minor}).

Reading C{mountinfo} (procfs) and a C{/sys/dev/block} link never touches the
filesystems themselves, so this runs on the reactor thread; C{statvfs},
which does, is left to L{pistatsd.machine.filesystems}.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from attrs import frozen

EXCLUDED_TYPES: frozenset[str] = frozenset(
    {
        "autofs",  # a trigger: statvfs on it would mount what it stands for
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "devtmpfs",
        "efivarfs",
        "fusectl",
        "hugetlbfs",
        "mqueue",
        "nfsd",
        "nsfs",
        "overlay",  # container layers: the space is the underlying filesystem's
        "proc",
        "pstore",
        "ramfs",
        "rpc_pipefs",
        "securityfs",
        "selinuxfs",
        "squashfs",  # snap packages and live images: always full, read-only
        "sysfs",
        "tracefs",
        # FUSE filesystems that are views, not storage:
        "fuse.gvfsd-fuse",
        "fuse.portal",
        "fuse.lxcfs",
        "fuse.snapfuse",
    }
)
"""Filesystem types that hold no data of their own."""

LOCAL_TYPES: frozenset[str] = frozenset(
    {
        "bcachefs",
        "btrfs",
        "exfat",
        "ext2",
        "ext3",
        "ext4",
        "f2fs",
        "hfsplus",
        "iso9660",
        "jfs",
        "msdos",
        "nilfs2",
        "ntfs3",
        "reiserfs",
        "tmpfs",
        "udf",
        "vfat",
        "xfs",
        "zfs",
    }
)
"""Types whose C{statvfs} answers from memory: measured together, one call per sample.

Everything else (NFS, CIFS, FUSE including C{fuseblk} NTFS, 9p, Ceph, and
any type not listed) may wait on a server or a user-space daemon, so each
such mount gets a call of its own, which may time out without holding up
the rest.
"""

_PSEUDO_TREES = ("/proc", "/sys", "/dev")
_TMPFS_SYSTEM_TREE = "/run/"
_ESCAPE = re.compile(r"\\([0-7]{3})")


@frozen
class Mount:
    """One line of C{mountinfo}: what is mounted where."""

    mount_id: int
    device_number: str
    """C{major:minor}: the same for every mount of one filesystem."""
    root: str
    """The directory of the filesystem mounted here: C{/} unless a bind mount."""
    mount_point: str
    fstype: str
    source: str
    read_only: bool
    """The filesystem is read-only (its super-block flag, whatever this mount's view)."""
    super_options: str = ""
    """The filesystem's own options (the last field), e.g. C{hidepid=invisible} of procfs."""

    @property
    def fuse(self) -> bool:
        """A FUSE filesystem: a stuck server holds its callers unkillably (see
        L{pistatsd.machine.statvfs_helper})."""
        return self.fstype in ("fuse", "fuseblk") or self.fstype.startswith("fuse.")

    @property
    def local(self) -> bool:
        """Whether C{statvfs} on it can be trusted to answer (see L{LOCAL_TYPES})."""
        return self.fstype in LOCAL_TYPES


def unescape(field: str) -> str:
    """Decode the kernel's octal escapes (C{\\040} space, C{\\011} tab, C{\\012} newline,
    C{\\134} backslash); other characters, UTF-8 included, are written as they are."""
    if "\\" not in field:
        return field
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """Every well-formed line of C{mountinfo} (see proc(5)), in the kernel's order.

    Malformed lines are skipped: a future kernel adding fields must not cost
    the whole table.
    """
    mounts: list[Mount] = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            separator = fields.index("-", 6)
            mount_id = int(fields[0])
            device_number, root, mount_point = fields[2], fields[3], fields[4]
            fstype, source, super_options = fields[separator + 1 : separator + 4]
        except (ValueError, IndexError):
            continue
        # The filesystem's own flag, not this mount's: systemd's ProtectSystem=strict
        # makes every mount of the daemon's namespace read-only, while the question
        # is whether the disk is (mounted ro, or remounted ro after errors).
        read_only = "ro" in super_options.split(",")
        mounts.append(
            Mount(
                mount_id=mount_id,
                device_number=device_number,
                root=unescape(root),
                mount_point=unescape(mount_point),
                fstype=fstype,
                source=unescape(source),
                read_only=read_only,
                super_options=super_options,
            )
        )
    return mounts


def _below(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree + "/")


def wanted(mount: Mount) -> bool:
    """Rules 1 and 2 of the module docstring: does this mount hold data worth reporting?"""
    if mount.fstype in EXCLUDED_TYPES:
        return False
    if any(_below(mount.mount_point, tree) for tree in _PSEUDO_TREES):
        return False
    return not (mount.fstype == "tmpfs" and mount.mount_point.startswith(_TMPFS_SYSTEM_TREE))


def select_filesystems(mounts: Iterable[Mount]) -> list[Mount]:
    """The mounts to report, one per filesystem, in mount order (rules 1 to 4)."""
    mounts = list(mounts)
    # Rule 3: a later mount on the same mount point hides the earlier ones.
    top: dict[str, Mount] = {}
    for mount in mounts:
        top[mount.mount_point] = mount
    visible = [m for m in mounts if top[m.mount_point] is m and wanted(m)]
    # Rule 4: one mount per device; its root mount first, else the first mounted.
    chosen: dict[str, Mount] = {}
    for mount in visible:
        current = chosen.get(mount.device_number)
        if current is None or (mount.root == "/" and current.root != "/"):
            chosen[mount.device_number] = mount
    keep = set(map(id, chosen.values()))
    return [m for m in visible if id(m) in keep]


def device_name(mount: Mount, sys_root: str = "/sys") -> str:
    """The device to show for a mount: its C{source}, with C{/dev/root} made real.

    Older Raspberry Pi kernels (and any booted with C{root=/dev/mmcblk0p2}
    and no initramfs) list the root filesystem as C{/dev/root}, which names
    no file; sysfs knows the device behind the number.
    """
    if mount.source != "/dev/root":
        return mount.source
    try:
        target = os.readlink(os.path.join(sys_root, "dev", "block", mount.device_number))
    except OSError:
        return mount.source
    return "/dev/" + os.path.basename(target)
