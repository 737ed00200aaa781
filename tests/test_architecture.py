"""The apps keep their layers: the import contracts that `make lint` runs hold in the
suite too, so that a new upward import (or a cycle) fails CI, not only a local lint."""

import subprocess
import sys
from pathlib import Path

from django.conf import settings

PROJECT_DIR = Path(settings.BASE_DIR)


def test_no_app_imports_an_app_above_it():
    lint_imports = Path(sys.executable).with_name("lint-imports")

    result = subprocess.run(  # noqa: S603 - our own tool, fixed arguments
        [str(lint_imports), "--no-cache"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout
