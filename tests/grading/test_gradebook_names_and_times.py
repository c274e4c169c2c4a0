"""What formgrader shows of a submission graded by `lepton autograde`: a name and a time, never "None"."""
from __future__ import annotations

import os
import shutil
from datetime import datetime

import pytest

import corpus
from lepton_kit.grading import pipeline as p
from lepton_kit.grading.config import gradebook, load_config


@pytest.fixture(scope="module")
def honest(bench_release, tmp_path_factory):
    out = tmp_path_factory.mktemp("cases")
    corpus.build(out, root=bench_release)
    return out / "honest" / "bench"


def _record(bench, backend, honest, student, stamp=None, mtime=None, roster=None):
    folder = bench / "submitted" / student / "bench"
    shutil.copytree(honest, folder)
    if stamp:
        (folder / "timestamp.txt").write_text(stamp)
    if mtime:
        os.utime(folder / "bench.ipynb", (mtime.timestamp(), mtime.timestamp()))
    url = load_config(bench).CourseDirectory.db_url
    with gradebook(url) as gb:
        if roster:
            gb.add_student(student, **roster)
        batch = p.Batch.open(bench, "bench", gb, load_config(bench), backend)
        sub = batch.submission(student)
        for step in (p.read, p.record):
            step(sub, batch)
        gb.db.commit()
    with gradebook(url) as gb:  # read back through nbgrader's Gradebook API, as formgrader does
        s = gb.find_student(student)
        return (s.first_name, s.last_name), gb.find_submission("bench", student).timestamp


def test_timestamp_txt_is_the_submission_time(bench, backend, honest):
    names, when = _record(bench, backend, honest, "kim", stamp="2024-03-02 09:00:00.123456 UTC")
    assert when == datetime(2024, 3, 2, 9, 0, 0, 123456)
    assert names == (None, "kim"), "a student without a roster entry is listed under the id"


def test_without_timestamp_txt_there_is_no_submission_time(bench, backend, honest):
    """A file's time is not a submission time; formgrader compares the gradebook's with timestamp.txt's."""
    _, when = _record(bench, backend, honest, "lee", mtime=datetime(2024, 5, 6, 7, 8, 9))
    assert when is None


def test_names_from_an_imported_roster_are_kept(bench, backend, honest):
    names, _ = _record(bench, backend, honest, "ada", roster={"first_name": "Ada", "last_name": "Lovelace"})
    assert names == ("Ada", "Lovelace")
