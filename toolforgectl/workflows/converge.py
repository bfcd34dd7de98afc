"""Converge: bring each host group to what the fleet config says (`toolforgectl converge`, and the
`converge-hosts` step of a failover or a deploy).

Each group of `remote.converge` is converged one of two ways (core/config/remote.py):

    a command     run on every host (the site's puppet agent, say); it ran: `changed`, as
                  Ansible counts a command
    push          the group's hosts are proxies: our rendered data plane (nginx.conf, urlproxy.conf,
                  urlproxy.json, the error pages) is compared with the host's by checksum; a host
                  whose files match is `unchanged` and is not touched; on the others the new files
                  replace the old (kept aside), `nginx -t` runs there, and only when it passes is
                  nginx reloaded; when it fails the old files are put back, so the host keeps
                  serving what it served, and it is `failed` with nginx's complaint

Hosts go in batches (`batch`, else the step's, else `remote.batch`); a group whose batch had a
failure does not start its next batches (those hosts are `skipped`), as the original runbook's
clush batches stopped. redis.conf is not pushed: Redis reads it only when it starts, and which
proxy a replica follows is the failover's business (it changes it live).
"""

from __future__ import annotations

import base64
import difflib
import fnmatch
import hashlib
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from toolforgectl.adapters.remote import SKIPPED, HostResult, Remote
from toolforgectl.adapters.render import Layout, render_proxy
from toolforgectl.core.config import Fleet
from toolforgectl.core.config.remote import Push, SshHost
from toolforgectl.core.errors import StepError, ToolforgectlError, UsageError
from toolforgectl.workflows.playbook import steps
from toolforgectl.workflows.playbook.context import StepContext
from toolforgectl.workflows.playbook.steps import Change, Check, Outcome

NOT_PUSHED = ("redis.conf",)
CHECK_FAILED = 65  # the push script's exit status when `nginx -t` refused the new files
# The script is read whole before it runs: `sh -s` would run it as it reads, and exit (a failed
# check) while the rest is still being sent, which ends the channel under the sender.
RUN_STDIN = 'script=$(mktemp) && cat > "$script" && sh "$script"; status=$?; rm -f "$script"; exit $status'
RESULTS = ("changed", "unchanged", "failed", "skipped")


@dataclass(frozen=True)
class Target:
    """One host to converge, in its group, and how."""

    group: str
    host: SshHost
    how: str | Push  # a command, or push

    @property
    def label(self) -> str:
        """How the plan and the recap name it."""
        return str(self.host)


@dataclass(frozen=True)
class Converged:
    """What converging one host did: changed, unchanged, failed or skipped, and why."""

    host: str
    group: str
    result: str
    detail: str = ""

    def as_change(self) -> Change:
        """The audit's and the report's form: target the host, old its group, new the outcome."""
        return Change(self.host, self.group, {"result": self.result, "detail": self.detail})


def targets(fleet: Fleet, group: str | None = None, limit: Sequence[str] = ()) -> list[Target]:
    """Every host of every `remote.converge` group (only `group`, if given), in config order; with
    `limit`, only the hosts whose name matches one of its patterns (fnmatch: `proxy-0*`)."""
    converge = fleet.remote.converge
    if group is not None and group not in converge:
        known = ", ".join(converge) or "none (remote.converge is empty)"
        raise UsageError(f"no converge group {group!r} (known: {known})")
    found = [
        Target(name, host, how)
        for name, how in converge.items()
        if group in (None, name)
        for host in fleet.ssh_hosts(name)
        if not limit or any(fnmatch.fnmatchcase(str(host), pattern) for pattern in limit)
    ]
    if limit and not found:
        raise UsageError(f"--limit {','.join(limit)} matches no host of the converge groups")
    return found


# --- push: our rendered data plane -----------------------------------------------------------------


def layout(push: Push, proxy: str) -> Layout:
    """Where `proxy` keeps its data plane: a VM's system paths, or under `push.root` (the lab)."""
    if not push.root:
        return Layout.system()
    return Layout.under(Path(push.root.replace("{proxy}", proxy)))


