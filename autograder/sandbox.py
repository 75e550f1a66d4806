"""Start a Jupyter kernel inside bubblewrap, so that student code cannot reach the grader or its neighbours.

What the sandbox protects against (DESIGN.md, sections 1 and 7):

* reading the solutions, the repository, the gradebook or other submissions: none of them is mounted;
  the kernel sees the system and the Python environment read-only, an empty private /tmp and its own
  socket folder, nothing else;
* filling a disk or the host's memory with files: every writable place is a size-capped tmpfs inside the
  sandbox (its home, /tmp, /dev/shm; /dev itself is read-only), and the socket folder shared with the
  grader is locked read-only for the kernel once its sockets exist (:meth:`SandboxedKernelManager.lock_run_dir`);
* the network: ``--unshare-net`` leaves only a loopback of its own;
* undoing the sandbox from inside: ``--cap-drop ALL`` plus a seccomp filter (:func:`seccomp_program`, x86_64)
  that answers EPERM to new namespaces, ptrace, the kernel keyring,
  bpf, mount, perf events, kexec and module loading;
* outliving the grader or touching its processes: own PID namespace, new session, ``--die-with-parent``;
* exhausting the machine or slowing a neighbour: one cgroup per sandbox (:class:`SandboxCgroup`) caps the
  memory of all its processes together, its CPU (one CPU's worth by default) and its process count; where
  a controller cannot be written the fallbacks are stated in :meth:`SandboxCgroup.fallbacks` (``prlimit``'s
  per-process address space, processes, CPU seconds and file size always apply, and :class:`Watchdog`
  polls the sandbox's memory and socket folder from outside);
* leaving secrets or folders behind when a worker dies: every kernel folder lives in a per-run folder
  removed at exit, and folders and cgroups of dead processes are swept (:func:`sweep_stale`).

The notebook client stays outside and talks to the kernel over Unix sockets (ZeroMQ ``ipc``) in that
folder; :class:`CappedKernelClient` refuses any message larger than ``Limits.message_mb`` before it is read.
Where bubblewrap is missing or broken, :func:`check_bwrap` says why, and the command line refuses to grade
unless ``--unsafe-no-sandbox`` is given.
"""
from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import zmq
from jupyter_client import AsyncKernelManager
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.connect import channel_socket_types

BWRAP = shutil.which("bwrap") or "/usr/bin/bwrap"
PRLIMIT = shutil.which("prlimit") or "/usr/bin/prlimit"
NICE = shutil.which("nice") or "/usr/bin/nice"
SANDBOX_HOME = "/home/student"
# Only these parts of /etc are shown: enough for the dynamic loader, locale, fonts and TLS certificates.
ETC_ENTRIES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "passwd", "group", "nsswitch.conf",
               "localtime", "fonts", "ssl", "ca-certificates", "mime.types", "matplotlibrc", "hosts")
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandbox.

    ``memory_mb`` caps every process's address space and, where a memory cgroup can be made, all the
    sandbox's processes and tmpfs files together; ``cpus`` is the CPU share of the whole sandbox;
    ``output_mb`` the output one notebook may keep in the grader (all cells, all message types) and
    ``message_mb`` the largest single message the grader will read from the kernel."""

    cpu_seconds: int = 900
    memory_mb: int = 4096
    processes: int = 256
    file_size_mb: int = 256
    disk_mb: int = 512  # size of each of the sandbox's two writable tmpfs (its home and /tmp)
    shm_mb: int = 64  # size of the sandbox's /dev/shm
    cpus: float = 1.0
    output_mb: int = 16
    message_mb: int = 8
    run_dir_mb: int = 16  # socket folder, where it cannot be locked (the watchdog's bound)
    cgroups: bool = True  # False: use the fallbacks only (tests, or hosts whose cgroups misbehave)

    def prlimit_args(self) -> list[str]:
        return [PRLIMIT, f"--cpu={self.cpu_seconds}", f"--as={self.memory_mb * MB}",
                f"--nproc={self.processes}", f"--fsize={self.file_size_mb * MB}", "--"]


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


SECCOMP_FD = 3  # the filter's file descriptor, opened by the start script (:func:`start_script_prefix`)


def bwrap_prefix(run_dir: str, limits: Limits, seccomp_fd: int | None = None) -> list[str]:
    """The bubblewrap and prlimit command that wraps the kernel command.

    The kernel's home (its working folder), /tmp and /dev/shm are size-capped tmpfs inside the sandbox and
    /dev is read-only, so that writing files can fill neither the host's disk nor its memory."""
    size = str(limits.disk_mb * MB)
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
    cmd += ["--proc", "/proc", "--dev", "/dev", "--size", str(limits.shm_mb * MB), "--tmpfs", "/dev/shm",
            "--remount-ro", "/dev", "--bind", run_dir, run_dir,
            "--size", size, "--tmpfs", SANDBOX_HOME, "--remount-ro", "/", "--chdir", SANDBOX_HOME,
            "--unshare-all", "--cap-drop", "ALL", "--die-with-parent", "--new-session", "--clearenv"]
    if seccomp_fd is not None:
        cmd += ["--seccomp", str(seccomp_fd)]
    for key, value in kernel_env().items():
        cmd += ["--setenv", key, value]
    return cmd + limits.prlimit_args()


