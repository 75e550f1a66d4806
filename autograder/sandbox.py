"""Start a Jupyter kernel inside bubblewrap, so that student code cannot reach the grader.

What the sandbox protects against (DESIGN.md, section 1):

* reading the solutions, the repository, the gradebook or other submissions: none of them is mounted;
  the kernel sees the system and the Python environment read-only, an empty private /tmp and its own
  working folder (the only writable place), nothing else;
* writing outside its folder: every other mount is read-only or absent; its home and /tmp are tmpfs
  capped in size (filling them cannot fill the host's disk);
* the network: ``--unshare-net`` leaves only a loopback of its own;
* undoing the sandbox from inside: ``--cap-drop ALL`` (run as root, bwrap would otherwise keep every
  capability in the sandbox's user namespace, enough to remount the read-only environment writable);
* outliving the grader or touching its processes: own PID namespace, new session, ``--die-with-parent``;
* exhausting the machine: ``prlimit`` caps CPU seconds, address space (memory), processes and file size.

The notebook client stays outside and talks to the kernel over Unix sockets (ZeroMQ ``ipc``) in a
folder shared with the sandbox. Where bubblewrap is missing or broken, :func:`check_bwrap` says why,
and the command line refuses to grade unless ``--unsafe-no-sandbox`` is given.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from jupyter_client import AsyncKernelManager

BWRAP = shutil.which("bwrap") or "/usr/bin/bwrap"
PRLIMIT = shutil.which("prlimit") or "/usr/bin/prlimit"
SANDBOX_HOME = "/home/student"
# Only these parts of /etc are shown: enough for the dynamic loader, locale, fonts and TLS certificates.
ETC_ENTRIES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "passwd", "group", "nsswitch.conf",
               "localtime", "fonts", "ssl", "ca-certificates", "mime.types", "matplotlibrc", "hosts")
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


@dataclass(frozen=True)
class Limits:
    """Resource limits of one kernel: CPU seconds, address space, processes, largest file written."""

    cpu_seconds: int = 900
    memory_mb: int = 4096
    processes: int = 256
    file_size_mb: int = 256
    disk_mb: int = 512  # size of each of the sandbox's two writable tmpfs (its home and /tmp)

    def prlimit_args(self) -> list[str]:
        mb = 1024 * 1024
        return [PRLIMIT, f"--cpu={self.cpu_seconds}", f"--as={self.memory_mb * mb}",
                f"--nproc={self.processes}", f"--fsize={self.file_size_mb * mb}", "--"]


def python_dirs() -> list[str]:
    """The folders the kernel's Python needs: the environment and the interpreter it was built from."""
    dirs = {os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix), sys.prefix, sys.base_prefix,
            os.path.dirname(os.path.realpath(sys.executable))}
    kept: list[str] = []
    for d in sorted(dirs, key=len):
        if os.path.isdir(d) and not any(d == k or d.startswith(k + os.sep) for k in kept):
            kept.append(d)
    return kept


def kernel_env() -> dict[str, str]:
    """A clean environment: nothing of the grader's (tokens, paths) leaks into the kernel."""
    path = os.pathsep.join([os.path.join(sys.prefix, "bin"), "/usr/local/bin", "/usr/bin", "/bin"])
    return {"PATH": path, "HOME": SANDBOX_HOME, "LANG": "C.UTF-8", "MPLBACKEND": "Agg", "PYTHONNOUSERSITE": "1",
            "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "TMPDIR": "/tmp"}


def bwrap_prefix(run_dir: str, limits: Limits) -> list[str]:
    """The bubblewrap and prlimit command that wraps the kernel command.

    The kernel's home (its working folder) and /tmp are size-capped tmpfs inside the sandbox, so that
    writing files can fill neither the host's disk nor its memory beyond ``limits.disk_mb`` each."""
    size = str(limits.disk_mb * 1024 * 1024)
    # /tmp first: the Python environment (a clone's .venv, say) may live under the host's /tmp, and a
    # bind made after the tmpfs stays visible on top of it.
    cmd = [BWRAP, "--size", size, "--tmpfs", "/tmp"]
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            cmd += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            cmd += ["--ro-bind", d, d]
    for entry in ETC_ENTRIES:
        if os.path.exists(os.path.join("/etc", entry)):
            cmd += ["--ro-bind", os.path.join("/etc", entry), os.path.join("/etc", entry)]
    for d in python_dirs():
        cmd += ["--ro-bind", d, d]
    cmd += ["--proc", "/proc", "--dev", "/dev", "--bind", run_dir, run_dir,
            "--size", size, "--tmpfs", SANDBOX_HOME, "--remount-ro", "/", "--chdir", SANDBOX_HOME,
            "--unshare-all", "--cap-drop", "ALL", "--die-with-parent", "--new-session", "--clearenv"]
    for key, value in kernel_env().items():
        cmd += ["--setenv", key, value]
    return cmd + limits.prlimit_args()


PIDS_CGROUP_ROOT = "/sys/fs/cgroup/pids"  # cgroup v1 pids controller, where the host offers one


def new_pids_cgroup(limit: int) -> str | None:
    """A pids cgroup capping the sandbox's process count (best effort: None where cgroups are not writable).

    RLIMIT_NPROC is not enforced for root, so when the grader runs as root this is what stops a fork bomb."""
    if not os.access(PIDS_CGROUP_ROOT, os.W_OK):
        return None
    try:
        path = tempfile.mkdtemp(prefix="autograder-", dir=PIDS_CGROUP_ROOT)
        with open(os.path.join(path, "pids.max"), "w") as fh:
            fh.write(str(limit))
        return path
    except OSError:
        return None


def remove_cgroup(path: str | None, attempts: int = 50) -> None:
    """Remove the cgroup once its last process is gone (killed processes take a moment to be reaped)."""
    for _ in range(attempts if path else 0):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)