def rendered(fleet: Fleet, proxy: str, push: Push) -> dict[str, str]:
    """The files to push to `proxy`: absolute path on the host -> text."""
    where = layout(push, proxy)
    files = render_proxy(fleet, proxy, where)
    return {str(where.conf_dir / name): text for name, text in files.items() if name not in NOT_PUSHED}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def differing(remote: Remote, host: SshHost, files: Mapping[str, str]) -> list[str]:
    """The paths of `files` whose content on `host` differs from ours, or which it lacks (a read)."""
    paths = " ".join(shlex.quote(path) for path in files)
    result = remote.read_command(host, f"sha256sum -- {paths} 2>/dev/null; true")
    if not result.ok:
        raise StepError(f"{host}: cannot read its data plane files: {result.error}")
    theirs = {}
    for line in result.stdout.splitlines():
        digest, _, path = line.partition("  ")
        theirs[path] = digest
    return [path for path, text in files.items() if theirs.get(path) != _digest(text)]


def _diff(remote: Remote, host: SshHost, path: str, text: str) -> str:
    try:
        before = remote.read_file(host, path) or ""
    except ToolforgectlError:
        before = ""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), text.splitlines(keepends=True), f"{host}:{path}", "rendered"
    )
    return "".join(lines)


def push_script(files: Mapping[str, str], push: Push, where: Layout, proxy: str) -> str:
    """The shell script (sent on stdin) that swaps in `files`, keeping the old ones aside, runs
    the check, reloads and restarts, or puts the old files back when the check fails."""
    names = {
        "nginx_conf": shlex.quote(str(where.nginx_conf)),
        "run_dir": shlex.quote(str(where.run_dir)),
        "proxy": shlex.quote(proxy),
    }
    check, reload, restart = (c.format_map(names) for c in (push.check, push.reload, push.restart))
    lines = ["set -u"]
    for path, text in files.items():
        data = base64.b64encode(text.encode("utf-8")).decode()
        lines.append(f"mkdir -p {shlex.quote(str(Path(path).parent))}")
        lines.append(f"printf %s {data} | base64 -d > {_q(path, 'new')} || exit 1")
    for path in files:
        p, old, absent = _q(path), _q(path, "old"), _q(path, "absent")
        lines.append(
            f"if [ -e {p} ]; then cp -p {p} {old}; else : > {absent}; fi; mv -f {_q(path, 'new')} {p}"
        )
    lines.append(f"if ! said=$({check} 2>&1); then")
    for path in files:
        p, old, absent = _q(path), _q(path, "old"), _q(path, "absent")
        lines.append(f"  if [ -e {absent} ]; then rm -f {p} {absent}; else mv -f {old} {p}; fi")
    lines += [
        '  echo "nginx -t refused the new config; the old one is back: $said" | tr "\\n" " " >&2',
        f"  exit {CHECK_FAILED}",
        "fi",
        *(f"rm -f {_q(path, 'old')} {_q(path, 'absent')}" for path in files),
        reload,
        *([restart] if restart else []),
    ]
    return "\n".join(lines) + "\n"


def _q(path: str, suffix: str = "") -> str:
    """`path` (or its side file `path.toolforgectl-SUFFIX`), quoted for the shell."""
    return shlex.quote(f"{path}.toolforgectl-{suffix}" if suffix else path)


# --- one host --------------------------------------------------------------------------------------


def plan(fleet: Fleet, remote: Remote, target: Target) -> tuple[Change | None, str]:
    """What converging `target` would change (None: nothing), and a diff of its files."""
    if not isinstance(target.how, Push):
        return Change(target.label, target.group, f"run {target.how}"), ""
    try:
        files = rendered(fleet, _proxy(fleet, target), target.how)
        changed = differing(remote, target.host, files)
    except ToolforgectlError as exc:
        return Change(target.label, target.group, f"cannot tell: {exc}"), ""
    if not changed:
        return None, ""
    names = ", ".join(Path(path).name for path in changed)
    diff = "".join(_diff(remote, target.host, path, files[path]) for path in changed)
    return Change(target.label, target.group, f"push {len(changed)} file(s): {names}"), diff


def converge(fleet: Fleet, remote: Remote, target: Target, timeout: float) -> Converged:
    """Converge one host now (see the module docstring); never raises for the host's own failure."""
    if not isinstance(target.how, Push):
        done = remote.write_command(target.host, target.how, timeout=timeout)
        return _outcome(target, done, "changed", f"ran {target.how}")
    try:
        proxy = _proxy(fleet, target)
        files = rendered(fleet, proxy, target.how)
        changed = differing(remote, target.host, files)
    except ToolforgectlError as exc:
        return Converged(target.label, target.group, "failed", str(exc))
    if not changed:
        return Converged(target.label, target.group, "unchanged", "its files match")
    script = push_script(
        {path: files[path] for path in changed}, target.how, layout(target.how, proxy), proxy
    )
    done = remote.write_command(target.host, RUN_STDIN, timeout=timeout, stdin=script)
    names = ", ".join(Path(path).name for path in changed)
    return _outcome(target, done, "changed", f"pushed {names}; nginx -t passed; reloaded, restarted")


