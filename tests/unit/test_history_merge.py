"""The pure ring/store merge: axes, buckets and the overlay rule."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pistatsd.history.api import SeriesData
from pistatsd.history.merge import Axis, axis_of, bucket, empty, overlay, ring_step


class AxisTests(SynchronousTestCase):
    def test_covering_aligns_to_step(self) -> None:
        axis = Axis.covering(1005, 1061, 10)
        self.assertEqual(axis, Axis(1000.0, 10, 7))
        self.assertEqual(axis.times(), [1000.0 + 10 * i for i in range(7)])

    def test_covering_never_empty(self) -> None:
        self.assertEqual(Axis.covering(1000, 1000.5, 10).count, 1)

    def test_index(self) -> None:
        axis = Axis(1000.0, 10, 3)
        self.assertEqual(
            [axis.index(t) for t in (999.9, 1000, 1009.9, 1010, 1029.9, 1030)],
            [None, 0, 0, 1, 2, None],
        )

    def test_ring_step(self) -> None:
        self.assertEqual(ring_step(0, 3600, 600, 1.0), 6)
        self.assertEqual(ring_step(0, 900, 600, 1.0), 2)  # 1.5 s rounds up
        self.assertEqual(ring_step(0, 60, 600, 1.0), 1)  # never finer than a sample
        self.assertEqual(ring_step(0, 60, 600, 2.5), 3)
        self.assertEqual(ring_step(0, 60, 600, 0.25), 1)

    def test_axis_of_store_answer(self) -> None:
        data = SeriesData(990.0, 1050.0, 60, [960.0, 1020.0], {})
        self.assertEqual(axis_of(data), Axis(960.0, 60, 2))


class BucketTests(SynchronousTestCase):
    def test_min_avg_max_and_gaps(self) -> None:
        axis = Axis(0.0, 10, 3)
        samples = [(0.0, {"a": 1.0}), (5.0, {"a": 3.0, "b": 7.0}), (25.0, {"a": -2.0})]
        values = bucket([*samples, (30.0, {"a": 99.0}), (-1.0, {"a": 99.0})], ["a", "b"], axis)
        self.assertEqual(
            values["a"],
            {"min": [1.0, None, -2.0], "avg": [2.0, None, -2.0], "max": [3.0, None, -2.0]},
        )
        self.assertEqual(
            values["b"],
            {"min": [7.0, None, None], "avg": [7.0, None, None], "max": [7.0, None, None]},
        )


class OverlayTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.axis = Axis(0.0, 10, 4)

    def series(self, *avg: float | None) -> dict[str, list[float | None]]:
        return {"min": list(avg), "avg": list(avg), "max": list(avg)}

    def test_ring_wins_where_it_covers_whole_buckets(self) -> None:
        store = {"a": self.series(1.0, 1.0, 1.0, None)}
        ring = {"a": self.series(None, 5.0, 5.0, 5.0)}
        merged = overlay(store, ring, self.axis, ring_from=5.0)
        # bucket 0 starts before the ring: the store's; 1..3 start in it: the ring's
        self.assertEqual(merged["a"]["avg"], [1.0, 5.0, 5.0, 5.0])

    def test_partial_bucket_prefers_store_then_ring(self) -> None:
        store = {"a": self.series(None, 1.0, None, None)}
        ring = {"a": self.series(4.0, 5.0, 6.0, None)}
        merged = overlay(store, ring, self.axis, ring_from=15.0)
        self.assertEqual(merged["a"]["avg"], [4.0, 1.0, 6.0, None])

    def test_empty_ring(self) -> None:
        store = {"a": self.series(1.0, 2.0, 3.0, 4.0)}
        merged = overlay(store, empty(["a"], 4), self.axis, ring_from=None)
        self.assertEqual(merged, store)
