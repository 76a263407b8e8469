"""Which wheels pip finds for edge-fer's runtime dependencies on aarch64 Linux (Jetson, Pi).

Reads [project.dependencies] from pyproject.toml and asks pip, for each dependency alone
(``--no-deps``), for a binary wheel for a Python version and a manylinux platform:

    python tools/aarch64_wheels.py                        # the JetPack matrix, a Markdown table
    python tools/aarch64_wheels.py --python 3.10 --json   # one Python, JSON (tests/test_aarch64.py)
    python tools/aarch64_wheels.py --download             # really download the wheels (pip download)
    python tools/aarch64_wheels.py --requirement tflite-runtime   # any other package
    python tools/aarch64_wheels.py --install dist/edge_fer-0.1.0-py3-none-any.whl \
        --python 3.8 --python 3.10 --platform jetpack5 --platform jetpack6
        # the whole install, dependencies of dependencies included, as pip would resolve it

Platforms: manylinux2014 (glibc 2.17: any aarch64 Linux), jetpack5 (Ubuntu 20.04, glibc 2.31,
Python 3.8) and jetpack6 (Ubuntu 22.04, glibc 2.35, Python 3.10): each accepts the wheels of
its glibc and older ones. Without --download it resolves with
``pip install --dry-run --report`` (metadata only, seconds instead of ~150 MB of wheels).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHONS = ("3.8", "3.9", "3.10", "3.11")
#: name -> glibc minor version (2.x) of the target; pip is given every manylinux tag up to it.
PLATFORMS = {"manylinux2014": 17, "jetpack5": 31, "jetpack6": 35}


def platform_tags(glibc_minor: int) -> list[str]:
    """Every aarch64 manylinux tag a system with glibc 2.<glibc_minor> accepts (pip's --platform
    takes tags literally: manylinux_2_35 alone would refuse a manylinux2014 wheel)."""
    return ["manylinux2014_aarch64"] + [f"manylinux_2_{v}_aarch64" for v in range(17, glibc_minor + 1)]


def runtime_dependencies(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    with pyproject.open("rb") as handle:
        return list(tomllib.load(handle)["project"]["dependencies"])


def resolve(requirement: str, python: str, glibc_minor: int, download: bool = False, timeout_s: float = 300) -> dict:
    """{"requirement", "python", "version", "wheel"}, or with "error" instead, or with
    "not_applicable" when the requirement's marker excludes this Python."""
    from packaging.requirements import Requirement

    row = {"requirement": requirement, "python": python}
    parsed = Requirement(requirement)
    target = {"python_version": python, "python_full_version": f"{python}.0",
              "platform_machine": "aarch64", "sys_platform": "linux", "platform_system": "Linux"}
    if parsed.marker is not None and not parsed.marker.evaluate(target):
        row["not_applicable"] = True
        return row
    requirement = f"{parsed.name}{parsed.specifier}"
    platforms = [arg for tag in platform_tags(glibc_minor) for arg in ("--platform", tag)]
    common = ["--only-binary=:all:", *platforms, "--python-version", python, "--implementation", "cp",
              "--no-deps", "--quiet", "--disable-pip-version-check", requirement]
    with tempfile.TemporaryDirectory(prefix="edge-fer-aarch64-") as tmp:
        report = Path(tmp) / "report.json"
        if download:
            cmd = [sys.executable, "-m", "pip", "download", "-d", tmp, *common]
        else:
            cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--target",
                   str(Path(tmp) / "t"), "--report", str(report), *common]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        if run.returncode != 0:
            errors = [l for l in run.stderr.splitlines() if l.startswith("ERROR") and "Ignored the following" not in l]
            row["error"] = (errors or run.stderr.strip().splitlines() or ["pip failed"])[0][:300]
            return row
        if download:
            wheel = next(Path(tmp).glob("*.whl"))
            row["wheel"] = wheel.name
            row["version"] = wheel.name.split("-")[1]
        else:
            item = json.loads(report.read_text())["install"][0]
            row["version"] = item["metadata"]["version"]
            row["wheel"] = item["download_info"]["url"].rsplit("/", 1)[-1]
    return row


def target_environment(python: str) -> dict:
    return {"python_version": python, "python_full_version": f"{python}.0", "platform_machine": "aarch64",
            "sys_platform": "linux", "platform_system": "Linux", "extra": ""}


def wheel_requirements(wheel: Path, python: str) -> tuple[str, list[str]]:
    """The wheel's "name==version" and its Requires-Dist that apply on ``python`` (markers
    evaluated for that Python and removed; extras left out)."""
    import zipfile

    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(metadata).decode().splitlines()
    fields = dict(line.split(": ", 1) for line in lines if line.startswith(("Name: ", "Version: ")))
    requirements = []
    for line in lines:
        if line.startswith("Requires-Dist: "):
            parsed = Requirement(line.split(": ", 1)[1])
            if parsed.marker is None or parsed.marker.evaluate(target_environment(python)):
                requirements.append(f"{parsed.name}{parsed.specifier}")
    return f"{fields['Name']}=={fields['Version']}", requirements


