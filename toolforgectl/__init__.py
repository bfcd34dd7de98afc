"""toolforgectl: operations toolkit and data plane for a Toolforge-style dynamic proxy."""

__version__ = "0.1.0"
