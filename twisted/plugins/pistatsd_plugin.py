"""The twistd plugins for pistatsd: its ServiceMaker and its reactor (``--reactor=pistatsd-epoll``).

Nothing more is imported here, so ``twistd --help`` stays cheap.
"""

from twisted.application.reactors import Reactor
from twisted.application.service import ServiceMaker

pistatsd = ServiceMaker(
    "pistatsd",
    "pistatsd.tap",
    "Live system stats over REST, WebSocket and a dashboard, plus static files.",
    "pistatsd",
)

pistatsd_epoll = Reactor(
    "pistatsd-epoll",
    "pistatsd.eager_writes",
    "epoll(7), sending what each pass wrote before it waits again (the pistatsd command's).",
)
