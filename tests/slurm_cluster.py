"""A real single-node SLURM (Debian slurm-wlm + munge) for tests, started and stopped by PID.

The node has the machine's CPUs and memory and two count-only GPUs (gres files /dev/null and
/dev/zero), so `--gpus=1` requests are scheduled and recorded without a GPU being present.
`SlurmCluster.jobs()` reads what SLURM recorded for each job (`scontrol show job`; finished jobs
stay listed for an hour, MinJobAge), not what a profile asked for. Settings follow ../shared/NOTES.md. It needs root (munged runs as user munge,
slurmctld/slurmd as root) and writes /etc/slurm/{slurm,gres}.conf as symlinks, removed on stop.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo")
ETC = Path("/etc/slurm")


#: profiles/slurm's job groups: group -> its rules
GROUPS: dict[str, list[str]] = {}
for _entry in yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())["groups"]:
    _rule, _group = _entry.split("=")
    GROUPS.setdefault(_group, []).append(_rule)
#: A partition whose jobs may run one minute at most, for tests of training in rounds.
SHORT_PARTITION = "short"


def rule_of(job: dict[str, str]) -> str:
    """The rule or group of a job, from the comment the executor gave it: rule_<rule>[_wildcards_...]
    for a single job, rule_<group>_<its rules, sorted, joined by _> for a group job."""
    name = re.match(r"rule_(.+?)(?:_wildcards_.*)?$", job["Comment"]).group(1)
    for group, rules in GROUPS.items():
        members = sorted(rules)
        names = {"_".join(c) for n in range(1, len(members) + 1) for c in itertools.combinations(members, n)}
        if name.startswith(f"{group}_") and name[len(group) + 1 :] in names:
            return group
    return name


class SlurmUnavailable(RuntimeError):
    """SLURM cannot be started here (missing packages, not root, a foreign config)."""


def _find(name: str) -> str | None:
    """A SLURM or munge program on PATH or in /usr/sbin (daemons live there, off root's PATH elsewhere)."""
    sbin = Path("/usr/sbin", name)
    return shutil.which(name) or (str(sbin) if sbin.exists() else None)


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if _find(b) is None]


def _bin(name: str) -> str:
    return _find(name) or name


def _real_memory_mb() -> int:
    out = subprocess.run([_bin("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"RealMemory=(\d+)", out).group(1))


def slurm_conf(state: Path, host: str, cpus: int, memory_mb: int) -> str:
    return f"""\
# Written by samcrowd's tests (tests/slurm_cluster.py): a single-node test cluster.
ClusterName=samcrowd-test
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/d
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
GresTypes=gpu
MpiDefault=none
ReturnToService=2
MinJobAge=3600
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} Gres=gpu:2 State=UNKNOWN
PartitionName=main Nodes={host} Default=YES MaxTime=INFINITE State=UP
PartitionName={SHORT_PARTITION} Nodes={host} MaxTime=1 State=UP
"""


@dataclass
class SlurmCluster:
    """munged, slurmctld and slurmd started here; `stop()` ends exactly those processes."""

    state: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    links: list[Path] = field(default_factory=list)

    @classmethod
    def start(cls, state: Path, timeout: float = 60) -> SlurmCluster:
        missing = missing_binaries()
        if missing:
            raise SlurmUnavailable(
                f"SLURM is not installed (missing {', '.join(missing)}); apt-get install slurm-wlm munge"
            )
        if os.geteuid() != 0:
            raise SlurmUnavailable("the test SLURM needs root (munged, slurmctld and slurmd)")
        for name in ("slurm.conf", "gres.conf"):
            target = ETC / name
            if target.exists() and not (target.is_symlink() and "samcrowd" in os.readlink(target)):
                raise SlurmUnavailable(
                    f"{target} exists and is not a samcrowd test config; refusing to replace a real cluster's settings"
                )
        state = Path(state)
        (state / "ctld").mkdir(parents=True, exist_ok=True)
        (state / "d").mkdir(parents=True, exist_ok=True)
        host = socket.gethostname().split(".")[0]
        conf_dir = state / "samcrowd-slurm-etc"
        conf_dir.mkdir(exist_ok=True)
        (conf_dir / "slurm.conf").write_text(slurm_conf(state, host, os.cpu_count() or 1, _real_memory_mb()))
        (conf_dir / "gres.conf").write_text(f"NodeName={host} Name=gpu Count=2 File=/dev/null,/dev/zero\n")
        cluster = cls(state=state)
        try:
            ETC.mkdir(parents=True, exist_ok=True)
            for name in ("slurm.conf", "gres.conf"):
                target = ETC / name
                if target.is_symlink():
                    target.unlink()
                target.symlink_to(conf_dir / name)
                cluster.links.append(target)
            munge_run = Path("/run/munge")
            munge_run.mkdir(parents=True, exist_ok=True)
            shutil.chown(munge_run, "munge", "munge")
            cluster._spawn(
                ["setpriv", "--reuid=munge", "--regid=munge", "--init-groups", _bin("munged"), "--foreground"], "munged"
            )
            cluster._wait(lambda: Path("/run/munge/munge.socket.2").exists(), timeout, "munged")
            cluster._spawn([_bin("slurmctld"), "-D", "-i"], "slurmctld")
            cluster._wait(cluster._controller_up, timeout, "slurmctld")
            cluster._spawn([_bin("slurmd"), "-D"], "slurmd")
            cluster._wait(cluster._node_idle, timeout, "slurmd")
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _spawn(self, cmd: list[str], name: str) -> None:
        with open(self.state / f"{name}.stdout", "w") as log:  # the daemon keeps its own copy
            self.processes.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def _wait(self, ready, timeout: float, name: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [p for p in self.processes if p.poll() is not None]
            if dead:
                raise SlurmUnavailable(
                    f"{name} did not start: {dead[0].args[0]} exited with {dead[0].returncode}; see {self.state}"
                )
            if ready():
                return
            time.sleep(0.3)
        raise SlurmUnavailable(f"{name} not ready after {timeout:.0f} s; see {self.state}")

    @staticmethod
    def _controller_up() -> bool:
        run = subprocess.run([_bin("scontrol"), "ping"], capture_output=True, text=True)
        return "UP" in run.stdout

    @staticmethod
    def _node_idle() -> bool:
        run = subprocess.run([_bin("sinfo"), "-h", "-o", "%T"], capture_output=True, text=True)
        return run.stdout.strip() == "idle"

    def stop(self) -> None:
        """Terminate the daemons this object started (by PID), newest first; unlink the config."""
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.processes.clear()
        for link in self.links:
            if link.is_symlink():
                link.unlink()
        self.links.clear()

    @staticmethod
    def jobs() -> list[dict[str, str]]:
        """SLURM's record of every job it still knows: one dict of KEY=value fields per job."""
        out = subprocess.run(
            [_bin("scontrol"), "show", "job", "-o", "-d"], capture_output=True, text=True, check=True
        ).stdout
        return [dict(re.findall(r"(\S+?)=(\S*)", line)) for line in out.splitlines() if line.strip()]