# ---------------------------------------------------------------------------------------------- seccomp
# A classic-BPF program, assembled by hand (as bubblewrap's own demo does), for x86_64. Each denied call
# returns EPERM; clone3 returns ENOSYS (its flags sit in memory a filter cannot read, so the C library
# falls back to clone, whose flags are checked); any other architecture or the x32 ABI gets EPERM.
AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
DENIED_SYSCALLS_X86_64 = {
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312,
    "add_key": 248, "request_key": 249, "keyctl": 250, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
    "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "setns": 308, "mount_setattr": 442,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "open_by_handle_at": 304, "name_to_handle_at": 303, "kexec_load": 246, "kexec_file_load": 320,
    "init_module": 175, "finit_module": 313, "delete_module": 176, "swapon": 167, "swapoff": 168,
    "reboot": 169, "acct": 163, "quotactl": 179, "syslog": 103, "iopl": 172, "ioperm": 173,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    # a session of its own would be a scheduler autogroup of its own: one CPU share per process instead of
    # one per sandbox where no cpu cgroup bounds it
    "setsid": 112,
}
SYSCALL_CLONE, SYSCALL_UNSHARE, SYSCALL_CLONE3 = 56, 272, 435
CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
CLONE_NEWTIME = 0x00000080  # unshare only: in clone's flags these bits are the exit signal
EPERM, ENOSYS = 1, 38
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
BPF_LD_W_ABS, BPF_JEQ, BPF_JGE, BPF_JSET, BPF_RET = 0x20, 0x15, 0x35, 0x45, 0x06
OFFSET_NR, OFFSET_ARCH, OFFSET_ARG0 = 0, 4, 16


def assemble(program: list[tuple]) -> bytes:
    """Classic BPF from (op, k[, label_if_true[, label_if_false]]) rows and ('label', name) markers."""
    labels, rows = {}, []
    for row in program:
        if row[0] == "label":
            labels[row[1]] = len(rows)
        else:
            rows.append(row)
    out = b""
    for at, (op, k, *targets) in enumerate(rows):
        jt, jf = ((labels[t] - at - 1 if t else 0) for t in (targets + [None, None])[:2])
        out += struct.pack("=HBBI", op, jt, jf, k)
    return out


def seccomp_program() -> bytes:
    """The sandbox's seccomp filter (x86_64), as bytes for ``bwrap --seccomp FD``."""
    rows = [(BPF_LD_W_ABS, OFFSET_ARCH), (BPF_JEQ, AUDIT_ARCH_X86_64, None, "deny"),
            (BPF_LD_W_ABS, OFFSET_NR), (BPF_JGE, X32_SYSCALL_BIT, "deny")]
    rows += [(BPF_JEQ, nr, "deny") for nr in sorted(DENIED_SYSCALLS_X86_64.values())]
    rows += [(BPF_JEQ, SYSCALL_CLONE3, "nosys"), (BPF_JEQ, SYSCALL_CLONE, "clone"),
             (BPF_JEQ, SYSCALL_UNSHARE, "unshare"), (BPF_RET, SECCOMP_RET_ALLOW),
             ("label", "clone"), (BPF_LD_W_ABS, OFFSET_ARG0), (BPF_JSET, CLONE_NAMESPACES, "deny"),
             (BPF_RET, SECCOMP_RET_ALLOW),
             ("label", "unshare"), (BPF_LD_W_ABS, OFFSET_ARG0), (BPF_JSET, CLONE_NAMESPACES | CLONE_NEWTIME, "deny"),
             (BPF_RET, SECCOMP_RET_ALLOW),
             ("label", "deny"), (BPF_RET, SECCOMP_RET_ERRNO | EPERM),
             ("label", "nosys"), (BPF_RET, SECCOMP_RET_ERRNO | ENOSYS)]
    return assemble(rows)


