"""The newest snapshot, kept by a sampler observer for parts built before the sampler.

The InfluxDB reporter reads the newest snapshot at each report, and the
alert engine (a sampler observer, so built before the sampler) tells the
reporter of alert changes: the reporter cannot wait for the sampler to
exist.  A L{LatestSnapshot} is built first, given to the sampler as an
observer and to the reporter as its source, so nothing is changed after
it is built.
"""

from __future__ import annotations

from collections.abc import Mapping

from pistatsd.jsontypes import JSONMapping


class LatestSnapshot:
    """The last snapshot the sampler published (shared: never mutated)."""

    def __init__(self) -> None:
        self._latest: JSONMapping | None = None

    def observe(self, snapshot: Mapping[str, object]) -> None:
        """A sampler observer: keep C{snapshot}."""
        self._latest = snapshot

    @property
    def latest(self) -> JSONMapping:
        """The newest snapshot, like L{pistatsd.sampler.Sampler.latest}.

        @raise RuntimeError: before the first sample.
        """
        if self._latest is None:
            raise RuntimeError("no snapshot yet: the sampler has not sampled")
        return self._latest
