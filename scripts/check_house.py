"""The house's own checks: ruff, and the import contracts of DESIGN.md section 1 (import-linter).

    python scripts/check_house.py            # both; exit 1 when either finds something
    python scripts/check_house.py imports    # only the import contracts
    python scripts/check_house.py ruff       # only ruff

Why a staged tree: `monitor/`, `reports/`, `tuner/` and `scenarios/` live at the top of the
repository and install as `vvbench.monitor` and so on (setuptools `package-dir`). An editable
install maps them with an import hook, which Python follows but import-linter's graph builder
(grimp) does not: it walks the `vvbench/` folder and would never see the mapped packages. So the
contracts are checked on a copy of the sources laid out as they install (`stage()`), built from
the same `package-dir` table in pyproject.toml. The test suite runs this file (tests/unit/test_house.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the test extra installs tomli
    import tomli as tomllib
ROOT = Path(__file__).resolve().parent.parent


def package_dirs(root: Path = ROOT) -> dict[str, Path]:
    """Installed package name -> source folder, from pyproject.toml (the root package included)."""
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = {name: root / folder for name, folder in setuptools.get("package-dir", {}).items()}
    return {"vvbench": root / "vvbench", **mapped}


def stage(dest: Path, root: Path = ROOT) -> Path:
    """Copy the Python sources into `dest` laid out as they install; returns `dest`."""
    for name, folder in package_dirs(root).items():
        target = dest.joinpath(*name.split("."))
        shutil.copytree(folder, target, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.yaml"))
    return dest


def lint_imports(staged: Path, root: Path = ROOT) -> subprocess.CompletedProcess:
    """`lint-imports` over a staged tree with the contracts of pyproject.toml."""
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    env = {**os.environ, "PYTHONPATH": str(staged)}
    return subprocess.run([exe, str(root / "pyproject.toml"), "--no-cache"], cwd=staged, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def ruff(root: Path = ROOT) -> subprocess.CompletedProcess:
    """`ruff check` over the repository with its pyproject.toml settings."""
    exe = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    return subprocess.run([exe, "check", "--quiet", "."], cwd=root, capture_output=True, text=True, timeout=300, check=False)


def main(argv: list[str]) -> int:
    which = set(argv) or {"imports", "ruff"}
    failed = False
    if "ruff" in which:
        result = ruff()
        if result.returncode != 0:
            failed = True
            print(result.stdout + result.stderr, end="")
    if "imports" in which:
        with tempfile.TemporaryDirectory(prefix="vvbench-house-") as tmp:
            result = lint_imports(stage(Path(tmp)))
        print(result.stdout + result.stderr, end="")
        failed = failed or result.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
