"""Run a notebook cell by cell in a sandboxed kernel, from the trusted grader process.

Protects the grader and every other submission against code that loops (a wall-clock limit per cell and
per notebook), kills its kernel (os._exit, segfault, CPU limit, a kill of its own process group: 'kernel
died' with the cause), exhausts memory (MemoryError, the sandbox's memory cgroup or the watchdog:
'memory'), or floods its output: every message the kernel sends is counted as it arrives, before it is
kept, against a cap per cell and a cap for the whole notebook (stream, display data, results, display
updates, errors and widget/comm messages alike); past the notebook's cap nothing more is kept and the run
ends 'output limit'; a single message over ``Limits.message_mb`` is refused by ZeroMQ before it is read.
Whatever happens, the kernel, its folder and its cgroups are removed afterwards.

:func:`run_with_time_limit` bounds the time of any other work on student data done in the grader (rendering
a feedback page): it runs in a forked child that is killed at the deadline.
"""
from __future__ import annotations

import asyncio
import json
import os
import pickle
import resource
import select
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from .sandbox import MB, Limits, SandboxedKernelManager, Watchdog, exit_signal, new_workdir

MAX_OUTPUT_BYTES = 2_000_000  # per cell, kept in the grader's memory; more is dropped and noted
WATCHDOG_INTERVAL_S = 0.2
ALWAYS_PROCESSED = ("status", "execute_input", "clear_output")  # tiny and needed to follow the cell
OUTPUT_LIMIT = "output limit"  # a NotebookRun ending: the notebook's output passed its cap


@dataclass
class CellRun:
    """What happened to one cell: ran (bool), error name/value when it raised, seconds taken."""

    index: int
    ran: bool = False
    error: str = ""  # exception class name ('' when none)
    error_value: str = ""
    seconds: float = 0.0
    output_truncated: bool = False


@dataclass
class NotebookRun:
    """The executed notebook plus how its run ended ('ok', 'timeout', 'kernel died', 'memory', 'output limit')."""

    notebook: nbformat.NotebookNode
    cells: list[CellRun] = field(default_factory=list)
    ending: str = "ok"
    ending_detail: str = ""
    stopped_at: int | None = None  # index of the cell during which the run stopped
    seconds: float = 0.0


def message_bytes(msg: dict) -> int:
    """The size of a message's content and binary buffers (each already bounded by ZeroMQ's MAXMSGSIZE)."""
    try:
        size = len(json.dumps(msg.get("content", {}), default=str))
    except (TypeError, ValueError):
        size = len(str(msg.get("content", "")))
    return size + sum(len(b) for b in msg.get("buffers") or [])


