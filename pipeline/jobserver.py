"""A warm process that runs the workflow's small jobs, so that each does not pay Python's start-up.

A job of the demo reads a few hundred rows and works for milliseconds, but its own Python process
spends one to two seconds importing pandas, pyarrow, scipy and matplotlib first; with some eighty
jobs that start-up is most of the run. When Snakemake runs the jobs on this machine, common.smk
starts one server (`start`) that imports the pipeline once and then forks a copy of itself for each
job that asks (`delegate`, the first statement of every workflow script): the job's script runs in
that copy, with the job's working directory, environment, stdout and stderr (so its log goes where
it always goes), and the job's process exits with the script's exit status. A fork shares nothing
with the next job's fork, so a job sees exactly what a fresh process would (same imports, no state
left by other jobs) and writes the same bytes.

A job runs in its own process, as before, when:

* Snakemake runs jobs elsewhere (SLURM or another executor, or under conda/containers): the server
  is only started for local execution, and a job on a cluster node never finds one;
* its inputs hold more than LARGE_INPUT_BYTES: its start-up is then negligible beside its work, and
  its benchmark file (which measures the job's own process) should measure the work;
* it has more than one thread: the server's numerical libraries were set up for one (THREAD_VARIABLES);
* there is no server listening (e.g. not on Linux, whose abstract socket names it uses).

A job run by the server has a benchmark file that measures only its small client process.
"""
from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import pickle
import pkgutil
import runpy
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import traceback

