"""Speed: ``lepton autograde --jobs 2`` (sandboxed) against stock ``nbgrader autograde``, same 40 submissions.

    python autograder/benchmark.py                 # 40 submissions of the bench assignment, 2 jobs
    python autograder/benchmark.py --students 20 --jobs 2 --keep /tmp/bench-run
    python autograder/benchmark.py --cluster       # --jobs 2 against `--cluster` on a LocalCluster of 2 workers

Both graders get their own copy of the bench course (autograder/bench), released once. The
submissions mix the solution, the untouched release and honest mistakes (no stderr output, which
stock nbgrader would score zero). The script checks that both gradebooks hold the same score for
every cell of every student, then prints both times, their ratio and the overhead per submission:
the time to start and stop one sandboxed, guarded kernel on an empty notebook (median of 5).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lepton_kit.course.grades import cell_scores  # noqa: E402
from lepton_kit.course.release import release  # noqa: E402
from lepton_kit.grading.config import load_config, nbgrader_env  # noqa: E402

BENCH = ROOT / "autograder" / "bench"
ASSIGNMENT = "bench"
MISTAKES = {
    "relu_solution": "def relu(z):\n    return np.abs(z)\n",
    "softmax_solution": "def softmax(z):\n    e = np.exp(z)\n    return e / e.sum(axis=1, keepdims=True)\n",
    "mse_solution": "def mse(y, t):\n    return float(np.sum((np.asarray(y) - np.asarray(t)) ** 2))\n",
}


def copy_course(target: Path) -> Path:
    shutil.copytree(BENCH, target, ignore=shutil.ignore_patterns("release", "submitted", "autograded", "feedback",
                                                                 "gradebook.db", ".lepton*"))
    return target


def submissions(course: Path, out: Path, count: int) -> list[str]:
    import nbformat

    from lepton_kit.course.samples import replaced, solved

    release_nb = nbformat.read(course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    source_nb = nbformat.read(course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    honest = solved(release_nb, source_nb)
    kinds = [honest, release_nb] + [replaced(honest, {k: v}) for k, v in MISTAKES.items()] + \
        [replaced(honest, dict(list(MISTAKES.items())[:2]))]
    students = []
    for i in range(count):
        student = f"s{i:03d}"
        target = out / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(kinds[i % len(kinds)], target)
        students.append(student)
    return students


def run_stock(course: Path, subs: Path) -> float:
    shutil.copytree(subs, course / "submitted")
    began = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", ASSIGNMENT], cwd=course,
                            env=nbgrader_env(), capture_output=True, text=True)
    seconds = time.monotonic() - began
    if result.returncode != 0:
        raise SystemExit(f"stock nbgrader autograde failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return seconds


def run_lepton(course: Path, subs: Path, jobs: int, cluster: str | None = None) -> float:
    began = time.monotonic()
    where = ["--cluster", cluster] if cluster else ["--jobs", str(jobs)]
    result = subprocess.run([str(Path(sys.executable).parent / "lepton"), "--root", str(course), "autograde",
                             ASSIGNMENT, "--submissions", str(subs), *where, "--quiet"],
                            capture_output=True, text=True)
    seconds = time.monotonic() - began
    if result.returncode != 0 or "failed 0" not in result.stdout:
        raise SystemExit(f"lepton autograde failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return seconds


def startup_overhead(course: Path, repeats: int = 5) -> tuple[float, float]:
    """Median seconds to start, bootstrap and stop one executor on an empty notebook (sandboxed, not)."""
    import nbformat

    from lepton_kit.grading import execution
    from lepton_kit.grading.sandbox import Bubblewrap, Limits, Unsandboxed

    limits = Limits.from_config(load_config(course))
    planned = execution.plan(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("pass")]))
    backends = {"bubblewrap": Bubblewrap(), "none": Unsandboxed()}
    times = {name: [] for name in backends}
    for _ in range(repeats):
        for name, backend in backends.items():
            files = Path(tempfile.mkdtemp())
            os.chmod(files, 0o755)
            began = time.monotonic()
            run = execution.run(planned, limits, files, backend)
            times[name].append(time.monotonic() - began)
            shutil.rmtree(files, ignore_errors=True)
            assert not run.failure, run.failure
    return statistics.median(times["bubblewrap"]), statistics.median(times["none"])


def compare_cluster(work: Path, count: int, jobs: int) -> int:
    """Submissions per minute: local ``--jobs N`` against ``--cluster`` on a LocalCluster of N worker processes
    (one thread each; the cluster is started before the clock runs). Both gradebooks must agree."""
    from distributed import LocalCluster

    local, remote = copy_course(work / "local"), copy_course(work / "cluster")
    release(local, [ASSIGNMENT])
    for item in ("release", "gradebook.db"):
        (shutil.copytree if (local / item).is_dir() else shutil.copy)(local / item, remote / item)
    subs = work / "submissions"
    students = submissions(local, subs, count)
    print(f"{len(students)} submissions of {ASSIGNMENT}; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    t_local = run_lepton(local, subs, jobs)
    with LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        t_cluster = run_lepton(remote, subs, jobs, cluster=cluster.scheduler_address)
    rate_local, rate_cluster = 60 * len(students) / t_local, 60 * len(students) / t_cluster
    print(f"lepton autograde --jobs {jobs}:                         {t_local:6.1f} s  {rate_local:6.1f} submissions/min")
    print(f"lepton autograde --cluster (LocalCluster, {jobs} workers): {t_cluster:6.1f} s  "
          f"{rate_cluster:6.1f} submissions/min")
    if cell_scores(local, ASSIGNMENT) != cell_scores(remote, ASSIGNMENT):
        print("GRADES DIFFER between the local and the cluster run")
        return 1
    print(f"grades identical; cluster / local throughput: {rate_cluster / rate_local:.2f}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", help="keep the courses in this folder (default: a temporary one, removed)")
    parser.add_argument("--cluster", action="store_true",
                        help="compare --jobs N with --cluster on a LocalCluster of N workers (not stock nbgrader)")
    args = parser.parse_args(argv)
    work = Path(args.keep or tempfile.mkdtemp(prefix="lepton-benchmark-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.cluster:
            return compare_cluster(work, args.students, args.jobs)
        stock, ours = copy_course(work / "stock"), copy_course(work / "lepton")
        release(stock, [ASSIGNMENT])
        for item in ("release", "gradebook.db"):
            (shutil.copytree if (stock / item).is_dir() else shutil.copy)(stock / item, ours / item)
        subs = work / "submissions"
        students = submissions(stock, subs, args.students)
        print(f"{len(students)} submissions of {ASSIGNMENT}; {os.cpu_count()} cores; "
              f"load average {os.getloadavg()[0]:.1f}")
        t_stock = run_stock(stock, subs)
        print(f"stock nbgrader autograde (serial, no isolation): {t_stock:6.1f} s  "
              f"({t_stock / len(students):.2f} s per submission)")
        t_ours = run_lepton(ours, subs, args.jobs)
        print(f"lepton autograde --jobs {args.jobs} (bubblewrap, checker): {t_ours:6.1f} s  "
              f"({t_ours / len(students):.2f} s per submission)")
        a, b = cell_scores(stock, ASSIGNMENT), cell_scores(ours, ASSIGNMENT)
        if a != b:
            diff = {s: (a.get(s), b.get(s)) for s in set(a) | set(b) if a.get(s) != b.get(s)}
            print(f"GRADES DIFFER for {len(diff)} students: {json.dumps(diff, default=str)[:2000]}")
            return 1
        print(f"grades identical for all {len(a)} students ({sum(len(c) for c in a.values())} cells)")
        print(f"speed-up: {t_stock / t_ours:.2f}x")
        sandboxed, bare = startup_overhead(ours)
        print(f"overhead per submission: {sandboxed:.2f} s to start and stop a sandboxed, guarded kernel "
              f"({bare:.2f} s without bubblewrap, so the sandbox itself costs {sandboxed - bare:.2f} s)")
        print(f"load average now {os.getloadavg()[0]:.1f} (the machine may be shared: compare runs on one machine)")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
