"""BreakingWind: a local, private, multi-agent coding daemon."""

__version__ = "0.1.0"
