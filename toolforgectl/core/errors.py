"""The one error tree of toolforgectl; the CLI catches only its root.

ToolforgectlError                 exit 1 unless a subclass says otherwise
├── UsageError                    exit 2: the caller asked for something malformed
│   ├── ConfigError               exit 2: missing or broken fleet config
│   │   ├── ActiveProxyError      exit 2: /etc/active-proxy cannot be read or names no host
│   │   └── PlaybookError         exit 2: a playbook (playbooks/*.yaml) is broken (file:line)
│   ├── ValidationError           exit 2: a tool name, route or backend is not acceptable
│   │   └── RouteLimitError       exit 2: the tool has as many routes as one tool may have
│   └── NotConfirmedError         exit 2: a change was not confirmed (no --yes and no terminal,
│                                         or the operator did not type `go`)
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
├── CloudError                    exit 3: the cloud's API (Keystone, Neutron, Nova) failed us;
│   │                                     the message names the cloud and the call
│   └── CloudConflictError        exit 1: the floating IP changed since it was read (HTTP 412
│                                         on Neutron's revision_number); nothing was changed
├── RenderError                   exit 1: a template did not render (the message names file:line)
├── NginxError                    exit 1: nginx refused a rendered config, or would not start
├── LintError                     exit 1: `toolforgectl lint` found a problem (file:line: message)
├── LabError                      exit 1: a local server process could not be started or
│                                         stopped, or no port was free (adapters/processes, lab/)
├── ManifestError                 exit 1: a tool's service.manifest is unreadable, malformed,
│                                         too big, a symlink, or not owned by the tool
├── WebserviceError               exit 1: a webservice backend (the local supervisor, qsub,
│                                         qstat, qdel) failed, timed out or answered garbage
├── TimedOutError                 exit 1: a condition waited for did not come true in time
├── OperationError                exit 1: a playbook run (workflows/playbook) did not complete
│   ├── PreflightError            exit 1: a preflight check failed; nothing was changed
│   ├── StepError                 exit 1: a step failed or did not verify (then rolled back,
│   │                                     or operator instructions printed)
│   └── LockHeldError             exit 1: another run holds the operation's lock (names holder, expiry)
├── HieraError                    exit 3: the hiera backend (file or HTTP) could not be read or written
│   └── HieraConflictError        exit 1: the value changed since it was read; nothing written
└── DnsError                      exit 3: the configured DNS command failed, or a resolver could not
                                          be asked (adapters/dns.py); Designate's errors are CloudErrors

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


class CloudError(ToolforgectlError):
    """The cloud's API failed us: unreachable, refused our credentials, or answered an error."""

    exit_code = EXIT_UNAVAILABLE


class CloudConflictError(CloudError):
    """A compare-and-swap write was refused: the resource changed since it was read (HTTP 412).

    Nothing was changed; read again, decide again. Exit 1: the cloud is fine, the plan is stale.
    """

    exit_code = EXIT_FAILED


class RenderError(ToolforgectlError):
    """A template did not render; the message starts with `file:line:`."""


class NginxError(ToolforgectlError):
    """nginx refused a rendered config or would not start; the message starts with `file:line:`."""


class LintError(ToolforgectlError):
    """`toolforgectl lint` found a problem; the message starts with `file:line:`."""


class LabError(ToolforgectlError):
    """A local server process could not be started or stopped, or no port was free."""


class ManifestError(ToolforgectlError):
    """A tool's service.manifest cannot be trusted: unreadable, malformed, too big, a symlink,
    or not owned by the tool (core/manifest.py)."""


class WebserviceError(ToolforgectlError):
    """A webservice backend failed: the local supervisor, qsub/qstat/qdel, or what they answered."""


class TimedOutError(ToolforgectlError):
    """A condition waited for (core/waiting.py) did not come true within its deadline."""


class PlaybookError(ConfigError):
    """A playbook file is broken: unknown step, untyped or unknown option; the message starts with
    `file:line:`."""


class NotConfirmedError(UsageError):
    """A change needs confirmation it did not get: `--yes` without a terminal, or `go` at the prompt."""


class OperationError(ToolforgectlError):
    """A playbook run did not complete."""


class PreflightError(OperationError):
    """A preflight check found the fleet not ready; nothing was changed."""


class StepError(OperationError):
    """A step failed or did not verify; the runner rolled back, or printed operator instructions."""


class LockHeldError(OperationError):
    """Another run holds the lock of this operation; the message names the holder and the expiry."""


class HieraError(ToolforgectlError):
    """The hiera backend could not be read or written."""

    exit_code = EXIT_UNAVAILABLE


class HieraConflictError(HieraError):
    """A hiera value changed between our read and our write: nothing was written."""

    exit_code = EXIT_FAILED


class DnsError(ToolforgectlError):
    """The site's DNS command failed, or a resolver could not be asked (adapters/dns.py)."""

    exit_code = EXIT_UNAVAILABLE
