"""Run a notebook cell by cell in a sandboxed kernel, from the trusted grader process.

Protects the grader against code that loops (a wall-clock limit per cell and per notebook), kills its
kernel (os._exit, segfault, CPU limit: reported as 'kernel died' with the cause), exhausts memory
(MemoryError or a killed kernel: 'memory'), or floods its output (each cell's output is capped in the
grader's memory). Whatever happens, the kernel and its folder are removed afterwards.
"""
from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass, field

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from .sandbox import Limits, SandboxedKernelManager, new_workdir, remove_cgroup

MAX_OUTPUT_BYTES = 2_000_000  # per cell, kept in the grader's memory; more is dropped and noted


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
    """The executed notebook plus how its run ended ('ok', 'timeout', 'kernel died', 'memory')."""

    notebook: nbformat.NotebookNode
    cells: list[CellRun] = field(default_factory=list)
    ending: str = "ok"
    ending_detail: str = ""
    stopped_at: int | None = None  # index of the cell during which the run stopped
    seconds: float = 0.0


class CappedClient(NotebookClient):
    """nbclient with a cap on how much output one cell may keep in the grader's memory."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.output_bytes: dict[int, int] = {}
        self.truncated: set[int] = set()

    def output(self, outs, msg, display_id, cell_index):
        size = len(str(msg.get("content", "")))
        used = self.output_bytes.get(cell_index, 0) + size
        self.output_bytes[cell_index] = used
        if used > MAX_OUTPUT_BYTES:
            self.truncated.add(cell_index)
            return None
        return super().output(outs, msg, display_id, cell_index)


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
    workdir = new_workdir()
    km = SandboxedKernelManager(workdir=workdir, limits=limits, sandboxed=sandboxed)
    client = CappedClient(nb, km=km, timeout=cell_timeout, allow_errors=True, startup_timeout=60,
                          iopub_timeout=5, record_timing=False, kernel_name="python3")
    result = NotebookRun(notebook=nb)
    start = time.monotonic()
    try:
        async with client.async_setup_kernel(cwd=None):
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
        try:
            if km.has_kernel:
                await km.shutdown_kernel(now=True)
        except Exception:
            pass
        shutil.rmtree(workdir, ignore_errors=True)
        await asyncio.sleep(0)
        remove_cgroup(km.cgroup)
    result.seconds = time.monotonic() - start
    for run in result.cells:
        run.output_truncated = run.index in client.truncated
    return result


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
        if not await km.is_alive():
            await mark_died(result, km, index)
            return
    result.stopped_at = None


async def mark_died(result: NotebookRun, km: SandboxedKernelManager, index: int | None) -> None:
    """Record a dead kernel; a kernel killed right after a MemoryError or by SIGKILL counts as 'memory'."""
    if result.ending not in ("ok", "memory"):
        return
    await asyncio.sleep(0.2)
    how = km.exit_description() or "stopped"
    where = f"during cell {index + 1}" if index is not None else "while starting"
    if result.ending == "memory" or "SIGKILL" in how:
        result.ending = "memory"
        result.ending_detail = f"the kernel ran out of memory and stopped {where} ({how})"
    else:
        result.ending = "kernel died"
        result.ending_detail = f"the kernel stopped {where}: {how}"
    result.stopped_at = index
