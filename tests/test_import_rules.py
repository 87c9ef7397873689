"""Imports run one way: ``src/cli`` -> ``src/agents`` -> ``src/mlops``. Checked from the source (an
AST scan of every module, imports inside functions included), not from what happens to be loaded."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: package -> module prefixes it must never import
FORBIDDEN = {
    "src.mlops": ("src.agents", "src.cli", "langgraph"),
    "src.agents": ("src.cli",),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, relative ones resolved."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.append((node.lineno, module))
            out += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return out


def _violations(package: str) -> list[str]:
    forbidden = FORBIDDEN[package]
    found = []
    for path in sorted((SRC.parent / package.replace(".", "/")).rglob("*.py")):
        for line, module in imported_modules(path):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(SRC.parent)}:{line} imports {module}")
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_run_one_way(package):
    assert _violations(package) == []


def test_the_scan_sees_relative_function_level_and_from_imports(tmp_path, monkeypatch):
    """The checker itself: it must catch each way of writing a forbidden import."""
    fake = tmp_path / "src" / "mlops" / "sub"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "bad.py").write_text(
        "import langgraph.graph\n"
        "from ...agents import x\n"
        "def f():\n    from src.cli.main import main\n"
        "from src.mlops import persistence\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path / "src")
    found = _violations("src.mlops")
    assert [v.split(" imports ")[1] for v in found] == ["langgraph.graph", "src.agents", "src.agents.x",
                                                       "src.cli.main", "src.cli.main.main"], found


def test_importing_the_engine_leaves_global_settings_alone():
    """Issue 8.6. Before: importing src.mlops.optimizer set Optuna's verbosity for the whole process."""
    import subprocess
    import sys

    code = ("import logging, warnings, optuna; optuna.logging.set_verbosity(optuna.logging.DEBUG); "
            "before = list(warnings.filters); "
            "import src.mlops.optuna_optimizer, src.mlops.tracking, src.agents.ml_foundation.model_trainer; "
            "assert optuna.logging.get_verbosity() == optuna.logging.DEBUG, optuna.logging.get_verbosity(); "
            "assert ('ignore', None, Warning, None, 0) not in warnings.filters; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
