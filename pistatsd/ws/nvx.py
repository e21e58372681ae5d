"""Autobahn's native WebSocket helpers, used without their build-time declarations.

Autobahn validates incoming text as UTF-8 and unmasks client frames with two
small C extensions (NVX: C{_nvx_utf8validator}, C{_nvx_xormasker}), compiled
by cffi when Autobahn is installed.  Its Python wrappers for them
(C{autobahn.nvx._utf8validator}, C{autobahn.nvx._xormasker}) are also their
cffi build scripts: importing them declares the C functions again with
C{FFI.cdef}, which loads cffi's C parser (pycparser) and its tables, about
3 MiB of an idle daemon, to describe functions the compiled extensions
already describe themselves.

This module offers the same two wrappers over the compiled extensions' own
C{ffi} and C{lib}; L{pistatsd.leftout} has the daemon import it under the
wrappers' names.  Autobahn imports the wrappers only when the extensions are
built (C{autobahn.websocket.USES_NVX}), so the extensions are imported here
at first use, as Autobahn's own wrappers do.
"""

from __future__ import annotations

from typing import Protocol


class _Lib(Protocol):
    """The C functions of C{_nvx_utf8validator} and C{_nvx_xormasker} used here."""

    def nvx_utf8vld_new(self) -> object: ...
    def nvx_utf8vld_free(self, vld: object) -> None: ...
    def nvx_utf8vld_reset(self, vld: object) -> None: ...
    def nvx_utf8vld_validate(self, vld: object, data: bytes, length: int) -> int: ...
    def nvx_utf8vld_get_current_index(self, vld: object) -> int: ...
    def nvx_utf8vld_get_total_index(self, vld: object) -> int: ...
    def nvx_xormask_new(self, mask: object) -> object: ...
    def nvx_xormask_free(self, masker: object) -> None: ...
    def nvx_xormask_reset(self, masker: object) -> None: ...
    def nvx_xormask_pointer(self, masker: object) -> int: ...
    def nvx_xormask_process(self, masker: object, data: object, length: int) -> None: ...
    def nvx_xormask_set_impl(self, masker: object, impl: int) -> int: ...


#: Payloads from this length are unmasked with the SIMD implementation (Autobahn's choice).
SIMD_FROM = 128
_SCALAR, _SIMD = 1, 2


class Utf8Validator:
    """Incremental UTF-8 validation of a message's fragments, in C.

    L{validate} answers as Autobahn's validators do: whether the text so far
    is valid, whether it ends on a whole code point, and the byte indexes
    reached in this fragment and in the message.
    """

    __slots__ = ("_lib", "_vld")

    def __init__(self) -> None:
        from _nvx_utf8validator import ffi, lib

        self._lib: _Lib = lib
        self._vld = ffi.gc(lib.nvx_utf8vld_new(), lib.nvx_utf8vld_free)

    def reset(self) -> None:
        self._lib.nvx_utf8vld_reset(self._vld)

    def validate(self, ba: bytes) -> tuple[bool, bool, int, int]:
        lib, vld = self._lib, self._vld
        res = lib.nvx_utf8vld_validate(vld, ba, len(ba))
        return (
            res >= 0,
            res == 0,
            lib.nvx_utf8vld_get_current_index(vld),
            lib.nvx_utf8vld_get_total_index(vld),
        )


class XorMasker:
    """Unmasks (or masks) one frame's payload, chunk by chunk, in C.

    The mask's position carries over from one L{process} call to the next,
    as frames arrive in pieces.
    """

    __slots__ = ("_ffi", "_lib", "_mask", "_masker", "_simd")

    def __init__(self, mask: bytes, simd: bool) -> None:
        if len(mask) != 4:
            raise ValueError("a WebSocket mask is 4 bytes")
        from _nvx_xormasker import ffi, lib

        self._ffi = ffi
        self._lib: _Lib = lib
        self._simd = simd
        # The C masker keeps a pointer to the mask: it must live as long.
        self._mask = ffi.new("uint8_t[4]", mask)
        self._masker = ffi.gc(lib.nvx_xormask_new(self._mask), lib.nvx_xormask_free)
        lib.nvx_xormask_set_impl(self._masker, _SIMD if simd else _SCALAR)

    def pointer(self) -> int:
        return self._lib.nvx_xormask_pointer(self._masker)

    def reset(self) -> None:
        self._lib.nvx_xormask_reset(self._masker)

    def process(self, data: bytes) -> bytes:
        buffer = bytearray(data)
        target = self._ffi.from_buffer("uint8_t[]", buffer)
        self._lib.nvx_xormask_process(self._masker, target, len(buffer))
        return bytes(buffer)


def create_xor_masker(mask: bytes, length: int | None = None) -> XorMasker:
    """A masker for one frame: scalar for short payloads, SIMD from L{SIMD_FROM} bytes."""
    return XorMasker(mask, simd=length is not None and length >= SIMD_FROM)
