"""Bot-Mox control-plane API v1."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("botmox-api")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
