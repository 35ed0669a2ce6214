"""The package version, read by hatchling at build time and by ``llamaroute --version``."""

__version__ = "0.1.0"
