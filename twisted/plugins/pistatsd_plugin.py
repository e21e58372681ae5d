"""The twistd plugin for pistatsd: only a ServiceMaker, so ``twistd --help`` stays cheap."""

from twisted.application.service import ServiceMaker

pistatsd = ServiceMaker(
    "pistatsd",
    "pistatsd.tap",
    "Live system stats over REST, WebSocket and a dashboard, plus static files.",
    "pistatsd",
)
