"""Test hosts in Linux network namespaces: a private network for end-to-end tests of faults between
machines (`import netns`, tests/ is on the path).

    with private_network("master", "w1", "w2", "target") as net:
        net.addr("target")                    # 10.231.N.4: the host's address on the private network
        net.run("target", "python", ...)      # a command on that host
        net.partition("w2", "master")         # iptables DROP both ways between the two hosts
        net.heal("w2", "master")

Each host is a namespace with its loopback up and one veth leg to a bridge inside a "switch"
namespace; addresses are 10.231.N.x/24, N picked per network, used only inside these namespaces.
Every namespace is deleted on exit, also when the test fails. Skips (one line) where namespaces
cannot be made (not root, no `ip`), or, for partitions, where iptables is missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=20)


def available() -> str | None:
    """None when this machine can make test hosts, else why not (one line)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    probe = f"clprobe{os.getpid() % 100000}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"cannot create a network namespace: {getattr(exc, 'stderr', exc)}".strip()
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@dataclass
class Network:
    tag: str
    subnet: int
    hosts: list[str]
    rules: set[tuple[str, str]] = field(default_factory=set)

    def ns(self, host: str) -> str:
        return f"{self.tag}-{host}"

    def addr(self, host: str) -> str:
        return f"10.231.{self.subnet}.{self.hosts.index(host) + 1}"

    def prefix(self, host: str) -> tuple[str, ...]:
        """The command prefix that runs a program on `host`."""
        return ("ip", "netns", "exec", self.ns(host))

    def run(self, host: str, *cmd: str, timeout_s: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([*self.prefix(host), *cmd], capture_output=True, text=True, timeout=timeout_s)

    def partition(self, a: str, b: str) -> None:
        """Drop every packet between hosts a and b, both ways (on a's side: its INPUT and OUTPUT)."""
        if shutil.which("iptables") is None:
            pytest.skip("iptables is not installed (make setup installs it): no partition")
        for chain, flag in (("INPUT", "-s"), ("OUTPUT", "-d")):
            done = self.run(a, "iptables", "-A", chain, flag, self.addr(b), "-j", "DROP")
            assert done.returncode == 0, done.stderr
        self.rules.add((a, b))

    def heal(self, a: str, b: str) -> None:
        for chain, flag in (("INPUT", "-s"), ("OUTPUT", "-d")):
            self.run(a, "iptables", "-D", chain, flag, self.addr(b), "-j", "DROP")
        self.rules.discard((a, b))


@contextlib.contextmanager
def private_network(*hosts: str) -> Iterator[Network]:
    reason = available()
    if reason:
        pytest.skip(reason)
    tag = f"cl{os.getpid() % 100000}"
    net = Network(tag=tag, subnet=(os.getpid() % 200) + 20, hosts=list(hosts))
    made: list[str] = []
    try:
        switch = f"{tag}-sw"
        _ip("netns", "add", switch)
        made.append(switch)
        _ip("-n", switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", switch, "link", "set", "br0", "up")
        for index, host in enumerate(hosts):
            ns = net.ns(host)
            _ip("netns", "add", ns)
            made.append(ns)
            leg = f"p{index}"
            _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", leg, "netns", switch)
            _ip("-n", switch, "link", "set", leg, "master", "br0")
            _ip("-n", switch, "link", "set", leg, "up")
            _ip("-n", ns, "addr", "add", f"{net.addr(host)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield net
    finally:
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
