"""The one error tree of toolforgectl; the CLI catches only its root.

ToolforgectlError                 exit 1 unless a subclass says otherwise
├── UsageError                    exit 2: the caller asked for something malformed
│   ├── ConfigError               exit 2: missing or broken fleet config
│   │   └── ActiveProxyError      exit 2: /etc/active-proxy cannot be read or names no host
│   └── ValidationError           exit 2: a tool name, route or backend is not acceptable
│       └── RouteLimitError       exit 2: the tool has as many routes as one tool may have
├── NotFoundError                 exit 1: the thing asked about does not exist
├── RouteStoreError               exit 3: Redis unreachable, read-only, or answered an error
│   └── ReadOnlyReplicaError      exit 3: a write reached a replica (a standby proxy's Redis)
├── RegistrationError             exit 1: the proxy refused a registration (client side)
├── RequestError                  exit 1: proxylistener turns a request down (server side);
│   │                                     the message is the reply sentence the client gets
│   ├── BadRequestError           exit 1: the bytes can never become an acceptable request
│   └── RefusedError              exit 1: well-formed, but identity or the rules say no
├── KubeError                     exit 3: the Kubernetes API failed us
│   ├── GoneError                 exit 3: 410 Gone: the resourceVersion is too old; relist
│   └── StreamBrokenError         exit 3: the watch stream broke off mid-way; relist
├── RemoteError                   exit 3: a host cannot be reached over SSH, or a command or
│                                         file operation on it failed (adapters/remote.py)
├── RenderError                   exit 1: a template did not render (the message names file:line)
├── NginxError                    exit 1: nginx refused a rendered config, or would not start
├── LintError                     exit 1: `toolforgectl lint` found a problem (file:line: message)
├── LabError                      exit 1: a local server process could not be started or
│                                         stopped, or no port was free (adapters/processes, lab/)
└── TimedOutError                 exit 1: a condition waited for did not come true in time

Three modules keep a private subclass for control flow that never leaves them (each says why):
daemons/proxylistener/main.py (`_EmptyConnectionError`), daemons/clients/proxyclient.py
(`_TransientError`) and workflows/routes.py (`_DuplicateKeyError`). kube2proxy's `Stopped` is no
error but a stop request, so it derives from BaseException on purpose, as SystemExit does.
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


class ActiveProxyError(ConfigError):
    """The active-proxy file cannot be read or names no host (core/activeproxy.py has the policy)."""


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


class RequestError(ToolforgectlError):
    """proxylistener turns a request down; the message is the sentence the client gets."""


class BadRequestError(RequestError):
    """The bytes received can never become an acceptable request; `reply` is what the client gets."""

    def __init__(self, reply: bytes) -> None:
        super().__init__(reply.decode("ascii", "replace"))
        self.reply = reply


class RefusedError(RequestError):
    """The request is well-formed but not allowed; the message is the reply sentence."""


class KubeError(ToolforgectlError):
    """The Kubernetes API failed us."""

    exit_code = EXIT_UNAVAILABLE


class GoneError(KubeError):
    """410 Gone: the resourceVersion is too old to watch from (etcd compacted); relist."""


class StreamBrokenError(KubeError):
    """The watch stream broke off mid-way (connection reset, truncated chunk, garbled line)."""


class RemoteError(ToolforgectlError):
    """A host could not be reached over SSH, or a command or file operation on it failed."""

    exit_code = EXIT_UNAVAILABLE


class RenderError(ToolforgectlError):
    """A template did not render; the message starts with `file:line:`."""


class NginxError(ToolforgectlError):
    """nginx refused a rendered config or would not start; the message starts with `file:line:`."""


class LintError(ToolforgectlError):
    """`toolforgectl lint` found a problem; the message starts with `file:line:`."""


class LabError(ToolforgectlError):
    """A local server process could not be started or stopped, or no port was free."""


class TimedOutError(ToolforgectlError):
    """A condition waited for (core/waiting.py) did not come true within its deadline."""
