"""The package's layers and the check that imports only point down (docs/architecture.md).

    python -m curio_jax.tools.layers          # the layer graph, and any violation (exit 1)

Layers, lowest first; a module may import modules of its own layer or lower ones:

    envs        the MiniGrid-faithful DoorKey, its layouts, statistics and adapters
    config      frozen dataclasses and presets; argument parsing shared by command lines
    core        pure, jittable: networks, returns, RND, rollout, losses, optimiser, make_train
    parallel    program building: vmap, the seed loop, sharding, compilation
    run         the host run loop: run directory, checkpoints, loggers, resume, sweeps
    analysis    statistics, compare, evaluate, render
    study       study specs, their slices run anywhere, records kept in the repo, one report
    reference   the PyTorch + gymnasium port of the notebook and the cross-checks
    tools       benchmarks and this check
    cli         the command line (parse, call, print)

Rules checked on every module (imports inside functions included):
- no import of a higher layer, and no import cycle between modules;
- imports inside functions only for optional heavy dependencies (the modules of the
  `reference` extra included), except in `cli` (whose commands import their layers lazily so
  `--help` does not pay for JAX and navix);
- torch, gymnasium and minigrid at module level only in `reference` and in the gymnasium
  adapter; `core` and `parallel` never import them, nor matplotlib, scipy or tensorboard.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("envs", ("curio_jax.envs", "curio_jax.gym", "curio_jax.navix_ids")),
    ("config", ("curio_jax.config", "curio_jax.argparsing")),
    ("core", ("curio_jax.core",)),
    ("parallel", ("curio_jax.parallel",)),
    ("run", ("curio_jax.run",)),
    ("analysis", ("curio_jax.analysis",)),
    ("study", ("curio_jax.study",)),
    ("reference", ("curio_jax.reference",)),
    ("tools", ("curio_jax.tools",)),
    ("cli", ("curio_jax.cli", "curio_jax.__main__")),
)
OPTIONAL_HEAVY = (
    "torch",
    "gymnasium",
    "minigrid",
    "matplotlib",
    "PIL",
    "tensorboardX",
    "tensorboard",
    "wandb",
    "navix.agents",
)
"""Optional dependencies: imported inside the functions that need them (or, for the first
three, at module level in `reference` and the gymnasium adapter)."""
PLATFORM = ("fcntl", "resource")
"""POSIX-only standard modules, imported where they are used (a no-op elsewhere)."""
TORCH_GYM = ("torch", "gymnasium", "minigrid")
TORCH_GYM_MODULES = ("curio_jax.reference", "curio_jax.envs.gym_vector")
PURE = ("core", "parallel")
PURE_FORBIDDEN = (*TORCH_GYM, "matplotlib", "PIL", "scipy", "tensorboardX", "tensorboard", "wandb")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module (resolved to the deepest curio_jax module, if ours)
    line: int
    local: bool  # inside a function


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer_of(module: str) -> int | None:
    """Index of the module's layer in LAYERS (None: the package root, which may import all)."""
    best = None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if _within(module, p) and (best is None or len(p) > len(best[1])):
                best = (i, p)
    return None if best is None else best[0]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(target: str, known: set[str]) -> str:
    """The deepest known module a dotted import names (`a.b.c` -> `a.b` if `c` is a name)."""
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target


def imports_of(path: Path, root: Path, known: set[str]) -> list[Import]:
    """Every import statement of a module, with whether it sits inside a function."""
    module = module_name(path, root)
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[Import] = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    t = alias.name
                    out.append(Import(module, _resolve(t, known) or t, child.lineno, local))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative import
                    pkg = module if path.name == "__init__.py" else module.rpartition(".")[0]
                    for _ in range(child.level - 1):
                        pkg = pkg.rpartition(".")[0]
                    base = f"{pkg}.{base}" if base else pkg
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    t = _resolve(full, known) if full in known else _resolve(base, known) or base
                    out.append(Import(module, t, child.lineno, local))
            visit(child, inner)

    visit(tree, False)
    return out


def scan(root: Path) -> list[Import]:
    """The imports of every module of the package at `root` (the curio_jax directory)."""
    files = sorted(root.rglob("*.py"))
    known = {module_name(p, root) for p in files}
    return [i for p in files for i in imports_of(p, root, known)]


def _ours(name: str) -> bool:
    return _within(name, "curio_jax")


def violations(imports: list[Import]) -> list[str]:
    """Every broken rule, one line each (empty: the layering holds)."""
    bad: list[str] = []
    for imp in imports:
        a = layer_of(imp.module)
        top = imp.target.split(".")[0]
        where = f"{imp.module}:{imp.line}"
        if _ours(imp.target):
            b = layer_of(imp.target)
            if a is not None and (b is None or b > a):
                upper = "the package root" if b is None else LAYERS[b][0]
                bad.append(
                    f"{where} imports {imp.target} ({upper}) from the lower layer {LAYERS[a][0]}"
                )
            extra = any(_within(imp.target, m) for m in TORCH_GYM_MODULES)
            if imp.local and a is not None and LAYERS[a][0] != "cli" and not extra:
                bad.append(f"{where} imports {imp.target} inside a function (only cli may)")
            continue
        heavy = any(_within(imp.target, h) for h in OPTIONAL_HEAVY)
        if a is not None and LAYERS[a][0] in PURE and top in PURE_FORBIDDEN:
            bad.append(f"{where}: the pure layer {LAYERS[a][0]} imports {imp.target}")
        elif top in TORCH_GYM and not imp.local:
            if not any(_within(imp.module, m) for m in TORCH_GYM_MODULES):
                bad.append(f"{where} imports {imp.target} at module level")
        elif (
            imp.local and not heavy and top not in PLATFORM and (a is None or LAYERS[a][0] != "cli")
        ):
            bad.append(
                f"{where} imports {imp.target} inside a function (not an optional dependency)"
            )
    bad += [f"import cycle: {' -> '.join(c)}" for c in cycles(imports)]
    return bad


def graph(imports: list[Import]) -> dict[str, set[str]]:
    """Module -> the package modules it imports (module level and inside functions)."""
    g: dict[str, set[str]] = {}
    for imp in imports:
        g.setdefault(imp.module, set())
        if _ours(imp.target) and imp.target != imp.module:
            # importing a submodule first runs its package's __init__: not a dependency edge
            if not _within(imp.module, imp.target):
                g[imp.module].add(imp.target)
    return g


def cycles(imports: list[Import]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module."""
    g = graph(imports)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp) + [sorted(comp)[0]])

    for v in sorted(g):
        if v not in index:
            strong(v)
    return out


def layer_graph(imports: list[Import]) -> list[str]:
    """Which layer imports which (lines `layer -> lower layers`), for docs/architecture.md."""
    edges: dict[str, set[str]] = {name: set() for name, _ in LAYERS}
    for imp in imports:
        a, b = layer_of(imp.module), layer_of(imp.target) if _ours(imp.target) else None
        if a is not None and b is not None and a != b:
            edges[LAYERS[a][0]].add(LAYERS[b][0])
    order = [name for name, _ in LAYERS]
    return [
        f"{name:<10} -> {', '.join(sorted(edges[name], key=order.index)) or '(nothing)'}"
        for name in reversed(order)
    ]


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    imports = scan(root)
    print("\n".join(layer_graph(imports)))
    bad = violations(imports)
    for line in bad:
        print(line)
    print(f"{len(bad)} violation(s)" if bad else "layering holds: no upward import, no cycle")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
