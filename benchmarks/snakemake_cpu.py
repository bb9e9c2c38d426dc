"""Run Snakemake in this process and print, at exit, its wall time, its own CPU time (parsing the
Snakefile, scheduling, bookkeeping) and its children's (the jobs, the job server and its workers).

    python benchmarks/snakemake_cpu.py <snakemake arguments>
    e.g. python benchmarks/snakemake_cpu.py -s Snakefile -d <study copy> --configfile <study copy>/config.yaml --cores 2
"""
import atexit
import os
import resource
import sys
import time

from snakemake.cli import main

START = time.perf_counter()


def report() -> None:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"wall {time.perf_counter() - START:.1f} s; Snakemake's process CPU {own.ru_utime + own.ru_stime:.1f} s; "
          f"its children's CPU {children.ru_utime + children.ru_stime:.1f} s; load {os.getloadavg()[0]:.1f}",
          file=sys.stderr)


if __name__ == "__main__":
    atexit.register(report)
    sys.argv = ["snakemake", *sys.argv[1:]]
    main()
