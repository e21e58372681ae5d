"""pistatsd's wrappers of Autobahn's compiled helpers answer exactly as Autobahn's own.

Autobahn's wrappers (loaded normally in the test process) are the reference:
both call the same compiled functions, and the daemon swaps one for the
other (L{pistatsd.footprint}).
"""

from __future__ import annotations

import os

from autobahn.nvx import _utf8validator as autobahn_utf8
from autobahn.nvx import _xormasker as autobahn_xor
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.ws import nvx

MASK = b"\x9a\x01\xff\x37"

#: Texts cut anywhere, whole, invalid, overlong and surrogate encodings among them.
TEXTS = [
    b"",
    b"plain ascii",
    "π ≈ 3.14159, ünïcödé, 🥧".encode(),
    b"\xff",
    b"\xc0\xaf",  # overlong "/"
    b"\xed\xa0\x80",  # a UTF-16 surrogate
    "€".encode()[:2],  # a code point cut short
    b"ok\xf4\x90\x80\x80",  # beyond U+10FFFF
]


class XorMaskerTests(SynchronousTestCase):
    def test_masks_as_autobahn_does_in_one_piece_and_in_many(self) -> None:
        for length in (0, 1, 3, 127, 128, 129, 4096, 70000):
            data = os.urandom(length)
            ours = nvx.create_xor_masker(MASK, length)
            theirs = autobahn_xor.create_xor_masker(MASK, length)
            pieces = [data[:5], data[5:130], data[130:]]
            self.assertEqual(
                [ours.process(p) for p in pieces], [theirs.process(p) for p in pieces], length
            )
            self.assertEqual(ours.pointer(), theirs.pointer())
            self.assertEqual(ours.pointer(), length)

    def test_masking_twice_gives_the_data_back(self) -> None:
        data = os.urandom(1000)
        masked = nvx.create_xor_masker(MASK, 1000).process(data)
        self.assertNotEqual(masked, data)
        self.assertEqual(nvx.create_xor_masker(MASK, 1000).process(masked), data)

    def test_reset_starts_the_mask_again(self) -> None:
        masker = nvx.create_xor_masker(MASK)
        first = masker.process(b"abcdef")
        masker.reset()
        self.assertEqual(masker.pointer(), 0)
        self.assertEqual(masker.process(b"abcdef"), first)

    def test_short_payloads_scalar_long_ones_simd(self) -> None:
        self.assertFalse(nvx.create_xor_masker(MASK)._simd)
        self.assertFalse(nvx.create_xor_masker(MASK, nvx.SIMD_FROM - 1)._simd)
        self.assertTrue(nvx.create_xor_masker(MASK, nvx.SIMD_FROM)._simd)

    def test_a_mask_is_four_bytes(self) -> None:
        for mask in (b"", b"abc", b"abcde"):
            self.assertRaises(ValueError, nvx.create_xor_masker, mask)


class Utf8ValidatorTests(SynchronousTestCase):
    def test_answers_as_autobahn_does_whole_and_cut_anywhere(self) -> None:
        for text in TEXTS:
            for cut in range(len(text) + 1):
                ours, theirs = nvx.Utf8Validator(), autobahn_utf8.Utf8Validator()
                for piece in (text[:cut], text[cut:]):
                    self.assertEqual(ours.validate(piece), theirs.validate(piece), (text, cut))

    def test_valid_invalid_and_unfinished(self) -> None:
        text = "π≈3".encode()
        self.assertEqual(nvx.Utf8Validator().validate(text), (True, True, len(text), len(text)))
        self.assertFalse(nvx.Utf8Validator().validate(b"\xff")[0])
        unfinished = nvx.Utf8Validator().validate("€".encode()[:2])
        self.assertEqual(unfinished[:2], (True, False))

    def test_reset_starts_a_new_message(self) -> None:
        validator = nvx.Utf8Validator()
        self.assertFalse(validator.validate(b"\xff")[0])
        validator.reset()
        self.assertEqual(validator.validate(b"ok"), (True, True, 2, 2))
