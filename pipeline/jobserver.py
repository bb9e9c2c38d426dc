"""A warm process that runs the workflow's small jobs, so that each does not pay Python's start-up.

A job of the demo reads a few hundred rows and works for milliseconds, but a Python process of its
own would spend one to two seconds importing pandas, pyarrow, scipy and matplotlib first, and
Snakemake's preamble another 0.1 s importing Snakemake to read the job; with over a hundred jobs
that start-up would be most of the run. So when Snakemake runs the jobs on this machine, common.smk
starts one server (`start`) that imports the pipeline once and forks a copy of itself for each job,
and Snakemake's own process hands it the job directly (`hand_script_jobs_over`), instead of
starting Python on the script: the script runs in that copy, with the job's working directory,
environment, stdout and stderr (so its log goes where it always goes), and its exit status is the
job's. A fork shares nothing with the next job's fork, so a job sees exactly what a fresh process
would (same imports, no state left by other jobs) and writes the same bytes. The job's benchmark
file measures the worker.

A job runs in its own process, as before, when:

* Snakemake runs jobs elsewhere (SLURM or another executor, or under conda/containers): the server
  is only started for local execution;
* it has more than one thread: the server's numerical libraries were set up for one (THREAD_VARIABLES);
* PSM_PIPELINE_JOB_SERVER=off is in Snakemake's environment, or the server does not take the job.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
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
from dataclasses import dataclass

SWITCH = "PSM_PIPELINE_JOB_SERVER"
"""Environment variable: set to OFF before running Snakemake, it keeps every job in its own process."""
OFF = "off"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
"""What Snakemake sets to a job's threads; numerical libraries read them once, when imported, so the
server imports them as a one-thread job would (and only one-thread jobs are sent to it)."""
IDLE_CHECK_SECONDS = 1.0
_LENGTH = struct.Struct("!Q")
_STATUS = struct.Struct("!i")


# --- Snakemake's side (common.smk) --------------------------------------------------------------

@dataclass(frozen=True)
class JobServer:
    process: subprocess.Popen
    name: str
    """The listening socket's name (Linux abstract namespace)."""


def start(local: bool) -> JobServer | None:
    """Start the server for this Snakemake process's local jobs and hand it their scripts from now
    on; None unless ``local`` and not turned off."""
    if not local or os.environ.get(SWITCH) == OFF:
        return None
    server = launch(f"psm-pipeline-{os.getpid()}-{os.urandom(4).hex()}")
    hand_script_jobs_over(server.name)
    return server


def launch(name: str) -> JobServer:
    """A server, child of this process, listening on ``name`` already: a job handed over before the
    server has imported the pipeline waits for it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind("\0" + name)
        listener.listen(128)
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.jobserver", str(listener.fileno()), str(os.getpid())],
            pass_fds=[listener.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
            env=_one_thread_environment())
    return JobServer(process, name)


def stop(server: JobServer | None, grace_seconds: float = 10) -> None:
    """Stop the server once its workers are done (killed if they take longer than the grace)."""
    if server is None or server.process.poll() is not None:
        return
    server.process.terminate()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as wake_up, contextlib.suppress(OSError):
        wake_up.connect("\0" + server.name)        # a server waiting for a job sees at once it is to stop
    try:
        server.process.wait(grace_seconds)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def hand_script_jobs_over(name: str) -> None:
    """Make Snakemake's own process give the server on ``name`` its script jobs. Snakemake runs a
    local script job in a thread of its own process (`snakemake.script.PythonScript.evaluate`: it
    writes the script behind a preamble and runs Python on it); this wraps that method. A job the
    server would not run (`served`), or that it does not take, runs as before."""
    from snakemake.script import PythonScript

    in_own_process = PythonScript.evaluate

    def evaluate(job, edit=False):
        if edit or not served(job) or not _run_in_server(job, name):
            in_own_process(job, edit)

    PythonScript.evaluate = evaluate


def served(job) -> bool:
    """Whether the server runs this job (a `snakemake.script.PythonScript`): a plain local job (no
    conda, container, modules or shadow directory) with one thread. Large jobs too: at a million
    patients a job works for seconds, but its own process would still import for two."""
    return (job.is_local and job.conda_env is None and job.container_img is None and job.env_modules is None
            and job.shadow_dir is None and job.threads == 1)


def _run_in_server(job, name: str) -> bool:
    """Run the job in the server, with what Snakemake's preamble would have given the script: False
    when the server did not take it. A failing script raises what a failing process would. The
    job's benchmark file measures the worker (its CPU time; its own memory is USS and PSS, its RSS
    counting the pages it shares with the server)."""
    from snakemake.benchmark import benchmarked
    from snakemake.common import get_snakemake_searchpaths
    from snakemake.iocontainers import Snakemake
    from snakemake.shell import shell

    script = os.path.realpath(job.local_path)
    smk = Snakemake(job.input, job.output, job.params, job.wildcards, job.threads, job.resources, job.log,
                    job.config, job.rulename, job.bench_iteration,
                    job.path.get_basedir().get_path_or_uri(secret_free=True))
    request = {"script": script, "smk": smk, "cwd": os.getcwd(), "env": _environment(job.resources),
               "path": [os.path.dirname(script), *get_snakemake_searchpaths()]}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        worker = _hand_over(connection, name, request)
        if worker is None:
            return False
        with shell._lock:                       # where Snakemake stops a job's process
            shell._processes[job.jobid] = _Worker(worker)
        with benchmarked(worker, job.bench_record) if job.bench_record is not None else contextlib.nullcontext():
            status = _receive(connection, _STATUS)
    with shell._lock:
        shell._processes.pop(job.jobid, None)
    if status is None:
        print(f"psm-pipeline: the process of job {job.rulename} ended without an exit status (killed, e.g. "
              "for want of memory, or the job server stopped)", file=sys.stderr)
        status = 1
    if status:
        raise subprocess.CalledProcessError(status, f"psm:{job.rulename} {script}")
    return True


def _one_thread_environment() -> dict:
    """This process's environment, as Snakemake's shell gives it to a one-thread job."""
    return {**os.environ, **dict.fromkeys(THREAD_VARIABLES, "1")}


def _environment(resources) -> dict:
    """The job's environment: one thread, and its temporary directory."""
    environment = _one_thread_environment()
    if resources.get("tmpdir"):
        environment.update(dict.fromkeys(("TMPDIR", "TMP", "TEMPDIR", "TEMP"), resources["tmpdir"]))
    return environment


