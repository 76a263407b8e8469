"""Reproducible installs: the README's test command is the one .ci/run runs (tools/test.sh), both install with
constraints.txt, and constraints.txt pins every package the project asks for (so a fresh clone
tests the same releases on every box), while pyproject.toml keeps open ranges for users."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def pins() -> dict[str, str]:
    out = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"constraints.txt: {line!r} is not NAME==VERSION"
            out[re.sub(r"[-_.]+", "-", name).lower()] = version
    return out


def requirement_names() -> set[str]:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"]) + [r for extra in project["optional-dependencies"].values() for r in extra]
    names = set()
    for line in lines:
        if "python_version < '3.9'" in line or line.startswith("edge-fer["):
            continue  # tflite-runtime is for Python 3.8 only; the "all" extra names the others
        names.add(re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", line).group(0)).lower())
    return names


def test_readme_test_command_is_ci_and_uses_the_constraints():
    readme = (REPO / "README.md").read_text()
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == "exec bash tools/test.sh" and "```bash\nbash tools/test.sh\n```" in readme
    script = (REPO / "tools" / "test.sh").read_text()
    assert script.count("-c constraints.txt") == 2  # both virtualenvs
    assert "apt-get install -y -qq chromium" in script  # the browser tests' set-up, for everyone
    assert 'pytest -m "not slow" -rs' in script  # skips are listed with their reasons


def test_constraints_pin_every_requirement():
    pinned = pins()
    missing = sorted(requirement_names() - set(pinned))
    assert not missing, f"constraints.txt lacks {missing}"
    assert {"mediapipe", "opencv-contrib-python"} <= set(pinned)  # the .venv-mp side
    assert "edge-fer" not in pinned


def test_users_keep_open_ranges():
    import tomllib

    for line in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]:
        assert "==" not in line, f"pyproject.toml pins {line!r}: users' installs should keep a range"
