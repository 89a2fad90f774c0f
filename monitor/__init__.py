"""AI safety partnership monitor: feeds in, one Slack message per new partnership out."""

__version__ = "0.1.0"