def seccomp_supported() -> bool:
    """The hand-built filter is for x86_64 only; elsewhere the sandbox runs without it (stated in DESIGN.md)."""
    return os.uname().machine == "x86_64"


# ---------------------------------------------------------------------------------------------- cgroups
CGROUP_ROOT = "/sys/fs/cgroup"
PIDS_CGROUP_ROOT = "/sys/fs/cgroup/pids"  # cgroup v1 pids controller, where the host offers one
CGROUP_PREFIX = "autograder-"


def own_cgroup_paths() -> dict[str, str]:
    """controller ('' for the v2 hierarchy) -> this process's cgroup path, from /proc/self/cgroup."""
    paths = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return paths
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def cgroup_v2() -> bool:
    return os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers"))


def write(path: str, value: str) -> bool:
    try:
        with open(path, "w") as fh:
            fh.write(value)
        return True
    except OSError:
        return False


def read_counter(path: str, key: str) -> int:
    """The number after ``key`` in a 'key value' cgroup file (0 when absent)."""
    try:
        for line in Path(path).read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def make_child(parents: list[str]) -> str | None:
    """A new cgroup under the first of ``parents`` that can be written; its name holds our pid (sweeps)."""
    for parent in parents:
        if os.path.isdir(parent) and os.access(parent, os.W_OK):
            sweep_stale_cgroups(parent)
            try:
                return tempfile.mkdtemp(prefix=f"{CGROUP_PREFIX}{os.getpid()}-", dir=parent)
            except OSError:
                continue
    return None


class SandboxCgroup:
    """The cgroups of one sandbox: memory (all its processes and tmpfs files together), CPU (``limits.cpus``
    CPUs' worth, whatever the number of processes) and process count. cgroup v2 (one folder) or v1 (one
    folder per controller); each controller that cannot be made is simply absent (see :meth:`fallbacks`)."""

    def __init__(self, limits: Limits):
        self.dirs: dict[str, str] = {}  # controller -> folder
        self.removed_oom_kills: int | None = None  # the count read just before the folders were removed
        if not limits.cgroups:
            return
        if cgroup_v2():
            self._make_v2(limits)
        else:
            self._make_v1(limits)

    def _make_v1(self, limits: Limits) -> None:
        own = own_cgroup_paths()
        settings = {"memory": [("memory.limit_in_bytes", str(limits.memory_mb * MB)),
                               ("memory.memsw.limit_in_bytes", str(limits.memory_mb * MB))],
                    "cpu": [("cpu.cfs_quota_us", str(int(limits.cpus * 100000))), ("cpu.cfs_period_us", "100000")],
                    "pids": [("pids.max", str(limits.processes))]}
        for controller, values in settings.items():
            root = os.path.join(CGROUP_ROOT, controller)
            mine = os.path.join(root, own.get(controller, "/").lstrip("/"))
            path = make_child([mine])  # under our own cgroup: never outside the limits the grader itself has
            if path is None:
                continue
            required_ok = write(os.path.join(path, values[0][0]), values[0][1])  # the limit itself
            for name, value in values[1:]:
                write(os.path.join(path, name), value)  # memsw exists only with swap accounting
            if required_ok:
                self.dirs[controller] = path
            else:
                remove_cgroup(path, attempts=1)

    def _make_v2(self, limits: Limits) -> None:
        mine = os.path.join(CGROUP_ROOT, own_cgroup_paths().get("", "/").lstrip("/"))
        write(os.path.join(mine, "cgroup.subtree_control"), "+memory +cpu +pids")
        path = make_child([mine])
        if path is None:
            return
        values = {"memory": ("memory.max", str(limits.memory_mb * MB)),
                  "cpu": ("cpu.max", f"{int(limits.cpus * 100000)} 100000"), "pids": ("pids.max", str(limits.processes))}
        for controller, (name, value) in values.items():
            if write(os.path.join(path, name), value):
                self.dirs[controller] = path
        write(os.path.join(path, "memory.swap.max"), "0")
        if not self.dirs:
            remove_cgroup(path, attempts=1)

    def procs_files(self) -> list[str]:
        """The cgroup.procs files the sandbox's first process writes its pid to (one per folder)."""
        return [os.path.join(d, "cgroup.procs") for d in sorted(set(self.dirs.values()))]

    def oom_kills(self) -> int:
        """How many of the sandbox's processes the kernel killed for memory (-1: no memory cgroup to ask)."""
        path = self.dirs.get("memory")
        if path is None:
            return -1
        if self.removed_oom_kills is not None:
            return self.removed_oom_kills
        if cgroup_v2():
            return read_counter(os.path.join(path, "memory.events"), "oom_kill")
        return read_counter(os.path.join(path, "memory.oom_control"), "oom_kill")

    def fallbacks(self) -> list[str]:
        """What stands in for each controller that could not be made, in plain words."""
        words = {"memory": "memory: address space per process (RLIMIT_AS) and the grader's watchdog, which sums "
                           "the sandbox's resident memory every 0.2 s and stops it over the limit",
                 "cpu": "cpu: the grader's watchdog pauses the sandbox (SIGSTOP/SIGCONT) whenever its processes "
                        "together used more than their share of CPU time; the kernel runs at nice 10",
                 "pids": "pids: RLIMIT_NPROC (not enforced for root) and the memory bound"}
        return [text for controller, text in words.items() if controller not in self.dirs]

    def remove(self) -> None:
        if self.dirs and self.removed_oom_kills is None:
            self.removed_oom_kills = self.oom_kills()
        for path in sorted(set(self.dirs.values())):
            kill_cgroup(path)
            remove_cgroup(path)