def _outcome(target: Target, done: HostResult, result: str, detail: str) -> Converged:
    if done.planned:
        return Converged(target.label, target.group, "planned", detail)
    if done.ok:
        return Converged(target.label, target.group, result, detail)
    return Converged(target.label, target.group, "failed", done.error)


def _proxy(fleet: Fleet, target: Target) -> str:
    names = {proxy.name for proxy in fleet.proxies}
    if target.host.name not in names:
        raise StepError(f"{target.host}: group {target.group} pushes the data plane, but it is not a proxy")
    return target.host.name


def run(
    fleet: Fleet,
    remote: Remote,
    chosen: Sequence[Target],
    batch: int | None,
    timeout: float,
    progress: Callable[[str], None],
) -> list[Converged]:
    """Converge `chosen`, group by group, in batches; a batch with a failure ends its group."""
    outcomes: list[Converged] = []
    for group in dict.fromkeys(target.group for target in chosen):
        members = [target for target in chosen if target.group == group]
        outcomes += _group(fleet, remote, group, members, batch, timeout, progress)
    return outcomes


def _group(
    fleet: Fleet,
    remote: Remote,
    group: str,
    members: list[Target],
    batch: int | None,
    timeout: float,
    progress: Callable[[str], None],
) -> list[Converged]:
    by_host = {target.host: target for target in members}
    found: dict[str, Converged] = {}

    def one(host: SshHost) -> HostResult:
        outcome = converge(fleet, remote, by_host[host], timeout)
        found[str(host)] = outcome
        return HostResult(str(host), outcome.result != "failed", error=outcome.detail)

    results = remote.each(
        [target.host for target in members],
        one,
        batch=batch,
        halt_on_failure=True,
        progress=lambda result: progress(f"{result.host}: {found[result.host].result}"),
    )
    skipped = "not run: an earlier batch of its group failed"
    return [
        Converged(result.host, group, "skipped", skipped) if result.error == SKIPPED else found[result.host]
        for result in results
    ]


# --- the step --------------------------------------------------------------------------------------


@steps.register("converge-hosts")
class ConvergeHosts:
    """Converge each host group of `remote.converge` (a command, or our data plane pushed), in batches."""

    def __init__(self) -> None:
        self.outcomes: list[Converged] = []

    def check(self, ctx: StepContext) -> Check:
        """Which hosts would change: a command's always; a pushed host's when its files differ."""
        chosen = _chosen(ctx)
        if not chosen:
            return Check.already("no converge group configured (remote.converge)")
        plans = [plan(ctx.fleet, ctx.remote(), target) for target in chosen]
        changes = [change for change, _ in plans if change is not None]
        if not changes:
            return Check.already(f"{len(chosen)} host(s) converged already")
        return Check.would(*changes, diff="".join(diff for _, diff in plans))

    def apply(self, ctx: StepContext) -> Outcome:
        """Converge every chosen host; each outcome goes to the audit as it is known."""
        batch = ctx.args.get("batch") or ctx.entry.batch
        self.outcomes = run(ctx.fleet, ctx.remote(), _chosen(ctx), batch, ctx.entry.timeout, ctx.progress)
        for outcome in self.outcomes:
            change = outcome.as_change()
            ctx.record(change.target, change.old, change.new)
        counts = {result: sum(o.result == result for o in self.outcomes) for result in RESULTS}
        return Outcome(note=", ".join(f"{count} {result}" for result, count in counts.items()))

    def verify(self, ctx: StepContext) -> None:
        """Every host converged (apply reported each failure; this ends the step on them)."""
        bad = [o for o in self.outcomes if o.result in ("failed", "skipped")]
        if bad:
            raise StepError("converge failed on: " + "; ".join(f"{o.host}: {o.detail}" for o in bad))

    def instructions(self, ctx: StepContext) -> str:
        """Converge the hosts that failed again, once fixed."""
        return (
            "fix the hosts named above (a failed host kept its old config), then --resume this run,"
            " or `toolforgectl converge --limit HOST` for each"
        )


def _chosen(ctx: StepContext) -> list[Target]:
    limit = tuple(ctx.args.get("limit") or ())
    return targets(ctx.fleet, ctx.args.get("group") or None, limit)
