"""Keep docs/results.md true: the measured figures of each profile, written from `lepton run` summaries.

    python -m lepton_kit.course.results build/run/summary.json   # stores it as docs/results/<profile>.json

The markdown is regenerated from every stored summary, so each figure in it came from a run.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from lepton_kit.course.targets import format_value

DOCS = Path("docs")


def to_markdown(summaries: list[dict]) -> str:
    lines = ["# Measured results", "",
             "Written by `python -m lepton_kit.course.results SUMMARY.json` from `lepton run` summaries; do not edit by hand.", ""]
    for s in summaries:
        lines += [f"## Profile `{s['profile']}`", "",
                  f"Device: {s['device']}; Python {s.get('python', '?')}; run started {s.get('started', '?')}.", "",
                  "| notebook | status | seconds | metrics |", "|---|---|---:|---|"]
        for e in s["notebooks"]:
            metrics = "<br>".join(f"`{k}` = {format_value(v)}" for k, v in e.get("metrics", {}).items())
            missed = [t for t in e.get("targets", []) if not t["met"]]
            metrics += "".join(f"<br>**missed** `{t['metric']}` {t['target']}" for t in missed)
            lines.append(f"| {e['notebook']} | {e['status']} | {e['seconds']:.1f} | {metrics} |")
        lines.append("")
    return "\n".join(lines)


def update(summary_path: Path, docs: Path = DOCS) -> Path:
    summary = json.loads(Path(summary_path).read_text())
    store = docs / "results"
    store.mkdir(parents=True, exist_ok=True)
    shutil.copy(summary_path, store / f"{summary['profile']}.json")
    summaries = [json.loads(p.read_text()) for p in sorted(store.glob("*.json"))]
    out = docs / "results.md"
    out.write_text(to_markdown(summaries))
    return out


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["build/run/summary.json"]:
        print(f"wrote {update(Path(arg))}")
