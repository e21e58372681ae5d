"""HTTP content negotiation: just enough of RFC 9110 §12.5.1 for our handful of media types."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=256)
def _parse_accept(header: bytes) -> tuple[tuple[str, str, float], ...]:
    """Parse an C{Accept} header into (type, subtype, quality) ranges.

    Cached because browsers and load tools send the same few headers over and over.
    """
    ranges = []
    for item in header.decode("latin-1").split(","):
        parts = item.strip().split(";")
        media = parts[0].strip().lower()
        if "/" not in media:
            continue
        main, _, sub = media.partition("/")
        quality = 1.0
        for param in parts[1:]:
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = max(0.0, min(1.0, float(value)))
                except ValueError:
                    quality = 0.0
        ranges.append((main, sub, quality))
    return tuple(ranges)


def _quality(ranges: tuple[tuple[str, str, float], ...], offer: str) -> tuple[float, int]:
    """The quality of C{offer} and how specific the range that granted it was."""
    main, _, sub = offer.partition("/")
    best: tuple[int, float] = (-1, 0.0)
    for r_main, r_sub, quality in ranges:
        if r_main == main and r_sub == sub:
            specificity = 2
        elif r_main == main and r_sub == "*":
            specificity = 1
        elif r_main == "*" and r_sub == "*":
            specificity = 0
        else:
            continue
        if specificity > best[0]:
            best = (specificity, quality)
    return best[1], best[0]


def preferred(accept: bytes | None, offers: tuple[str, ...]) -> str:
    """The offer the client prefers; the first offer when it does not say.

    Ties in quality go to the more specifically named type, then to offer order,
    so C{*/*} (curl, load tools) gets the first offer.
    """
    if not accept:
        return offers[0]
    ranges = _parse_accept(accept)
    if not ranges:
        return offers[0]
    best_offer, best_key = offers[0], (0.0, -1, 0)
    for index, offer in enumerate(offers):
        quality, specificity = _quality(ranges, offer)
        key = (quality, specificity, -index)
        if quality > 0 and key > best_key:
            best_offer, best_key = offer, key
    return best_offer


def lists_html(accept: bytes | None) -> bool:
    """Whether the client names C{text/html} explicitly (browsers do; curl and C{*/*} do not)."""
    if not accept:
        return False
    return any(
        main == "text" and sub == "html" and quality > 0
        for main, sub, quality in _parse_accept(accept)
    )
