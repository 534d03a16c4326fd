"""``evbill --version`` prints the installed distribution's version."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version


def test_version_prints_the_installed_version() -> None:
    out = subprocess.run([sys.executable, "-m", "api.cli", "--version"], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == f"evbill {version('evbill')}"
