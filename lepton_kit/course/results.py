"""Keep docs/results.md true: the measured figures of each profile, written from `lepton run` summaries.

    python -m lepton_kit.course.results build/run/summary.json   # stores it as docs/results/<profile>.json
    python -m lepton_kit.course.results a/summary.json b/summary.json   # one profile, two runs, merged

The markdown is regenerated from every stored summary, so each figure in it came from a run.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from lepton_kit.course.targets import check, format_value, targets_for

DOCS = Path("docs")


def merge(summaries: list[dict]) -> dict:
    """Several runs of one profile as one summary: each notebook from the latest run that executed it.

    >>> a = {"profile": "ci", "device": "CPU", "started": "t1", "notebooks": [{"notebook": "x"}, {"notebook": "y"}]}
    >>> b = {"profile": "ci", "device": "CPU", "started": "t2", "notebooks": [{"notebook": "y", "seconds": 1}]}
    >>> [(e["notebook"], e["run"]) for e in merge([a, b])["notebooks"]]
    [('x', 't1'), ('y', 't2')]
    """
    if len({s["profile"] for s in summaries}) != 1:
        raise ValueError("merge summaries of one profile at a time")
    entries = {}
    for s in sorted(summaries, key=lambda s: s.get("started", "")):
        for e in s["notebooks"]:
            entries[e["notebook"]] = {**e, "run": s.get("started", "?")}
    runs = sorted({e["run"] for e in entries.values()})
    return {**summaries[-1], "started": ", ".join(runs), "notebooks": sorted(entries.values(), key=lambda e: e["notebook"])}


def to_markdown(summaries: list[dict]) -> str:
    lines = ["# Measured results", "",
             "Written by `python -m lepton_kit.course.results SUMMARY.json` from `lepton run` summaries; do not edit by hand.", ""]
    for s in summaries:
        runs = s.get("started", "?")
        lines += [f"## Profile `{s['profile']}`", "",
                  f"Device: {s['device']}; Python {s.get('python', '?')}; "
                  + (f"runs started {runs} (each row names its run)." if "," in runs else f"run started {runs}."), "",
                  "| notebook | status | seconds | metrics |", "|---|---|---:|---|"]
        for e in s["notebooks"]:
            metrics = "<br>".join(f"`{k}` = {format_value(v)}" for k, v in e.get("metrics", {}).items())
            missed = [t for t in e.get("targets", []) if not t["met"]]
            metrics += "".join(f"<br>**missed** `{t['metric']}` {t['target']}" for t in missed)
            run = f" (run {e['run']})" if "," in runs else ""
            lines.append(f"| {e['notebook']}{run} | {e['status']} | {e['seconds']:.1f} | {metrics} |")
        lines.append("")
    return "\n".join(lines)


def update(summary_path, docs: Path = DOCS, course: dict | None = None) -> Path:
    """Store a run's summary as ``docs/results/<profile>.json`` (several paths: merged, see :func:`merge`)
    and write ``docs/results.md`` from every stored profile. With ``course`` (course.yml), every
    notebook's targets are checked again against the course's current bounds."""
    paths = [summary_path] if isinstance(summary_path, (str, Path)) else list(summary_path)
    summary = merge([json.loads(Path(p).read_text()) for p in paths])
    if course is not None:
        for e in summary["notebooks"]:
            e["targets"] = check(e.get("metrics", {}), targets_for(course, e["notebook"], summary["profile"]))
    store = docs / "results"
    store.mkdir(parents=True, exist_ok=True)
    (store / f"{summary['profile']}.json").write_text(json.dumps(summary, indent=1) + "\n")
    summaries = [json.loads(p.read_text()) for p in sorted(store.glob("*.json"))]
    out = docs / "results.md"
    out.write_text(to_markdown(summaries))
    return out


if __name__ == "__main__":  # several summaries of one profile are merged, the latest run of a notebook wins
    from lepton_kit.course.curriculum import load_course

    print(f"wrote {update([Path(a) for a in sys.argv[1:]] or [Path('build/run/summary.json')], course=load_course(Path('.')))}")
