"""The one error tree of toolforgectl; the CLI catches only its root.

ToolforgectlError                 exit 1 unless a subclass says otherwise
├── UsageError                    exit 2: the caller asked for something malformed
│   ├── ConfigError               exit 2: missing or broken fleet config
│   └── ValidationError           exit 2: a tool name, route or backend is not acceptable
│       └── RouteLimitError       exit 2: the tool has as many routes as one tool may have
├── NotFoundError                 exit 1: the thing asked about does not exist
├── RouteStoreError               exit 3: Redis unreachable, read-only, or answered an error
├── RegistrationError             exit 1: the proxy refused a registration (client side)
├── KubeError                     exit 3: the Kubernetes API failed us
├── RenderError                   exit 1: a template did not render (the message names file:line)
├── NginxError                    exit 1: nginx refused a rendered config, or would not start
└── LintError                     exit 1: `toolforgectl lint` found a problem (file:line: message)
"""

from __future__ import annotations

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


class ToolforgectlError(Exception):
    """Root of every error toolforgectl raises on purpose."""

    exit_code: int = EXIT_FAILED


class UsageError(ToolforgectlError):
    """The caller asked for something malformed."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """The fleet configuration is missing or broken."""


class ValidationError(UsageError):
    """A tool name, route regex or backend URL failed validation."""


class RouteLimitError(ValidationError):
    """A write would give a tool more routes than `dataplane.max_routes_per_tool` allows."""


class NotFoundError(ToolforgectlError):
    """The tool, route or file asked about does not exist."""


class RouteStoreError(ToolforgectlError):
    """The route store (Redis) could not do what was asked."""

    exit_code = EXIT_UNAVAILABLE


class ReadOnlyReplicaError(RouteStoreError):
    """A write reached a Redis replica: only the active proxy's Redis takes writes."""


class RegistrationError(ToolforgectlError):
    """The proxy refused or never answered a registration."""


class KubeError(ToolforgectlError):
    """The Kubernetes API failed us."""

    exit_code = EXIT_UNAVAILABLE


class RenderError(ToolforgectlError):
    """A template did not render; the message starts with `file:line:`."""


class NginxError(ToolforgectlError):
    """nginx refused a rendered config or would not start; the message starts with `file:line:`."""


class LintError(ToolforgectlError):
    """`toolforgectl lint` found a problem; the message starts with `file:line:`."""
