"""The import structure: no module imports one that (directly or not) imports it back, and no
package imports one on a higher floor. Every `import` of every module counts, also those inside
functions (they still tie the two files together)."""

import ast
from pathlib import Path

import pytest

from support.paths import REPO_ROOT


# floor of each top-level package or module: a module may import its own floor and those below
FLOORS = {
    "utils": 0,
    "loss": 1, "network": 1, "datasets": 1,
    "checkpoints": 2, "inference_handlers": 2,
    "tasks": 3,
    "main": 4, "tools": 4,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    paths = [REPO_ROOT / "main.py"] + [path for package in FLOORS if (REPO_ROOT / package).is_dir()
                                       for path in sorted((REPO_ROOT / package).rglob("*.py"))]
    return {module_name(path): path for path in paths}


def imported_modules(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that `path` imports (a `from package import name` counts the module
    `package.name` when there is one, else `package`)."""
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    found.discard(module_name(path))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imported_modules(path, modules) for name, path in modules.items()}


def circle_through(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of `graph` (its modules in order, the first repeated at the end), or None."""
    state, stack = {}, []

    def visit(name):
        state[name] = "open"
        stack.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state and (circle := visit(target)):
                return circle
        state[name] = "done"
        stack.pop()
        return None

    for name in sorted(graph):
        if name not in state and (circle := visit(name)):
            return circle
    return None


def floor(module: str) -> int:
    return FLOORS[module.split(".")[0]]


def imports_of_package(graph: dict[str, set[str]], package: str, imported: str) -> list[str]:
    """'module -> target' for each import from a module of `package` into one of `imported`."""
    def inside(name: str, folder: str) -> bool:
        return name == folder or name.startswith(folder + ".")
    return sorted(f"{name} -> {target}" for name, targets in graph.items() if inside(name, package)
                  for target in targets if inside(target, imported))


def test_the_modules_import_each_other_in_no_circle():
    assert circle_through(import_graph()) is None


def test_no_package_imports_one_on_a_higher_floor():
    upward = sorted(f"{name} -> {target}" for name, targets in import_graph().items() for target in targets
                    if floor(target) > floor(name))
    assert upward == []


def test_evaluation_imports_nothing_of_inference():
    """Scores, reports and comparisons read what inference wrote; they never run it (nor its
    command-line modules), so a folder of masks is scored without the engine."""
    assert imports_of_package(import_graph(), "inference_handlers.evaluation", "inference_handlers.inference") == []


def test_the_inference_handlers_package_itself_imports_neither_side():
    """Importing inference_handlers.evaluation runs inference_handlers/__init__.py first: were it to
    import the engine, every evaluation would load it."""
    assert import_graph()["inference_handlers"] == set()


def test_a_package_import_into_another_is_found():
    graph = {"inference_handlers.evaluation.report": {"inference_handlers.inference.runner", "utils.files"},
             "inference_handlers.inference.runner": {"inference_handlers.evaluation.protocols"}}
    assert imports_of_package(graph, "inference_handlers.evaluation", "inference_handlers.inference") == [
        "inference_handlers.evaluation.report -> inference_handlers.inference.runner"]


def test_every_package_of_the_project_has_a_floor():
    packages = {path.parent.name for path in REPO_ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages <= FLOORS.keys()


@pytest.mark.parametrize("source, expected", [
    ("import utils.files\n", {"utils.files"}),
    ("from utils import files\n", {"utils.files"}),
    ("from utils.config import Task\n", {"utils.config"}),
    ("def late():\n    from tasks.setup import setup_run\n", {"tasks.setup"}),
    ("from . import files\n", {"utils.files"}),
    ("import numpy\n", set()),
])
def test_imports_are_read_in_every_form(tmp_path, monkeypatch, source, expected):
    path = REPO_ROOT / "utils" / "example_module.py"
    monkeypatch.setattr(Path, "read_text", lambda self, *args, **kwargs: source)
    assert imported_modules(path, {**project_modules(), "utils.example_module": path}) == expected


def test_a_circle_and_an_upward_import_are_found():
    graph = {"utils.files": {"datasets.io"}, "datasets.io": {"utils.files"}, "tasks.setup": set()}
    assert circle_through(graph) in (["utils.files", "datasets.io", "utils.files"],
                                     ["datasets.io", "utils.files", "datasets.io"])
    assert floor("datasets.io") > floor("utils.files")