def available_controllers() -> set[str]:
    """The controllers a sandbox gets on this host (a probe cgroup is made and removed)."""
    cgroup = SandboxCgroup(Limits())
    try:
        return set(cgroup.dirs)
    finally:
        cgroup.remove()


def kill_cgroup(path: str) -> None:
    """SIGKILL whatever is left in a cgroup (a process that escaped the sandbox's process tree)."""
    try:
        pids = [int(p) for p in Path(path, "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def new_pids_cgroup(limit: int) -> str | None:
    """A v1 pids cgroup capping a process count (kept for callers of the old interface)."""
    cgroup = SandboxCgroup(Limits(processes=limit))
    for controller in ("memory", "cpu"):
        path = cgroup.dirs.pop(controller, None)
        if path and path not in cgroup.dirs.values():
            remove_cgroup(path, attempts=1)
    return cgroup.dirs.get("pids")


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


def start_script_prefix(procs_files: list[str], seccomp_file: str | None) -> list[str]:
    """A shell that moves itself into the sandbox's cgroups and opens the seccomp filter as fd 3, then execs
    the sandbox (its processes inherit both). Exit 97 when a cgroup refuses it."""
    if not procs_files and not seccomp_file:
        return []
    script = ('seccomp="$1"; shift; while [ "$1" != "--" ]; do echo $$ > "$1" || exit 97; shift; done; shift; '
              f'if [ -n "$seccomp" ]; then exec {SECCOMP_FD}< "$seccomp"; fi; exec "$@"')
    return ["/bin/sh", "-c", script, "sandbox-start", seccomp_file or "", *procs_files, "--"]


# --------------------------------------------------------------------------------- folders and sweeping
RUN_DIR_ENV = "AUTOGRADER_RUN_DIR"
RUN_PREFIX = "autograder-run-"
KERNEL_PREFIX = "autograder-kernel-"
NOBODY = 65534


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_pid(name: str, prefix: str) -> int | None:
    """The pid in a name made by this module ('autograder-kernel-<pid>-xxxx'), or None (another format)."""
    match = re.match(re.escape(prefix) + r"(\d+)-", name)
    return int(match.group(1)) if match else None


def sweep_stale(folder: str, prefix: str, legacy_age_s: float = 86400) -> None:
    """Remove folders under ``folder`` named ``prefix<pid>-...`` whose process is gone, and folders of the old
    format ``prefix<random>`` (no pid) older than ``legacy_age_s``."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        if not entry.name.startswith(prefix) or not entry.is_dir(follow_symlinks=False):
            continue
        pid = owner_pid(entry.name, prefix)
        try:
            stale = not pid_alive(pid) if pid is not None else now - entry.stat().st_mtime > legacy_age_s
        except OSError:
            continue
        if stale:
            shutil.rmtree(entry.path, ignore_errors=True)


def sweep_stale_cgroups(parent: str) -> None:
    """Remove cgroups made by a grader process that is gone (its sandbox, killed with it, left them empty)."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        pid = owner_pid(name, CGROUP_PREFIX)
        if pid is not None and not pid_alive(pid):
            kill_cgroup(os.path.join(parent, name))
            remove_cgroup(os.path.join(parent, name), attempts=3)


def remove_run_dir(path: str, creator: int) -> None:
    if os.getpid() == creator:  # not in a forked child that inherited the handler
        shutil.rmtree(path, ignore_errors=True)


def run_parent() -> str:
    """This run's folder for kernel folders: made once by the first process that needs it (the grader, whose
    workers inherit it through ``AUTOGRADER_RUN_DIR``), removed when that process exits; stale runs' folders
    (their process gone) are swept when a new one is made."""
    current = os.environ.get(RUN_DIR_ENV, "")
    if current and os.path.isdir(current):
        return current
    tmp = tempfile.gettempdir()
    sweep_stale(tmp, RUN_PREFIX)
    sweep_stale(tmp, KERNEL_PREFIX)
    path = tempfile.mkdtemp(prefix=f"{RUN_PREFIX}{os.getpid()}-")
    os.environ[RUN_DIR_ENV] = path
    atexit.register(remove_run_dir, path, os.getpid())
    try:  # multiprocessing workers leave through os._exit: their finalizers still run, atexit does not
        from multiprocessing import util
        util.Finalize(None, remove_run_dir, args=(path, os.getpid()), exitpriority=0)
    except Exception:
        pass
    return path


def new_workdir() -> str:
    """A private folder for one kernel (sockets and the seccomp filter), under this run's folder; folders
    left by a dead worker of the same run are swept first. Removed by the caller."""
    parent = run_parent()
    for folder, prefix in ((tempfile.gettempdir(), RUN_PREFIX), (tempfile.gettempdir(), KERNEL_PREFIX),
                           (parent, KERNEL_PREFIX)):
        sweep_stale(folder, prefix)
    return tempfile.mkdtemp(prefix=f"{KERNEL_PREFIX}{os.getpid()}-", dir=parent)


def folder_bytes(path: str) -> int:
    """Bytes of disk used by the files under ``path`` (allocated blocks, so sparse files count as written)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


# ---------------------------------------------------------------------------------------------- watchdog
def process_tree(root_pid: int) -> list[int]:
    """``root_pid`` and all its descendants (processes in the sandbox's PID namespace stay under it)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """CPU time used by these processes and the children they have reaped (utime+stime+cutime+cstime)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path("/proc", str(pid), "stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15])
        except (OSError, ValueError, IndexError):
            pass
    return total / ticks


def signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except OSError:
            pass


def resident_bytes(pids: list[int]) -> int:
    """Memory of these processes together: the sum of their proportional set sizes (a page shared by n
    processes counts 1/n for each, so forked children are not counted many times); RSS where PSS is unknown."""
    return sum(process_memory(pid) for pid in pids)


def process_memory(pid: int) -> int:
    try:
        for line in Path("/proc", str(pid), "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(Path("/proc", str(pid), "statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class Watchdog:
    """Checks from outside what no cgroup or lock bounds here: the resident memory of all the sandbox's
    processes together (when there is no memory cgroup) and the size of the socket folder (when it could
    not be locked). :meth:`check` returns why the sandbox must stop ('' while all is well). Without a cpu
    cgroup, :meth:`cpu_debt` says how long the sandbox must be paused (SIGSTOP) to stay within
    ``limits.cpus`` CPUs' worth (with a burst of ``CPU_BURST_S``)."""

    CPU_BURST_S = 0.5

    def __init__(self, km: "SandboxedKernelManager"):
        self.km = km
        self.started = time.monotonic()

    def cpu_debt(self) -> float:
        pid = self.km.kernel_pid()
        if pid is None or "cpu" in self.km.cgroup.dirs:
            return 0.0
        allowed = self.km.limits.cpus * (time.monotonic() - self.started) + self.CPU_BURST_S
        used = cpu_seconds(process_tree(pid))
        return min(1.0, (used - allowed) / self.km.limits.cpus) if used > allowed else 0.0

    def check(self) -> str:
        limits = self.km.limits
        pid = self.km.kernel_pid()
        if pid is not None and "memory" not in self.km.cgroup.dirs:
            used = resident_bytes(process_tree(pid))
            if used > limits.memory_mb * MB:
                return f"memory: its processes held {used // MB} MB together, over the limit of {limits.memory_mb} MB"
        if not self.km.run_dir_locked:
            used = folder_bytes(self.km.run_dir)
            if used > limits.run_dir_mb * MB:
                return f"disk: it wrote {used // MB} MB into its socket folder, over the limit of {limits.run_dir_mb} MB"
        return ""


# ------------------------------------------------------------------------------------- client and manager
class CappedKernelClient(AsyncKernelClient):
    """A kernel client whose sockets refuse any message over ``max_message_bytes`` (ZeroMQ's MAXMSGSIZE:
    the peer is disconnected and the message never reaches the grader's memory) and queue few messages.
    Each socket is watched by a monitor, so a refused message is noticed (:meth:`refused_messages`)."""

    max_message_bytes: int = 8 * MB
    receive_queue: int = 16  # at most 16 messages of at most max_message_bytes wait in the grader; more wait in the sandbox

    def _create_connected_socket(self, channel: str, identity: bytes | None = None):
        sock = self.context.socket(channel_socket_types[channel])
        sock.linger = 1000
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        sock.setsockopt(zmq.RCVHWM, self.receive_queue)
        if identity:
            sock.identity = identity
        if getattr(self, "curve_publickey", None) is not None:
            sock.curve_secretkey, sock.curve_publickey = self.curve_secretkey, self.curve_publickey
            sock.curve_serverkey = self.curve_publickey
        self.watch_disconnects(channel, sock)
        sock.connect(self._make_url(channel))
        return sock

    def watch_disconnects(self, channel: str, sock) -> None:
        """A monitor (a plain, non-async socket on the same ZeroMQ context) of the socket's disconnections."""
        address = f"inproc://autograder-monitor-{id(sock)}"
        sock.monitor(address, zmq.EVENT_DISCONNECTED)
        monitor = zmq.Context.shadow(self.context.underlying).socket(zmq.PAIR)
        monitor.connect(address)
        self.__dict__.setdefault("_monitors", []).append((channel, monitor))

    def refused_messages(self) -> list[str]:
        """Channels that dropped their connection since the last call (the kernel sent an oversized message)."""
        seen = []
        for channel, monitor in self.__dict__.get("_monitors", []):
            try:
                while monitor.poll(0):
                    monitor.recv_multipart(zmq.NOBLOCK)
                    seen.append(channel)
            except zmq.ZMQError:
                pass
        return seen

    def close_monitors(self) -> None:
        for _, monitor in self.__dict__.pop("_monitors", []):
            try:
                monitor.close(linger=0)
            except zmq.ZMQError:
                pass

    def stop_channels(self) -> None:
        """Close the monitors first: they live on a shadow of the channels' ZeroMQ context, which the context's
        own destroy() does not close, so its term() would wait for them forever (seen: a worker hung in
        nbclient's cleanup after its kernel died)."""
        self.close_monitors()
        super().stop_channels()


class SandboxedKernelManager(AsyncKernelManager):
    """A KernelManager whose kernel command runs inside bubblewrap (or plainly when ``sandboxed`` is False),
    in its own cgroups, under the seccomp filter, with a client that bounds what it reads."""

    def __init__(self, *, workdir: str, limits: Limits, sandboxed: bool = True, **kwargs):
        super().__init__(kernel_name="python3", transport="ipc", **kwargs)
        self.client_factory = CappedKernelClient
        self.workdir = workdir
        self.run_dir = os.path.join(workdir, "run")
        self.home_dir = os.path.join(workdir, "home")
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        os.makedirs(self.home_dir, mode=0o700, exist_ok=True)
        self.limits = limits
        self.sandboxed = sandboxed
        self.run_dir_locked = False
        self.watchdog_reason = ""  # set when the watchdog stopped the sandbox
        self.prepare_run_dir()
        self.cgroup = SandboxCgroup(limits)
        self.seccomp_file = self.write_seccomp() if sandboxed and seccomp_supported() else None
        self.connection_file = os.path.join(self.run_dir, "kernel.json")
        self.ip = os.path.join(self.run_dir, "k")

    def client(self, **kwargs):
        kc = super().client(**kwargs)
        kc.max_message_bytes = self.limits.message_mb * MB
        return kc

    def write_seccomp(self) -> str:
        path = os.path.join(self.workdir, "seccomp.bpf")  # outside the run folder: not in the sandbox
        Path(path).write_bytes(seccomp_program())
        return path

    def prepare_run_dir(self) -> None:
        """As root, give the socket folder to 'nobody' (writable by all until locked): the kernel, root without
        capabilities inside the sandbox, can then make its sockets but never change the folder's mode."""
        if os.geteuid() == 0 and self.sandboxed:
            os.chown(self.run_dir, NOBODY, NOBODY)
            os.chmod(self.run_dir, 0o777)

    def lock_run_dir(self) -> None:
        """Once the kernel's sockets exist: drop the connection file (the kernel has read it) and make the
        folder read-only for the kernel, so the only writable place shared with the host is closed."""
        try:
            os.remove(self.connection_file)
        except OSError:
            pass
        if os.geteuid() == 0 and self.sandboxed:
            os.chmod(self.run_dir, 0o555)
            self.run_dir_locked = True

    def kernel_pid(self) -> int | None:
        process = getattr(self.provisioner, "process", None) if self.provisioner else None
        return process.pid if process is not None and process.poll() is None else None

    def pause_sandbox(self, stop: bool) -> None:
        """SIGSTOP (or SIGCONT) every process of the sandbox: the watchdog's CPU throttle without a cgroup."""
        pid = self.kernel_pid()
        if pid:
            signal_all(process_tree(pid), signal.SIGSTOP if stop else signal.SIGCONT)

    def stop_sandbox(self, reason: str) -> None:
        """Kill the sandbox at once (the watchdog's verdict): its first process, then whatever is left."""
        self.watchdog_reason = reason
        pid = self.kernel_pid()
        for p in reversed(process_tree(pid)) if pid else []:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        if cmd and os.path.basename(cmd[0]).startswith("python"):
            cmd[0] = sys.executable  # the grader's environment, mounted read-only in the sandbox
        start = start_script_prefix(self.cgroup.procs_files(), self.seccomp_file)
        nice = [NICE, "-n", "10"] if os.path.exists(NICE) else []
        if not self.sandboxed:
            return start + nice + self.limits.prlimit_args() + cmd
        fd = SECCOMP_FD if self.seccomp_file else None
        return start + nice + bwrap_prefix(self.run_dir, self.limits, seccomp_fd=fd) + cmd

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

    def exit_code(self) -> int | None:
        process = getattr(self.provisioner, "process", None) if self.provisioner else None
        return process.poll() if process is not None else None

    def exit_description(self) -> str:
        """How the kernel process ended, in plain words ('' when unknown or still running)."""
        code = self.exit_code()
        return "" if code is None else describe_exit_code(code)

    def cleanup(self) -> None:
        """Remove the sandbox's cgroups (killing any straggler) and its folder."""
        self.cgroup.remove()
        shutil.rmtree(self.workdir, ignore_errors=True)


SIGNAL_WORDS = {6: "aborted (SIGABRT)", 7: "bus error (SIGBUS)", 9: "killed (SIGKILL)",
                11: "segmentation fault (SIGSEGV)", 24: "CPU time limit exceeded (SIGXCPU)",
                25: "file size limit exceeded (SIGXFSZ)", 8: "floating point exception (SIGFPE)"}


def exit_signal(code: int) -> int:
    """bwrap exits with 128+N when its child died of signal N; Popen reports -N for a direct child."""
    return -code if code < 0 else code - 128 if code > 128 else 0


def describe_exit_code(code: int) -> str:
    signal_number = exit_signal(code)
    if signal_number:
        return SIGNAL_WORDS.get(signal_number, f"killed by signal {signal_number}")
    return f"exited with code {code}"


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