ADDRESS = "PSM_PIPELINE_JOB_SERVER"
"""Environment variable: the server's socket name (Linux abstract namespace), set for the jobs; set
to OFF before running Snakemake, it keeps every job in its own process."""
OFF = "off"
INSIDE = "PSM_PIPELINE_IN_JOB_SERVER"
"""Environment variable set in the server's forks: the script runs there, delegate does nothing."""
LARGE_INPUT_BYTES = 32 * 2**20
THREAD_VARIABLES = ("OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
"""What Snakemake sets to a job's threads; numerical libraries read them once, when imported, so the
server imports them as a one-thread job would (and only one-thread jobs are sent to it)."""
IDLE_CHECK_SECONDS = 1.0
_LENGTH = struct.Struct("!Q")
_STATUS = struct.Struct("!i")


# --- Snakemake's side (common.smk) --------------------------------------------------------------

def start(local: bool) -> subprocess.Popen | None:
    """Start the server for this Snakemake process's local jobs; None (and no server announced to
    the jobs) unless ``local`` and not turned off."""
    if os.environ.get(ADDRESS) == OFF:
        return None
    os.environ.pop(ADDRESS, None)
    if not local:
        return None
    name = f"psm-pipeline-{os.getpid()}-{os.urandom(4).hex()}"
    server = subprocess.Popen([sys.executable, "-m", "pipeline.jobserver", name, str(os.getpid())],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True, env={**os.environ, **dict.fromkeys(THREAD_VARIABLES, "1")})
    os.environ[ADDRESS] = name
    return server


def stop(server: subprocess.Popen | None, grace_seconds: float = 10) -> None:
    """Stop the server once its workers are done (killed if they take longer than the grace)."""
    if server is not None and server.poll() is None:
        server.terminate()
        try:
            server.wait(grace_seconds)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# --- the job's side (first statement of each workflow script) -------------------------------------

def delegate(smk, script: str) -> None:
    """Run this job's script in a fork of the server and exit with its status; return (and let the
    script run here) when there is no server to take the job, or the job is large or multi-threaded
    (see the module doc)."""
    name = os.environ.get(ADDRESS)
    if name in (None, "", OFF) or os.environ.get(INSIDE) or smk.threads != 1 or _input_bytes(smk) > LARGE_INPUT_BYTES:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        worker = _hand_over(connection, name, smk, script)
        if worker is not None:
            sys.exit(_wait(connection, worker))


def _input_bytes(smk) -> int:
    total = 0
    for path in smk.input:
        try:
            total += os.stat(path).st_size
        except OSError:
            pass
    return total


def _hand_over(connection: socket.socket, name: str, smk, script: str) -> int | None:
    """Send the job to the server; the pid of the worker that runs it, or None when the server did
    not take it (not listening, or gone before starting the job)."""
    request = pickle.dumps({"script": os.path.realpath(script), "smk": smk, "cwd": os.getcwd(),
                            "env": dict(os.environ), "path": list(sys.path)})
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        connection.connect("\0" + name)
        socket.send_fds(connection, [_LENGTH.pack(len(request))], [1, 2])
        connection.sendall(request)
        return _receive(connection, _STATUS)
    except OSError:
        return None


def _wait(connection: socket.socket, worker: int) -> int:
    """The job's exit status, once its worker is done."""
    for signum in (signal.SIGTERM, signal.SIGINT):     # Snakemake stopping the job stops its worker
        signal.signal(signum, lambda signum, frame: os.kill(worker, signum))
    try:
        status = _receive(connection, _STATUS)
    except OSError:
        status = None
    return _lost() if status is None else status


def _lost() -> int:
    print("psm-pipeline: the job server stopped before the job finished", file=sys.stderr)
    return 1


def _receive(connection: socket.socket, layout: struct.Struct, data: bytes = b""):
    while len(data) < layout.size:
        chunk = connection.recv(layout.size - len(data))
        if not chunk:
            return None
        data += chunk
    return layout.unpack(data)[0]


# --- the server ---------------------------------------------------------------------------------

def serve(name: str, snakemake_pid: int) -> None:
    """Import the pipeline, then fork one worker per connection until told to stop (SIGTERM) or
    Snakemake is gone. It listens from the start: the first jobs wait for the imports rather than
    do them themselves. Workers are waited for, so their CPU time counts in Snakemake's own."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0" + name)
    listener.listen(128)
    stopping = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    _preload()
    listener.settimeout(IDLE_CHECK_SECONDS)
    while not stopping and os.getppid() == snakemake_pid:
        _reap(os.WNOHANG)
        try:
            connection, _ = listener.accept()
        except (TimeoutError, InterruptedError):
            continue
        if os.fork() == 0:
            listener.close()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os._exit(_work(connection))
        connection.close()
    listener.close()
    _reap(0)


def _reap(options: int) -> None:
    """Wait for finished workers (with os.WNOHANG: only those already done; else for all)."""
    try:
        while os.waitpid(-1, options)[0]:
            pass
    except ChildProcessError:
        pass


WARM_IMPORTS = ("matplotlib.pyplot", "statsmodels.api", "openpyxl")
"""Modules the pipeline imports inside functions, besides its own modules."""


def _preload() -> None:
    """What every job would do first: import the pipeline (every module of it, and WARM_IMPORTS),
    set up numba's compiler (which loading a cached function needs) and matplotlib's fonts."""
    import pipeline

    modules = [module.name for module in pkgutil.walk_packages(pipeline.__path__, "pipeline.")]
    for name in [*WARM_IMPORTS, *modules]:
        try:
            importlib.import_module(name)
        except Exception:       # the jobs that import it fail with the same error, in their own logs
            continue
    _warm_up()


def _warm_up() -> None:
    import io

    from matplotlib.figure import Figure
    from numba.core.registry import cpu_target

    cpu_target.target_context.refresh()
    figure = Figure(figsize=(2, 2))
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], label="warm-up")
    axes.set_title("warm-up")
    axes.legend()
    figure.tight_layout()
    figure.savefig(io.BytesIO(), format="png")


def _work(connection: socket.socket) -> int:
    """One job in a fresh fork: take the job's stdout/stderr, directory and environment, run its
    script, report the exit status."""
    header, fds, _, _ = socket.recv_fds(connection, _LENGTH.size, 2)
    length = _LENGTH.unpack(header)[0]
    request = bytearray()
    while len(request) < length:
        chunk = connection.recv(min(length - len(request), 1 << 20))
        if not chunk:
            return 1
        request += chunk
    for target, fd in zip((1, 2), fds):
        os.dup2(fd, target)
        os.close(fd)
    job = pickle.loads(request)
    _name_process(f"psm:{job['smk'].rule}")
    os.chdir(job["cwd"])
    os.environ.clear()
    os.environ.update(job["env"], **{INSIDE: "1"})
    tempfile.tempdir = None                  # found again from the job's TMPDIR
    sys.path[:] = job["path"]
    sys.argv = [job["script"]]
    connection.sendall(_STATUS.pack(os.getpid()))
    status = _run_script(job["script"], job["smk"])
    connection.sendall(_STATUS.pack(status))
    return status


def _name_process(name: str) -> None:
    """The worker's name in ps and top (Linux keeps 15 characters), in place of the server's."""
    try:
        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)     # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def _run_script(script: str, smk) -> int:
    try:
        runpy.run_path(script, init_globals={"snakemake": smk}, run_name="__main__")
        status = 0
    except SystemExit as done:              # as Python's exit status for sys.exit(code)
        if done.code is None or isinstance(done.code, int):
            status = done.code or 0
        else:
            print(done.code, file=sys.stderr)
            status = 1
    except BaseException:
        traceback.print_exc()
        status = 1
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(ValueError, OSError):      # a stream the script closed
            stream.flush()
    return status


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
