"""Run pistatsd from a checkout: ``twistd -ny etc/pistatsd.tac``.

Settings come from the TOML file named by ``PISTATSD_CONFIG`` (if set), exactly
as ``--config`` would read it; the same composition root as the plugin builds
the service.
"""

import os

from twisted.application.service import Application

from pistatsd.config import build_config
from pistatsd.tap import makeService

_config_file = os.environ.get("PISTATSD_CONFIG")
config = build_config({"config": _config_file} if _config_file else {})
application = Application("pistatsd")
makeService(config).setServiceParent(application)
