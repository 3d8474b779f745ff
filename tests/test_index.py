"""The built index on disk: abandoned scratch folders of killed builds are removed by the next build."""

from __future__ import annotations

import os

from qa_engine.index import current_build_id


def test_next_build_removes_folders_of_killed_builds_but_not_running_ones(service):
    builds = service.home / "indexes"
    dead = builds / "20200101T000000-4194999.tmp"  # above the default pid_max: no such process
    (dead / "half").mkdir(parents=True)
    running = builds / f"20200101T000000-{os.getpid()}.tmp"
    running.mkdir()
    unnamed = builds / "leftover.tmp"
    unnamed.mkdir()
    before = current_build_id(service.home)
    service.build()
    assert current_build_id(service.home) != before
    assert not dead.exists() and not unnamed.exists()
    assert running.exists()