def limit_marker(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("stream", name="stderr", text=f"[grader: {text}]\n")


class CappedClient(NotebookClient):
    """nbclient that counts every message before keeping it: per cell at most ``MAX_OUTPUT_BYTES``, per
    notebook at most ``notebook_cap`` bytes; past either, nothing more is kept for it and a marker says so."""

    def __init__(self, *args, notebook_cap: int = 16 * MB, **kwargs):
        super().__init__(*args, **kwargs)
        self.notebook_cap = notebook_cap
        self.notebook_bytes = 0
        self.output_bytes: dict[int, int] = {}
        self.truncated: set[int] = set()
        self.over_notebook_cap_at: int | None = None  # the cell during which the notebook passed its cap

    def process_message(self, msg, cell, cell_index):
        size = message_bytes(msg)
        self.notebook_bytes += size
        self.output_bytes[cell_index] = self.output_bytes.get(cell_index, 0) + size
        if msg.get("msg_type") in ALWAYS_PROCESSED:  # counted, never kept, needed to follow the cell
            return super().process_message(msg, cell, cell_index)
        if self.notebook_bytes > self.notebook_cap:
            return self.drop(cell, cell_index, f"the notebook's output passed {self.notebook_cap // MB} MB in all; "
                                               "later output was not kept", notebook=True)
        if self.output_bytes[cell_index] > MAX_OUTPUT_BYTES:
            return self.drop(cell, cell_index, f"this cell's output passed {MAX_OUTPUT_BYTES // 1_000_000} MB; "
                                               "later output was not kept")
        return super().process_message(msg, cell, cell_index)

    def handle_comm_msg(self, outs, msg, cell_index):
        """nbclient's widget handling, with a malformed comm message ignored instead of ending the run."""
        try:
            super().handle_comm_msg(outs, msg, cell_index)
        except Exception as exc:  # a forged widget message (missing keys, wrong types)
            self.log.debug("ignored a malformed comm message: %r", exc)

    def drop(self, cell, cell_index: int, why: str, notebook: bool = False):
        """Keep nothing of this message; the first drop in a cell leaves a marker output."""
        if notebook and self.over_notebook_cap_at is None:
            self.over_notebook_cap_at = cell_index
        if cell_index not in self.truncated:
            self.truncated.add(cell_index)
            cell.setdefault("outputs", []).append(limit_marker(why))
        return None


def cell_error(cell) -> tuple[str, str]:
    """(exception name, message) of the first error output of a code cell, or ('', '')."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return str(out.get("ename", "Error")), str(out.get("evalue", ""))
    return "", ""


def is_memory_error(name: str) -> bool:
    return "MemoryError" in name


def run_notebook(nb: nbformat.NotebookNode, *, cell_timeout: float, total_timeout: float, limits: Limits,
                 sandboxed: bool = True) -> NotebookRun:
    """Execute every code cell of ``nb`` (in place) in a fresh sandboxed kernel; never raises for student faults."""
    return asyncio.run(run_notebook_async(nb, cell_timeout=cell_timeout, total_timeout=total_timeout,
                                          limits=limits, sandboxed=sandboxed))


async def run_notebook_async(nb, *, cell_timeout, total_timeout, limits, sandboxed) -> NotebookRun:
    km = SandboxedKernelManager(workdir=new_workdir(), limits=limits, sandboxed=sandboxed)
    client = CappedClient(nb, km=km, timeout=cell_timeout, allow_errors=True, startup_timeout=60,
                          iopub_timeout=5, record_timing=False, kernel_name="python3",
                          notebook_cap=limits.output_mb * MB)
    result = NotebookRun(notebook=nb)
    start = time.monotonic()
    watch = None
    try:
        async with client.async_setup_kernel(cwd=None):
            km.lock_run_dir()
            watch = asyncio.ensure_future(watchdog(km))
            await run_cells(client, km, nb, result, start, cell_timeout, total_timeout)
    except DeadKernelError:
        await mark_died(result, km, result.stopped_at)
    except CellTimeoutError:
        pass  # already recorded
    except Exception as exc:  # a kernel that would not start or a broken channel: never crash the grader
        if result.ending == "ok":
            result.ending = "kernel died"
            result.ending_detail = f"the kernel failed: {type(exc).__name__}: {exc}"
    finally:
        if watch is not None:
            watch.cancel()
        await stop_kernel(km, client)
    note_memory_kills(result, km)
    note_output_limit(result, client)
    result.seconds = time.monotonic() - start
    for run in result.cells:
        run.output_truncated = run.index in client.truncated
    return result


async def stop_kernel(km: SandboxedKernelManager, client: CappedClient) -> None:
    try:
        if km.has_kernel:
            await km.shutdown_kernel(now=True)
    except Exception:
        pass
    if client.kc is not None:
        # nbclient leaves a client it did not start (we pass our own km) running: its heartbeat thread and
        # its ZeroMQ context would stay open, about 20 descriptors per notebook, until a large class made
        # the grader fail with "Too many open files". stop_channels() closes them (and the monitors first).
        client.kc.stop_channels()
    await asyncio.sleep(0)
    km.cleanup()


async def watchdog(km: SandboxedKernelManager) -> None:
    """Stop the sandbox when the watchdog finds it over a limit that no cgroup or lock enforces here."""
    check = Watchdog(km)
    while True:
        await asyncio.sleep(WATCHDOG_INTERVAL_S)
        reason = await asyncio.to_thread(check.check)
        if reason:
            km.stop_sandbox(reason)
            return
        debt = await asyncio.to_thread(check.cpu_debt)
        if debt > 0:
            km.pause_sandbox(True)
            try:
                await asyncio.sleep(debt)
            finally:
                km.pause_sandbox(False)


async def run_cells(client, km, nb, result: NotebookRun, start: float, cell_timeout: float, total_timeout: float) -> None:
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        remaining = total_timeout - (time.monotonic() - start)
        run = CellRun(index=index)
        result.cells.append(run)
        result.stopped_at = index
        if remaining <= 0:
            result.ending, result.ending_detail = "timeout", f"the notebook ran longer than {total_timeout:g} s in all"
            return
        client.timeout = max(1, int(min(cell_timeout, remaining)))
        t0 = time.monotonic()
        try:
            await client.async_execute_cell(cell, index)
        except CellTimeoutError:
            run.seconds = time.monotonic() - t0
            if await refused(client, result, index):
                return
            limit = "per cell" if cell_timeout <= remaining else "for the whole notebook"
            result.ending = "timeout"
            result.ending_detail = f"cell {index + 1} did not finish within the time limit ({client.timeout} s {limit})"
            raise
        except DeadKernelError:
            run.seconds = time.monotonic() - t0
            await mark_died(result, km, index)
            return
        run.seconds = time.monotonic() - t0
        run.ran = True
        run.error, run.error_value = cell_error(cell)
        if is_memory_error(run.error) and result.ending == "ok":
            result.ending, result.ending_detail = "memory", f"cell {index + 1} ran out of memory ({run.error})"
        if await refused(client, result, index):
            return
        note_memory_kills(result, km, index)
        if not await km.is_alive():
            await mark_died(result, km, index)
            return
    result.stopped_at = None


async def refused(client: CappedClient, result: NotebookRun, index: int) -> bool:
    """True (and the run ends 'output limit') when the kernel sent a message the grader's sockets refused
    for its size: the cell's reply or its outputs are then lost, so nothing after it can be trusted."""
    if not client.kc.refused_messages() or not await client.km.is_alive():
        return False
    if result.ending == "ok":
        result.ending = OUTPUT_LIMIT
        result.ending_detail = (f"cell {index + 1} sent a single output larger than {client.kc.max_message_bytes // MB} MB "
                                "(or cut its connection to the grader); the grader refused it and stopped the notebook there")
        result.stopped_at = index
    return True


async def mark_died(result: NotebookRun, km: SandboxedKernelManager, index: int | None) -> None:
    """Record a dead kernel and why: the memory limit (MemoryError just before, the memory cgroup's OOM
    kills, or the watchdog) is 'memory'; a SIGKILL without any of them came from the notebook's own code."""
    if result.ending not in ("ok", "memory"):
        return
    await asyncio.sleep(0.2)
    how = km.exit_description() or "stopped"
    where = f"during cell {index + 1}" if index is not None else "while starting"
    code = km.exit_code()
    killed = code is not None and exit_signal(code) == signal.SIGKILL
    result.stopped_at = index
    if km.watchdog_reason.startswith("disk"):
        result.ending, result.ending_detail = "kernel died", f"the sandbox was stopped {where}: {km.watchdog_reason}"
    elif result.ending == "memory" or km.watchdog_reason or (killed and km.cgroup.oom_kills() > 0):
        result.ending = "memory"
        limit = km.watchdog_reason or f"the sandbox's limit is {km.limits.memory_mb} MB for all its processes"
        result.ending_detail = f"the kernel ran out of memory and stopped {where} ({limit})"
    elif killed and km.cgroup.oom_kills() == 0:
        result.ending = "kernel died"
        result.ending_detail = (f"the kernel was killed {where} by a signal it or its children sent (SIGKILL), "
                                "not by the memory limit")
    elif killed:
        result.ending = "kernel died"
        result.ending_detail = f"the kernel stopped {where}: killed (SIGKILL): out of memory, or killed by its own code"
    else:
        result.ending = "kernel died"
        result.ending_detail = f"the kernel stopped {where}: {how}"


def note_memory_kills(result: NotebookRun, km: SandboxedKernelManager, index: int | None = None) -> None:
    """A child process stopped at the memory limit while the kernel lived on is said too (never silent)."""
    if km.cgroup.oom_kills() <= 0 or result.ending in ("memory", "kernel died") or "memory limit" in result.ending_detail:
        return
    at = index if index is not None else result.stopped_at
    where = f" during cell {at + 1}" if at is not None else ""
    text = (f"a process of the notebook was stopped{where} at the sandbox's memory limit "
            f"({km.limits.memory_mb} MB for all its processes)")
    if result.ending == "ok":
        result.ending, result.ending_detail = "memory", text
    else:
        result.ending_detail += f"; {text}"


def note_output_limit(result: NotebookRun, client: CappedClient) -> None:
    """Output dropped past the notebook's cap makes the run end 'output limit' (when it ended well otherwise)."""
    at = client.over_notebook_cap_at
    if at is None:
        return
    text = (f"cell {at + 1}: the notebook's output passed {client.notebook_cap // MB} MB in all; "
            "nothing after that was kept")
    if result.ending == "ok":
        result.ending, result.ending_detail = OUTPUT_LIMIT, text
    elif result.ending != OUTPUT_LIMIT:
        result.ending_detail += f"; {text}"


# ------------------------------------------------------------------------------------ time-limited work
def run_with_time_limit(fn, seconds: float, *args, memory_mb: int | None = None):
    """``fn(*args)`` in a forked child: its result (pickled back), its exception re-raised here, or
    TimeoutError when it takes longer than ``seconds`` (the child is then killed). ``memory_mb`` optionally
    caps what the child may map beyond the address space it inherited (a MemoryError in the child is
    re-raised here). The cap is relative because a forked child starts as large as its parent: a grader
    that has imported torch already maps more than a small absolute cap, and the child could not even
    report its error."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        child_main(fn, args, write_end, memory_mb)
    os.close(write_end)
    try:
        payload = read_until(read_end, time.monotonic() + seconds)
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)
        raise TimeoutError(f"{getattr(fn, '__name__', 'the work')} took longer than {seconds:g} s and was stopped") from None
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    if not payload:
        raise RuntimeError(f"{getattr(fn, '__name__', 'the work')} stopped without a result")
    kind, value = pickle.loads(payload)
    if kind == "error":
        raise value
    return value


def child_main(fn, args, write_end: int, memory_mb: int | None) -> None:
    code = 0
    try:
        if memory_mb:
            cap = address_space_bytes() + memory_mb * MB
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        try:
            payload = pickle.dumps(("ok", fn(*args)))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent
            kept = exc if isinstance(exc, Exception) and picklable(exc) else RuntimeError(repr(exc)[:2000])
            payload = pickle.dumps(("error", kept))  # a SystemExit in the child never exits the grader
        with os.fdopen(write_end, "wb") as out:
            out.write(payload)
    except BaseException:  # noqa: BLE001
        code = 1
    finally:
        os._exit(code)


def address_space_bytes() -> int:
    """This process's mapped address space now (VmSize), which RLIMIT_AS counts against."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/self/status has no VmSize line; the memory cap cannot be set")


def picklable(value) -> bool:
    try:
        pickle.dumps(value)
        return True
    except Exception:
        return False


def read_until(fd: int, deadline: float) -> bytes:
    """Everything written to ``fd`` until its writer closes it; TimeoutError at ``deadline``. Waits with
    poll(), not select(): select() refuses descriptors numbered 1024 or more, which a long-lived grader
    process that has run many kernels can reach."""
    chunks = []
    waiter = select.poll()
    waiter.register(fd, select.POLLIN | select.POLLHUP)
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not waiter.poll(left * 1000):
            raise TimeoutError
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
