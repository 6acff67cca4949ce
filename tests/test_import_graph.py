"""The package's dependency directions, read from its source (an ``ast`` walk, no import side effects).

- the steps import neither the runner nor the CLI;
- the core (everything but the CLI, the web UI's CLI, the orchestration adapter and the simulator)
  imports neither the CLI, Dagster nor the simulator;
- no import cycles between modules (imports under ``if TYPE_CHECKING:`` do not count).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import company_activity

ROOT = Path(company_activity.__file__).parent
PKG = "company_activity"


def _is_module(name: str) -> bool:
    path = ROOT.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for a in node.names:  # a submodule by its own name, else the module it comes from
                    out.add(f"{target}.{a.name}" if _is_module(f"{target}.{a.name}") else target)
            elif not top_level_only or isinstance(node, (ast.If, ast.Try, ast.With)):
                visit([n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt)])

    visit(tree.body)
    return out


def _graph(*, top_level_only: bool) -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for target in _imports(path, name, top_level_only=top_level_only):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith(PKG):
                deps.add(target)
        graph[name] = deps
    return graph


def _external(module: str) -> set[str]:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    return {t.split(".")[0] for t in _imports(modules[module], module, top_level_only=False)}


def test_steps_import_neither_the_runner_nor_the_cli() -> None:
    graph = _graph(top_level_only=False)
    steps = [m for m in graph if m.startswith(f"{PKG}.steps")]
    assert steps, "no step modules found"
    for m in steps:
        assert f"{PKG}.run.runner" not in graph[m], m
        assert f"{PKG}.cli" not in graph[m], m


def test_the_core_imports_neither_the_cli_dagster_nor_the_simulator() -> None:
    graph = _graph(top_level_only=False)
    edge = (f"{PKG}.cli", f"{PKG}.web.cli", f"{PKG}.orchestration", f"{PKG}.simulator", f"{PKG}.__main__")
    core = [m for m in graph if not m.startswith(edge) and m != f"{PKG}.demo"]
    assert f"{PKG}.pipeline" in core and f"{PKG}.run.runner" in core
    for m in core:
        bad = {
            t
            for t in graph[m]
            if t == f"{PKG}.cli" or t.startswith((f"{PKG}.simulator", f"{PKG}.orchestration"))
        }
        assert not bad, f"{m} imports {sorted(bad)}"
        assert "dagster" not in _external(m), m


def test_no_import_cycles() -> None:
    """No cycle among the imports a module makes when it is imported (top level, not in functions)."""
    graph = _graph(top_level_only=True)
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == []


#: the SQL files that may name ops.* tables: the run-state store's queries, its read model, the schema
_OPS_SQL = {"ops.sql", "monitoring.sql", "read_model.sql", "create_tables.sql"}
_OPS_TABLE = re.compile(r"(?i)\b(?:from|join|into|update|table)\s+ops\.[a-z_]+")


def _ops_sql_files() -> set[str]:
    sql = ROOT / "sql"
    return {p.name for p in sql.glob("*.sql") if _OPS_TABLE.search(p.read_text(encoding="utf-8"))}


def test_only_the_state_package_reads_or_writes_ops_tables() -> None:
    """``state/`` (the writers and the read model) is the one door to ``ops.*``: no other SQL file names an
    ``ops`` table (migrations aside), and no module outside ``state/`` loads those files or holds SQL text
    over ``ops.*`` (the warehouse's schema-version bookkeeping and migrations aside)."""
    files = _ops_sql_files()
    migrations = {f for f in files if f.startswith("migrate_")}
    assert files - migrations <= _OPS_SQL, sorted(files - migrations - _OPS_SQL)
    assert {"read_model.sql", "ops.sql"} <= files  # the check can see what it looks for
    allowed = (f"{PKG}.state", f"{PKG}.warehouse.migrations", f"{PKG}.warehouse")
    offenders: list[str] = []
    for path in ROOT.rglob("*.py"):
        module = _module_name(path)
        if module == f"{PKG}.warehouse" or module.startswith(f"{PKG}.state") or module == allowed[1]:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
                continue
            text = node.value
            if text in _OPS_SQL - {"create_tables.sql"} or text in migrations:
                offenders.append(f"{module} loads {text}")
            elif _OPS_TABLE.search(text) and ("select" in text.lower() or "insert" in text.lower()):
                offenders.append(f"{module} holds SQL over ops.*: {text[:60]!r}")
    assert offenders == []


def test_the_ops_check_finds_an_offender(tmp_path: Path) -> None:
    """The pattern the check above relies on matches the SQL it is meant to catch."""
    assert _OPS_TABLE.search("select * from ops.runs")
    assert _OPS_TABLE.search("insert into ops.run_alerts (x) values (1)")
    assert not _OPS_TABLE.search("the ops.* tables are read through state/")
