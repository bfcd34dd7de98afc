"""The lab's hosts over SSH: one sshd on loopback with its own host key, and a client key for it.

The lab reaches its "hosts" (the proxies' loopback addresses) through the same remote adapter
(fabric) as production reaches VMs, so an sshd has to answer there. It is started from the
distribution's /usr/sbin/sshd with a private config: its own host key, only the generated client
key may log in, as the user running the lab; the system's sshd and ~/.ssh are never touched. The
client's known_hosts file is written here too, so host keys are checked as strictly as in
production.
"""

from __future__ import annotations

import getpass
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from toolforgectl.adapters.processes import Process, spawn
from toolforgectl.core.errors import LabError

SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class SshLab:
    """What a client needs to reach the lab's sshd: the `remote:` section of the lab's fleet config."""

    user: str
    port: int
    identity_file: Path
    known_hosts: Path

    def remote_section(self) -> dict[str, object]:
        """The fleet config's `remote:` settings for this sshd."""
        return {
            "user": self.user,
            "identity_file": str(self.identity_file),
            "known_hosts": str(self.known_hosts),
        }


def keys(directory: Path, addresses: tuple[str, ...], port: int) -> SshLab:
    """Generate (once) the host and client keys in `directory`, and known_hosts for `addresses`."""
    directory.mkdir(parents=True, exist_ok=True)
    host_key, client_key = directory / "host_ed25519", directory / "client_ed25519"
    for key in (host_key, client_key):
        if not key.exists():
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "toolforgectl-lab", "-f", str(key)])
    (directory / "authorized_keys").write_text(client_key.with_suffix(".pub").read_text())
    (directory / "authorized_keys").chmod(0o600)
    public = host_key.with_suffix(".pub").read_text().split()
    lines = [f"[{address}]:{port} {public[0]} {public[1]}\n" for address in addresses]
    (directory / "known_hosts").write_text("".join(lines))
    return SshLab(getpass.getuser(), port, client_key, directory / "known_hosts")


def start(directory: Path, addresses: tuple[str, ...], port: int) -> tuple[SshLab, Process]:
    """Start an sshd listening on `port` of every address in `addresses`; returns once it accepts."""
    if not Path(SSHD).exists() or shutil.which("ssh-keygen") is None:
        raise LabError("the lab's hosts need OpenSSH: install openssh-server and openssh-client")
    lab = keys(directory, addresses, port)
    config = _config(directory, addresses, port)
    if _root():  # sshd run by root insists on its privilege-separation directory, even to check
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    _run([SSHD, "-t", "-f", str(config)])
    argv = [SSHD, "-D", "-e", "-f", str(config)]
    process = spawn("sshd", argv, directory / "sshd.log", addresses[0], port)
    return lab, process


def _config(directory: Path, addresses: tuple[str, ...], port: int) -> Path:
    listen = "".join(f"ListenAddress {address}:{port}\n" for address in addresses)
    text = (
        f"{listen}"
        f"HostKey {directory / 'host_ed25519'}\n"
        f"PidFile {directory / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {directory / 'authorized_keys'}\n"
        f"AllowUsers {getpass.getuser()}\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\n"
        # The lab's directory may be group-writable (a shared /tmp); the keys in it are the lab's own.
        "StrictModes no\n"
        "UsePAM no\n"
        "PrintMotd no\n"
        "Subsystem sftp internal-sftp\n"
    )
    path = directory / "sshd_config"
    path.write_text(text)
    return path


def _root() -> bool:
    return getpass.getuser() == "root"


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise LabError(f"{argv[0]} failed: {detail[-1] if detail else f'exit {done.returncode}'}")