def _hand_over(connection: socket.socket, name: str, request: dict) -> int | None:
    """Send the job, with this process's stdout and stderr, to the server; the pid of the worker
    that runs it, or None when the server did not take it (not listening, or gone)."""
    data = pickle.dumps(request)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        connection.connect("\0" + name)
        socket.send_fds(connection, [_LENGTH.pack(len(data))], [1, 2])
        connection.sendall(data)
        return _receive(connection, _STATUS)
    except OSError:
        return None


def _receive(connection: socket.socket, layout: struct.Struct, data: bytes = b""):
    while len(data) < layout.size:
        chunk = connection.recv(layout.size - len(data))
        if not chunk:
            return None
        data += chunk
    return layout.unpack(data)[0]


class _Worker:
    """A served job's worker where Snakemake stops a job's process (`snakemake.shell` keeps one per job)."""

    def __init__(self, pid: int):
        self.pid = pid

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)


# --- the server ---------------------------------------------------------------------------------

def serve(listener_fd: int, snakemake_pid: int) -> None:
    """Import the pipeline, then fork one worker per connection to the listening socket it was
    given until told to stop (SIGTERM) or Snakemake is gone. Jobs that connect during the imports
    wait for them rather than do them themselves. Workers are waited for, so their CPU time counts
    in Snakemake's own."""
    listener = socket.socket(fileno=listener_fd)
    stopping = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    _preload()
    gc.freeze()
    listener.settimeout(IDLE_CHECK_SECONDS)
    while not stopping and os.getppid() == snakemake_pid:
        _reap(os.WNOHANG)
        try:
            connection, _ = listener.accept()
        except (TimeoutError, InterruptedError):
            continue
        if stopping:
            connection.close()
            break
        if os.fork() == 0:
            _worker(listener, connection)
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


WARM_IMPORTS = ("matplotlib.pyplot", "statsmodels.api", "openpyxl", "pyarrow.dataset", "snakemake.iocontainers")
"""Modules the pipeline imports inside functions, besides its own modules, and those that reading a
job's `snakemake` object imports."""


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

    from pipeline.provenance import package_versions
    from pipeline.report.html import templates

    package_versions()
    for template in templates().list_templates(extensions=["j2"]):
        templates().get_template(template)
    cpu_target.target_context.refresh()
    figure = Figure(figsize=(2, 2))
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], label="warm-up")
    axes.set_title("warm-up")
    axes.legend()
    figure.tight_layout()
    figure.savefig(io.BytesIO(), format="png")


def _worker(listener: socket.socket, connection: socket.socket) -> None:
    """The forked worker's life: one job, then exit with its status (whatever happens, the fork
    never returns into the server's loop)."""
    status = 1
    try:
        listener.close()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        status = _work(connection)
    finally:
        os._exit(status)


def _work(connection: socket.socket) -> int:
    """One job in a fresh fork: take the job's stdout/stderr, directory and environment, run its
    script, report the exit status."""
    header, fds, _, _ = socket.recv_fds(connection, _LENGTH.size, 2)
    if len(header) < _LENGTH.size:            # a connection that only woke the server
        return 0
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
    os.environ.update(job["env"])
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
    serve(int(sys.argv[1]), int(sys.argv[2]))
    os._exit(0)         # tearing down the imported pipeline would take the better part of a second
