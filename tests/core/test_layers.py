"""The floor plan is kept: every module imports only from its own layer or the layers below it
(docs/architecture.md), type-only and function-local imports included, and nothing imports in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "advexp_core"

# Each part's rank: a module may import from parts of the same or a lower rank only.
LAYERS = {
    "base": 0,
    "data": 1,
    "measures": 2,
    "networks": 3,
    "methods": 4,
    "training": 5,
    "evaluation": 5,
    "readings": 5,
    "experiments": 6,
    "plots": 7,
    "cli": 8,
    "advexp_ui": 8,
    "pages": 9,
}
TOP = {"advexp_core", "advexp_core.__main__"}  # the package's face and entry point: above everything


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "advexp_core":
        return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None
    if parts[0] in ("advexp_ui", "pages", "app"):
        return "pages" if parts[0] == "app" else parts[0]
    return None


def sources() -> dict[str, Path]:
    files = [
        *CORE.rglob("*.py"),
        *(ROOT / "advexp_ui").rglob("*.py"),
        *(ROOT / "pages").glob("*.py"),
        ROOT / "app.py",
    ]
    return {module_name(p): p for p in files}


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Every advexp module ``path`` imports, wherever the import statement stands."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    files = sources()
    return {name: imports(path, name, set(files)) for name, path in files.items()}


def test_every_core_module_lives_in_a_part() -> None:
    loose = sorted(n for n in graph() if n.startswith("advexp_core") and n not in TOP and layer_of(n) is None)
    assert not loose, f"modules outside the parts of docs/architecture.md: {loose}"


def test_imports_run_down_the_layers_only() -> None:
    upward = []
    for name, targets in graph().items():
        if name in TOP or layer_of(name) is None:
            continue
        for target in targets:
            if target in TOP and target != "advexp_core":
                upward.append(f"{name} -> {target}")
            elif (layer := layer_of(target)) is not None and LAYERS[layer] > LAYERS[layer_of(name) or "base"]:
                upward.append(f"{name} -> {target}")
    assert not upward, "imports that run up a layer:\n" + "\n".join(sorted(upward))


def test_plots_are_never_imported_by_what_they_draw() -> None:
    wrong = [
        f"{n} -> {t}"
        for n, ts in graph().items()
        for t in ts
        if layer_of(t) == "plots" and layer_of(n) in ("experiments", "readings")
    ]
    assert not wrong, wrong


def test_no_import_circle() -> None:
    g = graph()
    # a package's __init__ re-exporting its own modules is not a circle of design
    edges = {n: {t for t in ts if not n.startswith(t + ".")} for n, ts in g.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                circles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_few_modules_stay_at_the_top_of_the_core() -> None:
    top = sorted(p.name for p in CORE.glob("*.py"))
    assert len(top) <= 8, top
