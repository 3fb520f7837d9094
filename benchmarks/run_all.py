"""Run every benchmark script and collect their tables for the documentation.

Each ``benchmarks/*_bench.py`` script is run in turn, in its own Python
process (``python benchmarks/<name>_bench.py``, which calls the script's
``main()``), with single-threaded BLAS unless ``OPENBLAS_NUM_THREADS`` is
already set. Their printed tables, preceded by a description of the machine
(CPU, cores, memory, Python, numpy/scipy/autograd versions, the BLAS and its
threads, and whether the anchors paragami/vittles are installed), are written
to ``docs/benchmark_tables.txt``, which ``docs/benchmarks.rst`` includes.

Usage::

    python benchmarks/run_all.py                 # all scripts
    python benchmarks/run_all.py --only schur    # scripts whose name contains "schur"
    python benchmarks/run_all.py --list          # what would run
    python benchmarks/run_all.py --output -      # print instead of writing the file

A script that fails or times out is reported in the file (with the end of
its error output) and the others still run; the exit status is then 1.
The anchors are an optional extra (``pip install -e ".[bench]"``); scripts
print a message and skip their rows when they are missing.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_OUTPUT = os.path.join(ROOT, "docs", "benchmark_tables.txt")

# Scripts in this order first (those present), then any other *_bench.py.
PREFERRED_ORDER = ["patterns_bench", "sensitivity_bench", "models_bench",
                   "glmm_bench", "structured_hessian_bench", "schur_bench"]
THREAD_VARIABLES = ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                    "MKL_NUM_THREADS"]


def discover(only=None):
    """The benchmark scripts to run, as (name, path) in run order."""
    names = sorted(f[:-3] for f in os.listdir(HERE)
                   if f.endswith("_bench.py") and not f.startswith("_"))
    ordered = [n for n in PREFERRED_ORDER if n in names]
    ordered += [n for n in names if n not in ordered]
    if only:
        ordered = [n for n in ordered if any(o in n for o in only)]
    return [(n, os.path.join(HERE, n + ".py")) for n in ordered]


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory():
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    kib = float(line.split()[1])
                    return "{:.1f} GiB".format(kib / 2 ** 20)
    except OSError:
        pass
    return "unknown"


def _blas():
    """The BLAS numpy was built against, from numpy's build configuration."""
    try:
        import numpy
        config = numpy.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return "{} {}".format(blas.get("name", "?"), blas.get("version", ""))
    except Exception:  # numpy < 1.26 has no mode="dicts"
        return "unknown"


def _blas_threads():
    """Threads the BLAS actually uses, when threadpoolctl can tell."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return ", ".join("{} {}: {} threads".format(
        info.get("internal_api"), info.get("version"), info.get("num_threads"))
        for info in threadpool_info() if info.get("user_api") == "blas")


def machine_description(env):
    """Lines describing the machine and the software the timings ran on."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    lines = [
        "date: {}".format(datetime.datetime.now().strftime("%Y-%m-%d %H:%M")),
        "machine: {} ({}), {} logical cores ({} usable), {} memory".format(
            _cpu_model(), platform.machine(), os.cpu_count(), usable,
            _memory()),
        "system: {} {}".format(platform.system(), platform.release()),
        "python: {} ({})".format(platform.python_version(),
                                 platform.python_implementation()),
        "numpy {}, scipy {}, autograd {}; refold {}".format(
            _version("numpy"), _version("scipy"), _version("autograd"),
            _version("refold")),
        "anchors: paragami {}, vittles {}".format(
            _version("paragami"), _version("vittles")),
        "BLAS: {}; thread settings: {}".format(_blas(), ", ".join(
            "{}={}".format(v, env.get(v, "unset")) for v in THREAD_VARIABLES)),
    ]
    threads = _blas_threads()
    if threads:
        lines.append("BLAS threads in use: {}".format(threads))
    return lines


def run_script(path, env, timeout):
    """Run one script; return (exit code or None on timeout, seconds, out)."""
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, path], cwd=ROOT, env=env,
                              capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as err:
        out = err.stdout or ""
        if isinstance(out, bytes):
            out = out.decode(errors="replace")
        return None, time.perf_counter() - start, out
    out = proc.stdout
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        out += "\n[stderr, last lines]\n" + tail + "\n"
    return proc.returncode, time.perf_counter() - start, out


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Run every benchmarks/*_bench.py and collect the tables.")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="run only scripts whose name contains NAME")
    parser.add_argument("--output", default=DEFAULT_OUTPUT,
                        help="file for the tables ('-': standard output); "
                             "default docs/benchmark_tables.txt")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds allowed per script (default 3600)")
    parser.add_argument("--list", action="store_true",
                        help="list the scripts and exit")
    args = parser.parse_args(argv)

    scripts = discover(args.only)
    if args.list:
        for name, _ in scripts:
            print(name)
        return 0
    if not scripts:
        print("no benchmark scripts matched", file=sys.stderr)
        return 1

    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))

    sections = ["refold benchmark tables, measured by benchmarks/run_all.py",
                ""] + machine_description(env) + [""]
    for line in sections:
        print(line)
    failed = False
    for name, path in scripts:
        print("running {} ...".format(name), flush=True)
        code, seconds, out = run_script(path, env, args.timeout)
        status = ("timed out after {:.0f} s".format(seconds) if code is None
                  else "exit {}, {:.1f} s".format(code, seconds))
        failed |= code != 0
        block = ["=" * 79, "{}.py ({})".format(name, status), "=" * 79,
                 out.rstrip("\n"), ""]
        print("\n".join(block), flush=True)
        sections += block
    text = "\n".join(sections).rstrip("\n") + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w") as fh:
            fh.write(text)
        print("wrote {}".format(os.path.relpath(args.output, ROOT)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
