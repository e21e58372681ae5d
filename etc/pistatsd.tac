"""Run pistatsd from a checkout: ``twistd -ny etc/pistatsd.tac``.

Settings come from the TOML file named by ``PISTATSD_CONFIG`` (if set), exactly
as ``--config`` would read it, with the same start-up checks as the plugin's
options; the same composition root as the plugin builds the service.
"""

import os

from twisted.application.service import Application

from pistatsd.startup import load
from pistatsd.tap import makeService

_config_file = os.environ.get("PISTATSD_CONFIG")
config = load({"config": _config_file} if _config_file else {})
application = Application("pistatsd")
makeService(config).setServiceParent(application)
