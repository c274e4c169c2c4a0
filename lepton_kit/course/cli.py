"""The ``lepton`` command: thin over nbgrader (release, autograde, export) and papermill (run).

    lepton release [ASSIGNMENT ...]
    lepton exchange
    lepton student-bundle DIR [--exchange PATH]
    lepton run [NOTEBOOK|DIR ...] [--profile ci|full] [--output DIR] [--check-targets]
    lepton autograde ASSIGNMENT --submissions DIR [--jobs N | --cluster tcp://HOST:8786] [--force] [--no-sandbox]
    lepton feedback ASSIGNMENT [--output DIR]
    lepton grades [--csv PATH]
    lepton report [--summary PATH] [--output PATH]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _root(args) -> Path:
    from lepton_kit.course.curriculum import find_root

    return find_root(args.root)


def cmd_release(args) -> int:
    from lepton_kit.course.release import release

    from lepton_kit.course.exchange import ensure_exchange

    root = _root(args)
    for assignment_id in release(root, args.assignments):
        print(f"released {assignment_id} -> release/{assignment_id}/")
    try:
        print(f"exchange: {ensure_exchange(root)} (nbgrader release_assignment ASSIGNMENT publishes there)")
    except (OSError, RuntimeError) as err:
        print(f"lepton release: warning: {err}", file=sys.stderr)
    return 0


def cmd_exchange(args) -> int:
    from lepton_kit.course.exchange import ensure_exchange

    print(f"exchange ready: {ensure_exchange(_root(args))}")
    return 0


def cmd_student_bundle(args) -> int:
    from lepton_kit.course.bundle import student_bundle

    dest = student_bundle(_root(args), Path(args.dir), exchange=args.exchange)
    print(f"wrote the student copy to {dest} (start with {dest / 'README.md'})")
    return 0


def cmd_run(args) -> int:
    from lepton_kit.course.runner import missed_targets, run
    from lepton_kit.course.targets import format_value

    root = _root(args)
    paths = args.paths or [root / p for p in ("notebooks", "source") if (root / p).is_dir()]
    output = Path(args.output) if args.output else root / "build" / "run"
    summary = run(paths, output, profile=args.profile, timeout=args.timeout, root=root)
    for e in summary["notebooks"]:
        metrics = ", ".join(f"{k}={format_value(v)}" for k, v in e["metrics"].items())
        flag = " OVER BUDGET" if e.get("over_budget") else ""
        print(f"{e['status']:6} {e['seconds']:7.1f} s{flag}  {e['notebook']}  {metrics}")
        for t in e.get("targets", []):
            measured = "not recorded" if t["measured"] is None else format_value(t["measured"])
            print(f"         {'met   ' if t['met'] else 'MISSED'} {t['metric']} {measured} (target {t['target']})")
        if e["status"] != "ok":
            print(f"       {e['error']}")
    failed = sum(e["status"] != "ok" for e in summary["notebooks"])
    missed = missed_targets(summary)
    print(f"{len(summary['notebooks']) - failed} ok, {failed} failed, {len(missed)} target(s) missed on "
          f"{summary['device']} ({summary['threads']} threads); summary: {output / 'summary.json'}")
    return 1 if failed or (args.check_targets and missed) else 0


def cmd_autograde(args) -> int:
    from lepton_kit.course.release import ensure_released
    from lepton_kit.grading.config import assignments
    from lepton_kit.grading.autograde import autograde

    if args.no_sandbox:
        print("WARNING: --no-sandbox: student code runs as you, with your files, network and gradebook in reach.",
              file=sys.stderr)
    root = _root(args)
    if args.assignment not in assignments(root):
        raise ValueError(f"no such assignment under source/: {args.assignment}")
    ensure_released(root, args.assignment)
    from lepton_kit.grading.cluster import address

    batch = autograde(root, args.assignment, Path(args.submissions), jobs=args.jobs, force=args.force,
                      sandbox=False if args.no_sandbox else None, progress=not args.quiet,
                      cluster=address(args.cluster))
    print(batch.summary())
    lost = next((o.reason for o in batch.failed if "GradebookUnavailable: " in (o.reason or "")), None)
    if lost:  # the rest is kept: running the command again grades only what was not recorded
        print(f"lepton autograde: error: {lost.split('GradebookUnavailable: ', 1)[1]}", file=sys.stderr)
        return 2
    return 0


def cmd_feedback(args) -> int:
    from lepton_kit.grading.feedback import write_feedback

    from lepton_kit.course.exchange import feedback_for_exchange

    root = _root(args)
    paths = write_feedback(root, args.assignment, Path(args.output) if args.output else None,
                           students=args.student or None)
    for path in paths:
        print(f"wrote {path}")
    if not args.output:  # per-notebook copies for `nbgrader release_feedback`
        feedback_for_exchange(root, args.assignment, paths)
    if not paths:
        print(f"no autograded submission of {args.assignment}: run `lepton autograde` first", file=sys.stderr)
    return 0


def cmd_validate(args) -> int:
    """nbgrader's Validate (what the lab extension's button runs), with an exit status: 1 when a notebook fails."""
    from nbgrader.validator import Validator

    from lepton_kit.grading.config import load_config

    config = load_config(_root(args))
    failed = 0
    for notebook in args.notebooks:
        validator = Validator(config=config)
        results = validator.validate(str(Path(notebook).resolve()))
        validator.validate = lambda filename, found=results: found  # print what was found, without a rerun
        validator.validate_and_print(str(notebook))
        failed += any(results.get(k) for k in ("type_changed", "changed", "failed", "passed"))
    return 1 if failed else 0


def cmd_grades(args) -> int:
    from lepton_kit.course.grades import format_table, grades, write_csv

    rows = grades(_root(args))
    categories = [c for c in (rows[0] if rows else {}) if c.endswith("_percent")]   # each category's share
    print(format_table(rows, ("assignment", "student_id", "score", "max_score", *categories, "course_grade",
                              "provisional", "passed", "progress")))
    if args.csv:
        print(f"wrote {write_csv(rows, Path(args.csv))}")
    return 0


def mistake_counts(root: Path, assignments: list[str]) -> dict:
    """{assignment: [(mistake, students whose failures match it)]} from the gradebook."""
    from lepton_kit.grading import misconceptions
    from lepton_kit.grading.config import gradebook, load_config

    with gradebook(load_config(root).CourseDirectory.db_url) as gb:
        return {a: misconceptions.counts(root, a, gb) for a in assignments}


def cmd_report(args) -> int:
    from lepton_kit.course import report
    from lepton_kit.course.curriculum import load_course
    from lepton_kit.course.grades import grades

    root = _root(args)
    course = load_course(root)
    rows = grades(root) if (root / "gradebook.db").exists() else []
    summary = report.load_summary(Path(args.summary) if args.summary else root / "build" / "run" / "summary.json")
    path = report.write(Path(args.output) if args.output else root / "build" / "report" / "index.html", summary, rows,
                        pass_mark=course["pass_mark"], categories=list(course["categories"]), root=root,
                        mistake_counts=mistake_counts(root, sorted({r["assignment"] for r in rows})) if rows else None)
    print(f"wrote {path}")
    return 0


def cmd_variants(args) -> int:
    """Each student's own notebook of an assignment with per-student variants (source/<a>/bugs.yml or tasks.yml)."""
    from lepton_kit.course.variants import write
    from lepton_kit.grading.config import gradebook, load_config

    root = _root(args)
    students = list(args.student or [])
    if not students:  # the roster of the gradebook (`nbgrader db student import roster.csv`)
        with gradebook(load_config(root).CourseDirectory.db_url) as gb:
            students = sorted(s.id for s in gb.students)
    out = Path(args.output) if args.output else root / "build" / "variants" / args.assignment
    written = write(root, args.assignment, students, out)
    print(f"{len(students)} students, {len(written)} notebooks under {out}; who got which bug: {out / 'drawn.csv'} "
          "(for graders only: do not hand it out)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lepton", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", help="course folder (default: the nearest folder with nbgrader_config.py)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("release", help="generate release/ from source/ with nbgrader")
    p.add_argument("assignments", nargs="*", help="assignment ids (default: all under source/)")
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("variants", help="write each student's own notebook of an assignment with per-student "
                                        "variants (bugs drawn from the student id and the course secret)")
    p.add_argument("assignment")
    p.add_argument("--student", action="append", help="this student (repeatable; default: the gradebook's roster)")
    p.add_argument("--output", help="folder (default: build/variants/<assignment> in the course)")
    p.set_defaults(func=cmd_variants)

    p = sub.add_parser("exchange", help="create nbgrader's exchange folder (LEPTON_EXCHANGE) with mode 0777")
    p.set_defaults(func=cmd_exchange)

    p = sub.add_parser("student-bundle", help="write the student-only copy of the course into a new folder")
    p.add_argument("dir", help="a folder that does not exist yet (or is empty)")
    p.add_argument("--exchange", help="the exchange students use when LEPTON_EXCHANGE is unset "
                                      "(default: the course's Exchange.root)")
    p.set_defaults(func=cmd_student_bundle)

    p = sub.add_parser("run", help="execute notebooks with papermill and write summary.json")
    p.add_argument("paths", nargs="*", help="notebooks or folders (default: notebooks/ and source/)")
    p.add_argument("--profile", default="ci", choices=["ci", "full"])
    p.add_argument("--output", help="folder for executed notebooks and summary.json (default: build/run in the course)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per cell")
    p.add_argument("--check-targets", action="store_true", help="fail when a notebook misses a target of course.yml")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("autograde", help="grade submissions/<student>/<assignment>/*.ipynb in sandboxes")
    p.add_argument("assignment")
    p.add_argument("--submissions", required=True, help="folder in nbgrader's submitted layout")
    p.add_argument("--jobs", type=int, default=None, help="submissions graded at once (default: the number of cores)")
    p.add_argument("--force", action="store_true", help="regrade students an earlier run already finished")
    p.add_argument("--cluster", default=None, metavar="ADDRESS",
                   help="execute on a Dask cluster: the scheduler's address, tcp://HOST:8786 (default: "
                        "$LEPTON_DASK_SCHEDULER; unset: local --jobs)")
    p.add_argument("--no-sandbox", action="store_true",
                   help="run student code WITHOUT isolation (only where bubblewrap cannot work)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_autograde)

    p = sub.add_parser("feedback", help="one HTML page per student: each test's points, result and message")
    p.add_argument("assignment")
    p.add_argument("--output", help="folder (default: feedback/ in the course)")
    p.add_argument("--student", action="append", help="only this student (repeatable)")
    p.set_defaults(func=cmd_feedback)

    p = sub.add_parser("validate", help="run a notebook on a fresh kernel and list failing tests (exit 1 if any)")
    p.add_argument("notebooks", nargs="+", help="notebooks to validate")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("grades", help="nbgrader's export plus the weighted course grade")
    p.add_argument("--csv", help="also write the table to this CSV file")
    p.set_defaults(func=cmd_grades)

    p = sub.add_parser("report", help="write the HTML report (notebooks, gradebook, grade distribution)")
    p.add_argument("--summary", help="a `lepton run` summary (default: build/run/summary.json in the course)")
    p.add_argument("--output", help="the HTML file (default: build/report/index.html in the course)")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"lepton {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
