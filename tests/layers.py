"""The import rules of src/imgcls, as a checker the structure tests run (also on planted trees).

Every import counts: at module level, inside functions, under ``if TYPE_CHECKING``. Rules:

1. Every module belongs to a layer of :data:`LAYERS`.
2. No module imports a module of a higher layer.
3. No import cycle, between layers or inside one.
4. A project module is imported inside a function only when that keeps a heavy library out
   of the importing module: the imported module loads (at module level, directly or through
   other project modules) a library of :data:`HEAVY` that the importer does not load.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

# Bottom to top; docs/architecture.md lists the same order.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("imgcls.core",)),
    ("config", ("imgcls.config",)),
    ("data", ("imgcls.data",)),
    ("report", ("imgcls.report",)),
    ("models", ("imgcls.models",)),
    ("runs", ("imgcls.runs",)),
    ("checks", ("imgcls.checks",)),
    ("deploy", ("imgcls.deploy",)),
    ("review", ("imgcls.review",)),
    ("evaluation", ("imgcls.evaluation",)),
    ("training", ("imgcls.training", "imgcls.tracking")),
    ("searching", ("imgcls.searching",)),
    ("serve", ("imgcls.serve",)),
    ("labelling", ("imgcls.labelling",)),
    ("cli", ("imgcls.cli", "imgcls.__main__")),
    ("api", ("imgcls",)),  # the package's __init__ alone: lazy names only
]

HEAVY = frozenset("""torch torchvision timm lightning sklearn skimage scipy cv2 matplotlib pandas
    pyarrow onnx onnxruntime onnxscript fastapi starlette uvicorn ray optuna captum lime shap
    fairlearn cleanlab imagehash skops safetensors jinja2 pydantic yaml PIL sqlalchemy
    prometheus_client anyio""".split())


@dataclass
class Import:
    source: str
    target: str
    line: int
    in_function: bool


@dataclass
class Graph:
    modules: dict[str, Path]
    imports: list[Import] = field(default_factory=list)
    libraries: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # module-level

    def edges(self, module_level_only: bool = False) -> dict[str, set[str]]:
        out: dict[str, set[str]] = defaultdict(set)
        for imp in self.imports:
            if not (module_level_only and imp.in_function):
                out[imp.source].add(imp.target)
        return out


def module_names(src: Path, package: str = "imgcls") -> dict[str, Path]:
    names = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def read_graph(src: Path, package: str = "imgcls") -> Graph:
    graph = Graph(module_names(src, package))
    for name, path in graph.modules.items():
        tree = ast.parse(path.read_text(), str(path))
        is_package = path.name == "__init__.py"
        _walk(graph, name, is_package, tree, in_function=False)
    return graph


def _walk(graph: Graph, name: str, is_package: bool, node: ast.AST, in_function: bool) -> None:
    for child in ast.iter_child_nodes(node):
        inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        if isinstance(child, ast.Import | ast.ImportFrom):
            for target, library in _targets(graph, name, is_package, child):
                if target is not None and target != name:
                    graph.imports.append(Import(name, target, child.lineno, in_function))
                elif library is not None and not in_function:
                    graph.libraries[name].add(library)
        _walk(graph, name, is_package, child, inside)


def _targets(graph: Graph, name: str, is_package: bool, node):
    """(project module, None) or (None, top-level library name) for each imported name."""
    if isinstance(node, ast.Import):
        bases = [(alias.name, None) for alias in node.names]
    else:
        if node.level:
            parts = name.split(".") if is_package else name.split(".")[:-1]
            parts = parts[: len(parts) - (node.level - 1)]
            base = ".".join(parts + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        bases = [(base, alias.name) for alias in node.names]
    for base, member in bases:
        full = f"{base}.{member}" if member else base
        candidate = full if full in graph.modules else base
        while candidate and candidate not in graph.modules and "." in candidate:
            candidate = candidate.rsplit(".", 1)[0]
        if candidate in graph.modules:
            yield candidate, None
        else:
            yield None, base.split(".")[0]


def layer_of(module: str) -> int | None:
    best, best_len = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            below = "." in prefix and module.startswith(prefix + ".")  # the root package: itself only
            if (module == prefix or below) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def cycles(edges: dict[str, set[str]], nodes) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def heavy_closure(graph: Graph) -> dict[str, set[str]]:
    """Heavy libraries each module loads at import time, through module-level imports."""
    edges = graph.edges(module_level_only=True)
    memo: dict[str, set[str]] = {}

    def visit(module: str, seen: frozenset) -> set[str]:
        if module in memo:
            return memo[module]
        out = {lib for lib in graph.libraries.get(module, ()) if lib in HEAVY}
        for target in edges.get(module, ()):
            if target not in seen:
                out |= visit(target, seen | {target})
        memo[module] = out
        return out

    sys.setrecursionlimit(max(1000, sys.getrecursionlimit()))
    return {m: visit(m, frozenset({m})) for m in graph.modules}


def violations(src: Path, package: str = "imgcls") -> list[str]:
    """Every broken rule, one sentence each (empty when the tree holds)."""
    graph = read_graph(src, package)
    problems = []
    for module in graph.modules:
        if layer_of(module) is None:
            problems.append(f"{module} is in no layer; add it to LAYERS (tests/layers.py) and "
                            "docs/architecture.md")
    for imp in graph.imports:
        low, high = layer_of(imp.source), layer_of(imp.target)
        if low is not None and high is not None and high > low:
            problems.append(f"upward import: {imp.source} (layer {LAYERS[low][0]}) imports {imp.target} "
                            f"(layer {LAYERS[high][0]}) at line {imp.line}")
    for component in cycles(graph.edges(), graph.modules):
        problems.append(f"import cycle: {' <-> '.join(component)}")
    closure = heavy_closure(graph)
    for imp in graph.imports:
        if imp.in_function and not (closure[imp.target] - closure[imp.source]):
            problems.append(f"function-level import of {imp.target} in {imp.source} (line {imp.line}) "
                            "keeps no heavy library out; import it at the top of the module")
    return problems
