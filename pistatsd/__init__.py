"""pistatsd: live system stats, history and static files from one Twisted daemon."""

__version__ = "0.1.0"
