"""One log line when a condition starts, one with the count when it ends."""

from __future__ import annotations

from twisted.logger import Logger, LogLevel, capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.episodes import Episode, Episodes

_log = Logger(namespace="tests.episodes")


class EpisodeTests(SynchronousTestCase):
    def test_first_logged_rest_counted_end_logged_once(self) -> None:
        episode = Episode(_log, "broken: {why}", "fixed after {count}")
        with capturedLogs() as events:
            self.assertTrue(episode.happened(why="disk"))
            self.assertFalse(episode.happened(why="disk"))
            episode.happened_times(3, why="disk")
            self.assertTrue(episode.active)
            self.assertTrue(episode.ended())
            self.assertFalse(episode.ended())
        self.assertEqual(
            [(e["log_format"], e["log_level"]) for e in events],
            [("broken: {why}", LogLevel.warn), ("fixed after {count}", LogLevel.info)],
        )
        self.assertEqual(events[0]["why"], "disk")
        self.assertEqual(events[1]["count"], 5)
        self.assertFalse(episode.active)

    def test_a_new_episode_is_logged_again(self) -> None:
        episode = Episode(_log, "broken", "fixed {n}", count_field="n")
        with capturedLogs() as events:
            episode.happened()
            episode.ended()
            episode.happened()
            episode.ended()
        self.assertEqual([e.get("n") for e in events], [None, 1, None, 1])

    def test_failure_logged_with_its_traceback(self) -> None:
        episode = Episode(_log, "bug", "over", level=LogLevel.critical)
        with capturedLogs() as events:
            try:
                raise ZeroDivisionError("boom")
            except ZeroDivisionError:
                episode.happened(Failure())
        [event] = events
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(event["log_level"], LogLevel.critical)
        self.assertIsInstance(event["log_failure"].value, ZeroDivisionError)

    def test_nothing_happened_nothing_logged(self) -> None:
        episode = Episode(_log, "broken", "fixed")
        with capturedLogs() as events:
            self.assertFalse(episode.happened_times(0))
            self.assertFalse(episode.ended())
        self.assertEqual(events, [])

    def test_forget_ends_without_a_line(self) -> None:
        episode = Episode(_log, "broken", "fixed")
        with capturedLogs() as events:
            episode.happened()
            episode.forget()
            self.assertFalse(episode.ended())
        self.assertEqual(len(events), 1)


class EpisodesTests(SynchronousTestCase):
    def test_one_episode_per_key(self) -> None:
        episodes = Episodes(_log, "{key} broken", "{key} fixed after {count}")
        with capturedLogs() as events:
            episodes.happened("a", key="a")
            episodes.happened("b", key="b")
            episodes.happened("a", key="a")
            self.assertTrue(episodes.active("a"))
            episodes.ended("a", key="a")
            episodes.ended("c", key="c")
            episodes.forget("b")
            episodes.ended("b", key="b")
        self.assertEqual(
            [(e["log_format"], e["key"], e.get("count")) for e in events],
            [
                ("{key} broken", "a", None),
                ("{key} broken", "b", None),
                ("{key} fixed after {count}", "a", 2),
            ],
        )
