"""History options and wiring: --history-db/--history-flush/--history-max-mb,
the file's place, /health with the history off (the sampler's observers that feed
it are tested with the sampler)."""

from __future__ import annotations

import os

from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from pistatsd.config import Config, ConfigError, build_config
from pistatsd.history.wiring import history_path, history_service
from pistatsd.status import HISTORY_OFF, DaemonStatus


class OptionTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        config = build_config({"state-dir": "/srv/state"})
        self.assertEqual(
            (config.history_db, config.history_flush, config.history_max_mb), (None, 60.0, 64)
        )
        self.assertEqual(history_path(config), "/srv/state/history.sqlite3")

    def test_file_and_off(self) -> None:
        self.assertEqual(history_path(build_config({"history-db": "/x/h.db"})), "/x/h.db")
        self.assertIsNone(history_path(build_config({"history-db": "none"})))
        self.assertIsNone(history_path(build_config({"history-db": "NONE"})))

    def test_bad_values_are_refused_with_the_option_named(self) -> None:
        for option, value in (
            ("history-flush", "0"),
            ("history-flush", "3601"),
            ("history-flush", "abc"),
            ("history-max-mb", "0"),
            ("history-max-mb", "1.5"),
            ("history-db", ""),
        ):
            with self.assertRaises(ConfigError) as caught:
                build_config({option: value})
            self.assertIn(f"--{option}", str(caught.exception))

    def test_in_the_shipped_toml(self) -> None:
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        with open(os.path.join(here, "etc", "pistatsd.toml")) as f:
            text = f.read()
        for name in ("history-db", "history-flush", "history-max-mb"):
            self.assertIn(f"# {name} = ", text)


class WiringTests(SynchronousTestCase):
    def test_off(self) -> None:
        config = Config(history_db="none")
        self.assertIsNone(history_service(config, Clock()))

    def test_no_threads_no_history(self) -> None:
        self.assertIsNone(history_service(Config(state_dir=self.mktemp()), MemoryReactorClock()))

    def test_health_has_the_off_shape_without_history(self) -> None:
        self.assertEqual(DaemonStatus(clock=Clock()).health()["history"], dict(HISTORY_OFF))
