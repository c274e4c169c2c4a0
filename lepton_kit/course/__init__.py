"""The instructor's tools over nbgrader and papermill: release, run, grades, report, the ``lepton`` CLI.

Imports point one way: ``lepton_kit.course`` may use the grading engine and the kit, never the reverse.
"""
