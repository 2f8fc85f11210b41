"""The doctests of the library (pytest runs ``--doctest-modules`` over ismtk/, see pyproject.toml) start in the
repository root, so that their examples can read the files of tests/data."""

from __future__ import annotations

import pytest

#: Not a module to import: it runs the command line.
collect_ignore = ["ismtk/__main__.py"]


@pytest.fixture(autouse=True)
def _doctests_start_in_the_root(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if type(request.node).__name__ == "DoctestItem":
        monkeypatch.chdir(request.config.rootpath)
