"""The architecture goals of issue 22, measured: the longest function in ``bench/``, the import
circles among its modules, and ``bench --help`` wall time against ``python -c "import torch"``.

    python scripts/architecture.py [--repeat 5] [--json OUT]

Import circles are counted twice: among module-level imports (what runs when a module loads),
and among every import, those inside functions included (an import moved into a function to
dodge a circle still ties the two modules together). Imports under ``if TYPE_CHECKING:`` are
left out of both. ``from package import submodule`` is an edge to the submodule alone.
Timings are medians over ``--repeat`` runs of each command, interleaved so that a busy machine
slows both alike.
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bench"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, this: str, is_package: bool, nested: bool) -> set[str]:
    """Imported names; ``nested``: those inside functions and classes too."""
    out: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if nested and isinstance(
                node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.With)
            ):
                visit(node.body)
                continue
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = this.split(".")
                    if not is_package:
                        anchor = anchor[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                out.update(f"{base}.{a.name}" for a in node.names)
            elif isinstance(node, ast.If) and not _is_type_checking(node):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)

    visit(tree.body)
    return out


def import_graph(nested: bool) -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        targets = _imports(tree, name, path.name == "__init__.py", nested)
        edges = set()
        for t in targets:
            # ``from bench.x import y``: y may be a module or a name; keep what is a module.
            while t and t not in files:
                t = t.rpartition(".")[0]
            if t and t != name:
                edges.add(t)
        graph[name] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    sys.setrecursionlimit(10_000)

    def strong(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def longest_functions(n: int = 5) -> list[tuple[int, str]]:
    found = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                found.append((length, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"))
    return sorted(found, reverse=True)[:n]


def _wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def help_ratio(repeat: int) -> dict[str, float]:
    bench = [sys.executable, "-c", "from bench.cli import main; main()", "--help"]
    exe = Path(sys.executable).with_name("bench")
    if exe.exists():
        bench = [str(exe), "--help"]
    torch = [sys.executable, "-c", "import torch"]
    helps, torches = [], []
    for _ in range(repeat):
        helps.append(_wall(bench))
        torches.append(_wall(torch))
    h, t = statistics.median(helps), statistics.median(torches)
    return {"bench_help_s": h, "import_torch_s": t, "ratio": h / t}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    found = circles(import_graph(nested=False))
    found_all = circles(import_graph(nested=True))
    longest = longest_functions()
    timing = help_ratio(args.repeat)
    print(
        f"bench --help: {timing['bench_help_s']:.2f} s; import torch: "
        f"{timing['import_torch_s']:.2f} s; ratio {timing['ratio']:.2f} (goal <= 0.2)"
    )
    print(
        "longest functions (goal <= 50 lines): "
        + "; ".join(f"{n} lines {where}" for n, where in longest)
    )
    print(f"import circles at load time (goal 0): {len(found)}")
    for comp in found:
        print("  " + " <-> ".join(comp))
    print(f"import circles with imports inside functions (goal 0): {len(found_all)}")
    for comp in found_all:
        print("  " + " <-> ".join(comp))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"timing": timing, "longest": longest, "circles": found, "circles_all": found_all},
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
