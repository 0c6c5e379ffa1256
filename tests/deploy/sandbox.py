"""Run a command under the seccomp part of a systemd unit's hardening, without systemd.

systemd is not PID 1 on the build machines, so the unit cannot be started for real. The
options that can break a numeric runtime are the seccomp-based ones: MemoryDenyWriteExecute=
(a JIT needs writable+executable memory), SystemCallFilter= (an unusual syscall) and
RestrictAddressFamilies=. This helper reads those settings from the unit file and installs
the same rules systemd installs (src/shared/seccomp-util.c) with libseccomp, then execs the
command, so the daemon can be run under them in a test:

    python sandbox.py UNIT_FILE -- COMMAND [ARG...]

Filters stack in the kernel and the most restrictive verdict wins, which is how systemd's
separate filters combine too. The file-system, user and namespace options are not emulated.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import socket
import subprocess
import sys
from functools import lru_cache

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ = 4, 6, 7
PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000


def act_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def _lib():
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(ArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


class Filter:
    def __init__(self, lib, default_action: int) -> None:
        self.lib = lib
        self.ctx = lib.seccomp_init(default_action)
        if not self.ctx:
            raise OSError("seccomp_init failed")

    def add(self, action: int, name: str, *conditions: tuple[int, int, int, int]) -> bool:
        number = self.lib.seccomp_syscall_resolve_name(name.encode())
        if number < 0:
            return False  # not a syscall on this architecture (systemd skips these too)
        array = (ArgCmp * max(len(conditions), 1))(*[ArgCmp(*c) for c in conditions])
        return self.lib.seccomp_rule_add_array(self.ctx, action, number, len(conditions), array) == 0

    def load(self) -> None:
        rc = self.lib.seccomp_load(self.ctx)
        self.lib.seccomp_release(self.ctx)
        if rc != 0:
            raise OSError(-rc, f"seccomp_load: {os.strerror(-rc)}")


# -- reading the unit -----------------------------------------------------------------------

def service_settings(unit_text: str) -> dict[str, list[str]]:
    """Key -> values (in order) of the [Service] section; continuation lines joined."""
    settings: dict[str, list[str]] = {}
    section = None
    for raw in unit_text.replace("\\\n", " ").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]" and "=" in line:
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


@lru_cache(maxsize=None)
def expand(name: str) -> frozenset[str]:
    """A syscall name, or a @group expanded recursively with systemd's own table."""
    if not name.startswith("@"):
        return frozenset([name])
    out = subprocess.run(["systemd-analyze", "syscall-filter", name], check=True, capture_output=True,
                         text=True).stdout
    names: set[str] = set()
    for line in out.splitlines()[1:]:
        item = line.strip()
        if item and not item.startswith("#"):
            names |= expand(item)
    return frozenset(names)


def allowed_syscalls(values: list[str]) -> set[str] | None:
    """SystemCallFilter= semantics: the first entry decides allow- or deny-list mode; later
    '~' entries remove from an allow list. None when no filter is set."""
    allowed: set[str] | None = None
    for value in values:
        deny = value.startswith("~")
        names = set().union(*(expand(n) for n in value.lstrip("~").split()))
        if allowed is None:
            if deny:
                raise NotImplementedError("deny-list-first SystemCallFilter= is not emulated")
            allowed = names
        elif deny:
            allowed -= names
        else:
            allowed |= names
    return allowed


def truthy(values: list[str] | None) -> bool:
    return bool(values) and values[-1].lower() in ("yes", "true", "1", "on")


def install(unit_text: str) -> list[str]:
    """Install the unit's seccomp rules on this process; returns what was applied."""
    lib = _lib()
    settings = service_settings(unit_text)
    applied = []
    error = settings.get("SystemCallErrorNumber", ["EPERM"])[-1]
    if truthy(settings.get("MemoryDenyWriteExecute")):
        f = Filter(lib, SCMP_ACT_ALLOW)
        deny = act_errno(errno.EPERM)
        wx = PROT_WRITE | PROT_EXEC
        f.add(deny, "mmap", (2, SCMP_CMP_MASKED_EQ, wx, wx))
        f.add(deny, "mprotect", (2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC))
        f.add(deny, "pkey_mprotect", (2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC))
        f.add(deny, "shmat", (2, SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC))
        f.load()
        applied.append("MemoryDenyWriteExecute")
    families = settings.get("RestrictAddressFamilies")
    if families:
        keep = sorted(int(getattr(socket, name)) for name in " ".join(families).split())
        f = Filter(lib, SCMP_ACT_ALLOW)
        deny = act_errno(errno.EAFNOSUPPORT)
        for family in range(0, max(keep)):
            if family not in keep:
                f.add(deny, "socket", (0, SCMP_CMP_EQ, family, 0))
        f.add(deny, "socket", (0, SCMP_CMP_GT, max(keep), 0))
        f.load()
        applied.append(f"RestrictAddressFamilies ({' '.join(families)})")
    # Last, so that loading the filters above is not itself filtered.
    allowed = allowed_syscalls(settings.get("SystemCallFilter", []))
    if allowed is not None:
        f = Filter(lib, act_errno(getattr(errno, error)))
        count = sum(f.add(SCMP_ACT_ALLOW, name) for name in sorted(allowed))
        f.load()
        applied.append(f"SystemCallFilter ({count} syscalls allowed, others {error})")
    return applied


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0]) as handle:
        applied = install(handle.read())
    print(f"sandbox: {', '.join(applied) or 'nothing to apply'}", file=sys.stderr, flush=True)
    os.execvp(argv[2], argv[2:])
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
