"""Every limit of one sandbox, on tiny notebooks run through ``autograder.runner.run_notebook`` directly.

One test per limit: the grader's memory against widget floods, display-id update floods, many medium cells
and one huge line (counted before kept, refused by ZeroMQ when too large); the sandbox's writable places
(/dev/shm, /dev, the socket folder); memory of all its processes together; its CPU share beside an honest
neighbour; the seccomp filter; how a kill of its own process group is reported; folders and cgroups left by
a killed worker; and the time limit for work done in the grader (``run_with_time_limit``). Where a cgroup
controller is used, the same attack also runs with ``Limits(cgroups=False)``, so the fallback is tested too.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autograder import runner, sandbox  # noqa: E402
from autograder.runner import OUTPUT_LIMIT, run_notebook, run_with_time_limit  # noqa: E402

pytestmark = pytest.mark.skipif(sandbox.check_bwrap() is not None, reason="bubblewrap does not work here")
BOTH = pytest.mark.parametrize("cgroups", [True, False], ids=["cgroups", "fallback"])


def notebook(*sources: str):
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(textwrap.dedent(s)) for s in sources])


def run(*sources: str, cell_timeout: float = 30, total_timeout: float = 60, **limits):
    nb = notebook(*sources)
    limits.setdefault("memory_mb", 1024)
    return run_notebook(nb, cell_timeout=cell_timeout, total_timeout=total_timeout, limits=sandbox.Limits(**limits))


def kept_bytes(nb) -> int:
    return len(json.dumps([c.get("outputs", []) for c in nb.cells]))


WIDGET_FLOOD = """
from ipykernel.comm import Comm
comm = Comm(target_name='jupyter.widget', data={'state': {'_model_name': 'M', '_model_module': 'm',
            '_model_module_version': '1'}})
for i in range(60):
    comm.send({'method': 'update', 'state': {f'k{i}': 'y' * 1_000_000}})
"""
DISPLAY_FLOOD = """
from IPython.display import display
handle = display('start', display_id=True)
for i in range(60):
    handle.update('z' * 1_000_000 + str(i))
