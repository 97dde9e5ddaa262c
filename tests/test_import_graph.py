"""No import cycles among the project's modules, counting imports inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "backends", "datasets")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = (
                    ".".join(package[: len(package) - node.level + 1] + [node.module or ""]).strip(".")
                    if node.level
                    else node.module
                )
                targets.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names)
        resolved = set()
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                resolved.add(target)
        graph[name] = resolved
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_module_graph_has_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


# The stages of a run, lowest first: a module may import its own stage or a lower one, never a higher one,
# so plumbing never reaches into a stage and a stage never into the runner that sequences it.
STAGES = (
    ("core.common",),
    ("core.assets", "datasets"),
    ("core.config",),
    ("core.reporting",),
    ("core.measure",),
    ("core.model",),
    ("backends",),
    ("core.quality",),
    ("core.scenarios",),
    ("core.run",),
    ("core.fleet",),
    ("core", "core.perf_engine", "core.prepare", "core.sweep", "core.compare", "core.summary"),
)


def stage_of(module: str) -> int:
    """The stage of a module: its longest matching package prefix."""
    best, rank = -1, None
    for level, prefixes in enumerate(STAGES):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), level
    assert rank is not None, f"{module} belongs to no stage: add it to STAGES"
    return rank


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{source} (stage {stage_of(source)}) imports {target} (stage {stage_of(target)})"
        for source, targets in graph.items()
        for target in targets
        if stage_of(target) > stage_of(source)
    )


def test_no_module_imports_a_higher_stage():
    problems = upward_imports(import_graph())
    assert not problems, "imports from a lower stage to a higher one:\n" + "\n".join(problems)


def test_the_stage_check_finds_an_upward_import():
    graph = {"core.measure.timing": {"core.run.runner"}, "core.run.runner": {"core.measure.timing"}}
    assert upward_imports(graph) == ["core.measure.timing (stage 4) imports core.run.runner (stage 9)"]
