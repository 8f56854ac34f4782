"""The package's layering (curio_jax.tools.layers): imports point down, no cycles, and the check
itself catches each kind of violation on a small synthetic package."""

from __future__ import annotations

from pathlib import Path

import curio_jax
from curio_jax.tools import layers

ROOT = Path(curio_jax.__file__).parent


def test_the_package_has_no_upward_import_and_no_cycle():
    assert layers.violations(layers.scan(ROOT)) == []


def test_the_pure_core_imports_only_envs_and_config():
    graph = dict(line.split(" -> ") for line in layers.layer_graph(layers.scan(ROOT)))
    assert {x.strip() for x in graph["core      "].split(",")} <= {"envs", "config"}
    assert graph["config    "].strip() == "(nothing)" and graph["envs      "].strip() == "(nothing)"


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "curio_jax"
    for rel, text in {"__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(root).parents:
            (root / parent / "__init__.py").touch()
        path.write_text(text)
    return root


def _violations(tmp_path: Path, files: dict[str, str]) -> list[str]:
    return layers.violations(layers.scan(_package(tmp_path, files)))


def test_an_upward_import_is_reported(tmp_path):
    bad = _violations(
        tmp_path, {"core/a.py": "from curio_jax.run import loop\n", "run/loop.py": ""}
    )
    assert len(bad) == 1 and "curio_jax.core.a:1 imports curio_jax.run.loop (run)" in bad[0]


def test_a_cycle_inside_one_layer_is_reported(tmp_path):
    bad = _violations(
        tmp_path,
        {"run/a.py": "from curio_jax.run import b\n", "run/b.py": "import curio_jax.run.a\n"},
    )
    assert bad == ["import cycle: curio_jax.run.a -> curio_jax.run.b -> curio_jax.run.a"]


def test_a_cycle_hidden_in_a_function_is_reported(tmp_path):
    bad = _violations(
        tmp_path,
        {
            "tools/a.py": "from curio_jax.tools import b\n",
            "tools/b.py": "def f():\n    from curio_jax.tools import a\n",
        },
    )
    assert any("inside a function (only cli may)" in b for b in bad)
    assert any(b.startswith("import cycle:") for b in bad)


def test_function_local_imports_only_for_optional_dependencies(tmp_path):
    files = {
        "analysis/a.py": "def f():\n    import numpy\n    import matplotlib\n",
        "cli/c.py": "def g():\n    from curio_jax.analysis import a\n",
    }
    bad = _violations(tmp_path, files)
    assert bad == [
        "curio_jax.analysis.a:2 imports numpy inside a function (not an optional dependency)"
    ]


def test_torch_at_module_level_only_in_the_reference(tmp_path):
    files = {
        "reference/agents.py": "import torch\n",
        "analysis/e.py": "import gymnasium\n",
        "core/n.py": "def f():\n    import torch\n",
    }
    bad = _violations(tmp_path, files)
    assert sorted(bad) == [
        "curio_jax.analysis.e:1 imports gymnasium at module level",
        "curio_jax.core.n:2: the pure layer core imports torch",
    ]