"""
HUGE_LINE = "print('x' * 250_000_000)"
MEDIUM_CELL = "print('m' * 1_900_000)"


def test_widget_state_flood_is_counted_and_capped():
    result = run(WIDGET_FLOOD, "print('after')", output_mb=8, memory_mb=2048)
    assert result.ending == OUTPUT_LIMIT and "8 MB in all" in result.ending_detail
    assert kept_bytes(result.notebook) < 3_000_000


def test_display_id_updates_count_towards_the_caps():
    result = run(DISPLAY_FLOOD, "print('after')", output_mb=8, memory_mb=2048)
    assert result.ending == OUTPUT_LIMIT
    assert result.cells[0].output_truncated
    assert kept_bytes(result.notebook) < 3_000_000
    assert "output was not kept" in json.dumps(result.notebook.cells[0].outputs)


def test_many_medium_cells_hit_the_notebook_total():
    result = run(*[MEDIUM_CELL] * 12, "print('never kept')", output_mb=8)
    assert result.ending == OUTPUT_LIMIT and "cell 5" in result.ending_detail
    assert kept_bytes(result.notebook) < 9_000_000
    assert "never kept" not in json.dumps(result.notebook.cells[-1].outputs)
    assert "notebook's output passed 8 MB" in json.dumps(result.notebook.cells[-1].outputs)


def test_one_huge_line_is_refused_before_it_is_read():
    result = run(HUGE_LINE, "print('after')", memory_mb=4096)
    assert result.ending == OUTPUT_LIMIT, result
    assert "larger than 8 MB" in result.ending_detail and "cell 1" in result.ending_detail
    assert kept_bytes(result.notebook) < 100_000


PEAK_RSS = """
import sys
sys.path.insert(0, {repo!r})
import nbformat
from autograder.runner import run_notebook
from autograder.sandbox import Limits
cells = {cells!r}
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
run = run_notebook(nb, cell_timeout=60, total_timeout=120, limits=Limits(memory_mb=4096))
peak_kb = next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM:'))
print(run.ending + '|' + str(peak_kb // 1024))
"""


def peak_rss_mb(cells: list[str]) -> tuple[str, int]:
    """How a notebook's run ended and the grading process's peak resident memory (VmHWM, its own, not the
    parent's that ru_maxrss would carry across exec)."""
    code = PEAK_RSS.format(repo=str(REPO), cells=cells)
    env = {k: v for k, v in os.environ.items() if k != sandbox.RUN_DIR_ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    ending, peak = out.stdout.strip().splitlines()[-1].split("|")
    return ending, int(peak)


def test_the_graders_memory_stays_bounded_under_hostile_output():
    _, baseline = peak_rss_mb(["print('hello')"])
    ending, hostile = peak_rss_mb([WIDGET_FLOOD, DISPLAY_FLOOD, *[MEDIUM_CELL] * 4, HUGE_LINE])
    print(f"peak RSS of the grading process: {baseline} MB for an honest notebook, {hostile} MB for a hostile one")
    assert ending == OUTPUT_LIMIT
    assert hostile < baseline + 150, (baseline, hostile)


def test_dev_shm_and_dev_are_capped():
    fill = "open('/dev/shm/fill', 'wb').write(b'0' * 100 * 2**20)"
    result = run(fill, "open('/dev/new-file', 'wb')", shm_mb=16)
    assert result.cells[0].error == "OSError" and "No space left" in result.cells[0].error_value
    assert "Read-only file system" in result.cells[1].error_value


SOCKET_FOLDER_FILL = """
import os, sys
folder = os.path.dirname(sys.argv[sys.argv.index('-f') + 1])
with open(os.path.join(folder, 'fill'), 'wb') as out:
    for _ in range(64):
        out.write(b'0' * 2**20)
"""


def test_socket_folder_is_locked_read_only():
    result = run(SOCKET_FOLDER_FILL, "import os, sys\nos.chmod(os.path.dirname(sys.argv[sys.argv.index('-f') + 1]), 0o777)")
    assert result.cells[0].error == "PermissionError", result
    assert result.cells[1].error == "PermissionError", result
    assert result.ending == "ok"


def test_socket_folder_fallback_the_watchdog_stops_a_fill(monkeypatch):
    # where the folder cannot be locked (a grader that is not root), the watchdog measures it
    monkeypatch.setattr(sandbox.SandboxedKernelManager, "prepare_run_dir", lambda self: None)
    monkeypatch.setattr(sandbox.SandboxedKernelManager, "lock_run_dir", lambda self: None)
    slow_fill = SOCKET_FOLDER_FILL.replace("out.write(b'0' * 2**20)", "out.write(b'0' * 2**20); out.flush()\n"
                                           "        __import__('time').sleep(0.02)")
    result = run(slow_fill, run_dir_mb=8)
    assert result.ending == "kernel died" and "socket folder" in result.ending_detail, result


MANY_PROCESSES_MEMORY = """
import multiprocessing as mp, time
def hold(mb):
    block = bytearray(mb * 2**20)
    block[::4096] = b'1' * (len(block) // 4096)
    time.sleep(30)
children = [mp.get_context('fork').Process(target=hold, args=(250,)) for _ in range(6)]
for child in children:
    child.start()
time.sleep(6)
print('alive', sum(c.is_alive() for c in children))
"""


@BOTH
def test_memory_is_bounded_for_all_processes_together(cgroups):
    result = run(MANY_PROCESSES_MEMORY, "print('after')", memory_mb=1024, cgroups=cgroups)
    assert result.ending == "memory", result
    assert "1024 MB" in result.ending_detail


def test_memory_cgroup_or_its_stated_fallback():
    cgroup = sandbox.SandboxCgroup(sandbox.Limits())
    try:
        if "memory" not in cgroup.dirs:
            assert any(text.startswith("memory:") for text in cgroup.fallbacks())
        assert cgroup.oom_kills() == (0 if "memory" in cgroup.dirs else -1)
    finally:
        cgroup.remove()
    assert sandbox.SandboxCgroup(sandbox.Limits(cgroups=False)).dirs == {}


CPU_HOG = """
import multiprocessing as mp, os, time
end = time.time() + 30
def spin():
    try:
        os.setsid()  # a session of its own: the scheduler's autogroup would give each its own share
    except OSError:
        pass  # refused by the seccomp filter
    while time.time() < end:
        pass
for _ in range(48):
    mp.get_context('fork').Process(target=spin, daemon=True).start()
time.sleep(30)
"""
HONEST_WORK = """
import time
start = time.process_time()
while time.process_time() - start < 3:
    pass
print('done')
"""


@BOTH
def test_a_cpu_hog_does_not_push_a_neighbour_into_timeout(cgroups):
    alone = run(HONEST_WORK, cgroups=cgroups)
    hog = threading.Thread(target=run, args=(CPU_HOG,), kwargs=dict(cell_timeout=45, total_timeout=50, cgroups=cgroups))
    hog.start()
    time.sleep(6)  # the 48 processes are spinning
    try:
        # 3 s of CPU: 5-6 s alone and 8-9 s beside the hog here (kernel start included); over 30 s without the bound
        beside = run(HONEST_WORK, cell_timeout=20, total_timeout=20, cgroups=cgroups)
    finally:
        hog.join()
    print(f"honest notebook: {alone.seconds:.1f} s alone, {beside.seconds:.1f} s beside the hog "
          f"(ratio {beside.seconds / alone.seconds:.2f})")
    assert alone.ending == "ok" and beside.ending == "ok", beside


SECCOMP_PROBE = """
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
def errno_of(result):
    return errno.errorcode.get(ctypes.get_errno(), '?') if result == -1 else 'allowed'
print(json.dumps({
    'unshare_newuser': errno_of(libc.unshare(0x10000000)),
    'ptrace': errno_of(libc.syscall(101, 0, 0, 0, 0)),
    'keyctl': errno_of(libc.syscall(250, 0, 0, 0, 0)),
    'add_key': errno_of(libc.syscall(248, 0, 0, 0, 0, 0)),
    'bpf': errno_of(libc.syscall(321, 0, 0, 0)),
    'mount': errno_of(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)),
    'perf_event_open': errno_of(libc.syscall(298, 0, 0, -1, -1, 0)),
    'setsid': errno_of(libc.setsid()),
}))
"""


@pytest.mark.skipif(not sandbox.seccomp_supported(), reason="the hand-built filter is for x86_64")
def test_seccomp_denies_namespaces_ptrace_keyring_bpf_mount_setsid():
    result = run("import json, os, subprocess", SECCOMP_PROBE,
                 "import os\npid = os.fork()\nif pid == 0:\n    os._exit(0)\nprint(os.waitpid(pid, 0)[1], "
                 "subprocess.run(['true']).returncode)")
    outcome = json.loads(result.notebook.cells[1].outputs[0]["text"])
    assert outcome == dict.fromkeys(outcome, "EPERM"), outcome
    assert result.notebook.cells[2].outputs[0]["text"].strip() == "0 0"  # fork and exec still work


@BOTH
def test_killing_its_own_process_group_is_not_called_memory(cgroups):
    result = run("import os, signal\nos.killpg(0, signal.SIGKILL)", "print('after')", cgroups=cgroups)
    assert result.ending == "kernel died", result
    assert "SIGKILL" in result.ending_detail and "out of memory)" not in result.ending_detail
    memory_cgroup = cgroups and "memory" in sandbox.available_controllers()
    expected = "a signal it or its children sent" if memory_cgroup else "out of memory, or killed by its own code"
    assert expected in result.ending_detail, result.ending_detail


KILLED_WORKER = """
import sys, time
sys.path.insert(0, {repo!r})
import nbformat
from autograder.runner import run_notebook
from autograder.sandbox import Limits
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('import time; time.sleep(120)')])
run_notebook(nb, cell_timeout=200, total_timeout=200, limits=Limits(memory_mb=1024))
"""


def kernel_folders_of(pid: int) -> list[Path]:
    return [p for p in Path("/tmp").glob(f"{sandbox.RUN_PREFIX}{pid}-*/{sandbox.KERNEL_PREFIX}{pid}-*")]


def cgroups_of(pid: int) -> list[Path]:
    return [p for p in Path(sandbox.CGROUP_ROOT).glob(f"**/{sandbox.CGROUP_PREFIX}{pid}-*")]


def test_a_killed_worker_leaves_no_kernel_folder_or_cgroup():
    env = {k: v for k, v in os.environ.items() if k != sandbox.RUN_DIR_ENV}
    worker = subprocess.Popen([sys.executable, "-c", KILLED_WORKER.format(repo=str(REPO))], env=env)
    deadline = time.monotonic() + 60
    while not kernel_folders_of(worker.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert kernel_folders_of(worker.pid), "the worker never started its kernel"
    time.sleep(2)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    time.sleep(1)  # bwrap --die-with-parent: the sandbox goes with it
    folder = sandbox.new_workdir()  # the next kernel's start sweeps what the dead one left
    try:
        assert not kernel_folders_of(worker.pid)
        assert not list(Path("/tmp").glob(f"{sandbox.RUN_PREFIX}{worker.pid}-*"))
        sandbox.SandboxCgroup(sandbox.Limits()).remove()  # making a cgroup sweeps the dead one's
        assert not cgroups_of(worker.pid)
    finally:
        os.rmdir(folder)


def slow(seconds):
    time.sleep(seconds)
    return "finished"


def failing():
    raise ValueError("bad page")


def test_run_with_time_limit_returns_raises_and_stops():
    assert run_with_time_limit(slow, 10, 0.1) == "finished"
    with pytest.raises(ValueError, match="bad page"):
        run_with_time_limit(failing, 10)
    with pytest.raises(TimeoutError):  # a 30 s call stopped at 1 s (were it not, the test would take 30 s)
        run_with_time_limit(slow, 1, 30)
    with pytest.raises(MemoryError):
        run_with_time_limit(bytearray, 10, 2**31, memory_mb=512)


def test_memory_cap_counts_from_what_the_child_inherited():
    """A grader that already maps more than the cap (torch alone maps gigabytes) still lets the child use
    ``memory_mb`` more, and still stops it beyond that."""
    import mmap
    reserved = mmap.mmap(-1, 2**30)  # 1 GiB mapped in the parent, never touched
    try:
        assert len(run_with_time_limit(bytearray, 10, 100 * 2**20, memory_mb=512)) == 100 * 2**20
        with pytest.raises(MemoryError):
            run_with_time_limit(bytearray, 10, 2**30, memory_mb=512)
    finally:
        reserved.close()


def test_grading_many_notebooks_leaves_no_descriptors_or_threads_behind():
    """One grader process runs a whole class: every kernel's channels, heartbeat thread and ZeroMQ context
    must close with it (they once leaked about 20 descriptors a notebook, and a class of 50 hit the limit)."""
    run("x = 1")  # warm-up: whatever is opened once per process
    before = len(os.listdir("/proc/self/fd")), threading.active_count()
    for _ in range(3):
        assert run("print(1)").ending == "ok"
    after = len(os.listdir("/proc/self/fd")), threading.active_count()
    assert after[0] <= before[0] + 2 and after[1] == before[1], f"(descriptors, threads) {before} -> {after}"


def test_time_limit_works_when_descriptors_past_1024_are_open():
    """A grader process that has run many kernels holds many descriptors; the child's pipe then gets a
    number select() cannot take."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    held = [os.open("/dev/null", os.O_RDONLY) for _ in range(1100)]
    try:
        assert run_with_time_limit(slow, 10, 0.1) == "finished"
        with pytest.raises(TimeoutError):
            run_with_time_limit(slow, 0.5, 5)
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_seccomp_program_is_well_formed():
    program = sandbox.seccomp_program()
    assert len(program) % 8 == 0 and 40 < len(program) // 8 < 4096
    assert runner.OUTPUT_LIMIT == "output limit"