def enter_cgroup_prefix(path: str | None) -> list[str]:
    """A shell that moves itself into the cgroup, then execs the sandbox (its processes inherit it)."""
    if not path:
        return []
    return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', path]


def check_bwrap() -> str | None:
    """None when bubblewrap can start a sandbox here; otherwise why not, in plain words."""
    if not os.path.exists(BWRAP):
        return "bubblewrap (bwrap) is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    if not os.path.exists(PRLIMIT):
        return "prlimit (util-linux) is not installed"
    probe = [BWRAP, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-all",
             "--die-with-parent", "--new-session", "true"]
    try:
        result = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not be started: {exc}"
    if result.returncode != 0:
        return ("bubblewrap cannot create a sandbox on this machine (user namespaces disabled, or a container "
                f"without the privileges it needs): {result.stderr.strip() or 'exit code ' + str(result.returncode)}")
    return None


class SandboxedKernelManager(AsyncKernelManager):
    """A KernelManager whose kernel command runs inside bubblewrap (or plainly when ``sandboxed`` is False)."""

    def __init__(self, *, workdir: str, limits: Limits, sandboxed: bool = True, **kwargs):
        super().__init__(kernel_name="python3", transport="ipc", **kwargs)
        self.workdir = workdir
        self.run_dir = os.path.join(workdir, "run")
        self.home_dir = os.path.join(workdir, "home")
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        os.makedirs(self.home_dir, mode=0o700, exist_ok=True)
        self.limits = limits
        self.sandboxed = sandboxed
        self.cgroup = new_pids_cgroup(limits.processes)
        self.connection_file = os.path.join(self.run_dir, "kernel.json")
        self.ip = os.path.join(self.run_dir, "k")

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        if cmd and os.path.basename(cmd[0]).startswith("python"):
            cmd[0] = sys.executable  # the grader's environment, mounted read-only in the sandbox
        enter = enter_cgroup_prefix(self.cgroup)
        if not self.sandboxed:
            return enter + self.limits.prlimit_args() + cmd
        return enter + bwrap_prefix(self.run_dir, self.limits) + cmd

    async def _async_pre_start_kernel(self, **kw):
        cmd, kw = await super()._async_pre_start_kernel(**kw)
        if self.sandboxed:
            kw["env"] = dict(kernel_env())  # bwrap --clearenv sets the kernel's own; keep bwrap's minimal too
        else:
            kw["env"] = {**kernel_env(), "HOME": self.home_dir, "TMPDIR": self.home_dir}
            kw["cwd"] = self.home_dir
        kw["stdout"] = kw["stderr"] = subprocess.DEVNULL  # the kernel's own banner and logs are noise here
        kw["env"].pop("JPY_PARENT_PID", None)  # its parent poller would kill a kernel in a PID namespace
        return cmd, kw

    def exit_description(self) -> str:
        """How the kernel process ended, in plain words ('' when unknown or still running)."""
        process = getattr(self.provisioner, "process", None) if self.provisioner else None
        code = process.poll() if process is not None else None
        if code is None:
            return ""
        return describe_exit_code(code)


SIGNAL_WORDS = {6: "aborted (SIGABRT)", 7: "bus error (SIGBUS)", 9: "killed (SIGKILL, e.g. out of memory)",
                11: "segmentation fault (SIGSEGV)", 24: "CPU time limit exceeded (SIGXCPU)",
                25: "file size limit exceeded (SIGXFSZ)", 8: "floating point exception (SIGFPE)"}


def describe_exit_code(code: int) -> str:
    """bwrap exits with 128+N when its child died of signal N; Popen reports -N for a direct child."""
    signal_number = -code if code < 0 else code - 128 if code > 128 else 0
    if signal_number:
        return SIGNAL_WORDS.get(signal_number, f"killed by signal {signal_number}")
    return f"exited with code {code}"


def new_workdir() -> str:
    """A private folder for one kernel (sockets and its writable home); removed by the caller."""
    return tempfile.mkdtemp(prefix="autograder-kernel-")
