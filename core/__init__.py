"""tgmon: a Telegram channel monitor."""

__version__ = "0.1.0"
