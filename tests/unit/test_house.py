"""The house: one namespace, the import contracts of DESIGN.md section 1, and ruff, inside the test command."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("check_house", ROOT / "scripts" / "check_house.py")
check_house = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_house)


def test_ruff_finds_nothing():
    result = check_house.ruff()
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Path:
    return check_house.stage(tmp_path_factory.mktemp("staged"))


def test_import_contracts_are_kept(staged):
    result = check_house.lint_imports(staged)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("vvbench/core/_upward.py", "import vvbench.cli.main\n", "Layers"),
    ("vvbench/monitor/_upward.py", "from vvbench.runtime import presets\n", "The monitor imports no runtime"),
    ("vvbench/reports/_upward.py", "import torch\n", "Reports import no torch"),
    ("vvbench/runtime/_cycle.py", "import vvbench.runtime.config\n", None),
])
def test_a_deliberate_violation_breaks_the_contract(tmp_path, module, line, contract):
    tree = check_house.stage(tmp_path / "tree")
    path = tree / module
    if contract is None:  # a cycle: config imports the new module, which imports config
        path.write_text("import vvbench.runtime.config\n")
        cfg = tree / "vvbench/runtime/config.py"
        cfg.write_text(cfg.read_text() + "\nimport vvbench.runtime._cycle  # noqa: E402\n")
        contract = "No import cycles"
    else:
        path.write_text(line)
    result = check_house.lint_imports(tree)
    assert result.returncode != 0, result.stdout[-2000:]
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken and ("_upward" in broken or "_cycle" in broken), broken[-2000:]


def test_every_package_folder_is_listed_in_pyproject():
    setuptools = check_house.tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    found = set()
    for name, folder in check_house.package_dirs().items():
        found.add(name)
        for init in folder.rglob("__init__.py"):
            rel = init.parent.relative_to(folder)
            if rel.parts and "__pycache__" not in rel.parts:
                found.add(".".join([name, *rel.parts]))
    assert found == listed, {"not listed": sorted(found - listed), "listed but missing": sorted(listed - found)}


def test_the_distribution_adds_only_the_vvbench_top_level_name():
    top = importlib.metadata.distribution("vvbench").read_text("top_level.txt").split()
    assert top == ["vvbench"]
    import vvbench.monitor
    import vvbench.reports
    import vvbench.tuner

    assert Path(vvbench.monitor.__file__).parent == ROOT / "monitor"
    assert Path(vvbench.reports.__file__).parent == ROOT / "reports"
    assert Path(vvbench.tuner.__file__).parent == ROOT / "tuner"
    assert not any(name in sys.modules for name in ("monitor", "reports", "tuner"))