def resolve_install(target: str, python: str, glibc_minor: int, timeout_s: float = 600) -> dict:
    """What ``pip install --only-binary=:all: TARGET`` would install on that Python and
    platform, dependencies included: {"python", "packages": {name: version}}, or "error".

    pip evaluates environment markers for the Python it runs on, not ``--python-version``
    (it would ask for ai-edge-litert on 3.8). So a wheel's own requirements are evaluated here
    for the target Python and handed to pip without markers. The markers of dependencies'
    dependencies are still pip's (this interpreter's): small backports can differ there.
    """
    platforms = [arg for tag in platform_tags(glibc_minor) for arg in ("--platform", tag)]
    row = {"target": target, "python": python}
    requirements, itself = [target], None
    if target.endswith(".whl"):
        itself, requirements = wheel_requirements(Path(target), python)
    with tempfile.TemporaryDirectory(prefix="edge-fer-aarch64-") as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--target",
               str(Path(tmp) / "t"), "--report", str(report), "--only-binary=:all:", *platforms,
               "--python-version", python, "--implementation", "cp", "--quiet",
               "--disable-pip-version-check", *requirements]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        if run.returncode != 0:
            errors = [l for l in run.stderr.splitlines() if l.startswith("ERROR") and "Ignored the following" not in l]
            row["error"] = (errors or run.stderr.strip().splitlines() or ["pip failed"])[0][:300]
            return row
        items = json.loads(report.read_text())["install"]
        row["packages"] = {i["metadata"]["name"]: i["metadata"]["version"] for i in items}
        if itself:
            name, version = itself.split("==")
            row["packages"][name] = version
    return row


def install_table(rows: list[dict]) -> str:
    """Markdown: one row per installed package, one column per (platform, Python)."""
    columns = [f"{r['platform']} py{r['python']}" for r in rows]
    names = sorted({n.lower() for r in rows for n in r.get("packages", {})})
    lines = ["| package | " + " | ".join(columns) + " |", "| --- | " + " | ".join("---" for _ in rows) + " |"]
    for name in names:
        cells = [next((v for n, v in r.get("packages", {}).items() if n.lower() == name), "-" if "error" not in r else "**fails**")
                 for r in rows]
        lines.append(f"| `{name}` | " + " | ".join(cells or ["-"]) + " |")
    return "\n".join(lines)


def table(rows: list[dict], pythons, platforms) -> str:
    """Markdown: one row per dependency and platform, one column per Python."""
    lines = ["| dependency | platform | " + " | ".join(f"py{p}" for p in pythons) + " |",
             "| --- | --- | " + " | ".join("---" for _ in pythons) + " |"]
    for req in dict.fromkeys(r["requirement"] for r in rows):
        for plat in platforms:
            cells = []
            for py in pythons:
                row = next(r for r in rows if (r["requirement"], r["platform"], r["python"]) == (req, plat, py))
                cells.append("n/a" if row.get("not_applicable") else row.get("version", "**none**"))
            lines.append(f"| `{req}` | {plat} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", help=f"Python version(s) (default: {', '.join(PYTHONS)})")
    parser.add_argument("--platform", action="append", choices=sorted(PLATFORMS),
                        help="platform name(s) (default: all)")
    parser.add_argument("--requirement", action="append",
                        help="check these requirements instead of pyproject's (e.g. tflite-runtime)")
    parser.add_argument("--download", action="store_true", help="download the wheels (pip download)")
    parser.add_argument("--install", metavar="WHEEL_OR_REQUIREMENT",
                        help="resolve this whole install (dependencies included) instead")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    pythons = args.python or list(PYTHONS)
    platforms = args.platform or list(PLATFORMS)
    if args.install:
        rows = [resolve_install(args.install, py, PLATFORMS[plat]) | {"platform": plat}
                for plat in platforms for py in pythons]
        print(json.dumps(rows, indent=1) if args.json else install_table(rows))
        for row in rows:
            if "error" in row:
                print(f"- does not install: py{row['python']} {row['platform']}: {row['error']}")
        return 1 if any("error" in r for r in rows) else 0
    rows = [resolve(req, py, PLATFORMS[plat], args.download) | {"platform": plat}
            for req in (args.requirement or runtime_dependencies()) for plat in platforms for py in pythons]
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(table(rows, pythons, platforms))
        for row in rows:
            if "error" in row:
                print(f"- no wheel: `{row['requirement']}` py{row['python']} {row['platform']}: {row['error']}")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
