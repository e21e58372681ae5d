"""Which slot holds which bucket (L{pistatsd.history.slots}): a ring of fixed size."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pistatsd.history.slots import Slots


class SlotTests(SynchronousTestCase):
    def test_ring_order_then_the_oldest_slot(self) -> None:
        slots = Slots(3)
        self.assertEqual([slots.place(b) for b in (10, 20, 30)], [(0, None), (1, None), (2, None)])
        self.assertEqual(slots.place(20), (1, None))  # a stored bucket keeps its slot
        self.assertEqual(slots.place(40), (0, 10))
        self.assertEqual(slots.place(50), (1, 20))
        self.assertEqual(list(slots.buckets), [30, 40, 50])
        self.assertEqual(slots.ranges(30, 60), [(0, 2)])
        self.assertEqual(slots.ranges(40, 60), [(0, 1)])
        self.assertEqual(slots.ranges(0, 30), [])

    def test_runs_across_the_end_of_the_ring(self) -> None:
        slots = Slots(4, [(2, 30), (3, 40), (0, 50)])
        self.assertEqual(slots.ranges(30, 60), [(0, 0), (2, 3)])
        self.assertEqual(slots.place(60), (1, None))  # after the newest (50, slot 0)

    def test_clock_back_fills_free_slots_then_keeps_what_is_newer(self) -> None:
        slots = Slots(3)
        slots.place(1000)
        slots.place(1010)
        self.assertEqual(slots.place(10), (2, None))  # room: kept
        self.assertIsNone(slots.place(5))  # full, and older than everything
        self.assertEqual(list(slots.buckets), [10, 1000, 1010])
        self.assertEqual(slots.place(1020), (2, 10))  # the oldest goes first

    def test_clock_forward_takes_the_oldest_one_by_one(self) -> None:
        slots = Slots(3, [(0, 10), (1, 20), (2, 30)])
        self.assertEqual(slots.place(10**9), (0, 10))
        self.assertEqual(list(slots.buckets), [20, 30, 10**9])

    def test_rollback_undoes_everything_since_begin(self) -> None:
        slots = Slots(2, [(0, 10), (1, 20)])
        slots.begin()
        slots.place(30)
        slots.place(40)
        slots.remove_before(40)
        slots.rollback()
        self.assertEqual(list(slots.buckets), [10, 20])
        self.assertEqual((slots.slot(10), slots.slot(20), slots.slot(30)), (0, 1, None))
        self.assertEqual(slots.place(30), (0, 10))

    def test_removed_buckets_free_their_slots(self) -> None:
        slots = Slots(3, [(0, 10), (1, 20), (2, 30)])
        slots.remove_before(30)
        self.assertEqual(list(slots.buckets), [30])
        self.assertEqual(slots.place(40), (0, None))
        self.assertEqual(slots.place(50), (1, None))

    def test_slots_past_the_capacity_are_stray(self) -> None:
        slots = Slots(2, [(0, 10), (1, 20), (5, 30)])
        self.assertEqual(slots.stray, [5])
        self.assertEqual(list(slots.buckets), [10, 20])
