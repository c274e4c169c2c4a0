"""The autograde engine: restore each submission's structure, run it in a sandbox, score, record.

Used by the course tools; never imported by the kit that notebooks use.
"""
