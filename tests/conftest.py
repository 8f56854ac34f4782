import atexit
import os
import shutil
import sys
import tempfile

import jax
import pytest
from hypothesis import settings

# tests/ holds helper modules (minigrid_helpers, fake_env) imported by the test files
sys.path.insert(0, os.path.dirname(__file__))

# Property-based tests draw the same examples on every run (CI and local runs agree). To explore
# new examples locally: pytest --hypothesis-profile=explore
settings.register_profile("deterministic", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile("deterministic")

# One persistent XLA compilation cache per test session, shared by the xdist workers and every
# subprocess a test starts (the CLI, the run loop's children, the study runner): the many tiny
# runs compile the same programs (a preset's chunk, its init) in many processes, and a program
# compiled once is then loaded (measured: a 4-env ppo-rnd-5x5 `curio-jax train` 58 s -> 22 s).
# The process that creates the directory (pytest's controller, or a run without xdist) puts it
# in the environment, which the workers and subprocesses inherit, and removes it at exit; a
# fresh directory per session, so nothing is reused across sessions or by CI. The same
# compiled program gives the same bits, so no result depends on it.
# CURIO_JAX_TEST_XLA_CACHE=off runs without it.
_OWN = "CURIO_JAX_TEST_XLA_CACHE" not in os.environ

SLOW_IDS = {
    # fixture-parametrised cases that a decorator cannot reach; each has a quick sibling
    "tests/core/test_program_contract.py::test_vmapped_seeds_equal_per_seed_loop[ppo-rnd]",
    "tests/core/test_program_contract.py::test_chunked_equals_one_shot[ppo-rnd]",
    "tests/core/test_program_contract.py::test_vmapped_seeds_equal_per_seed_loop[a2c]",
}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid in SLOW_IDS:
            item.add_marker(pytest.mark.slow)


if _OWN:
    os.environ["CURIO_JAX_TEST_XLA_CACHE"] = tempfile.mkdtemp(prefix="curio_jax_test_xla_cache_")
    atexit.register(shutil.rmtree, os.environ["CURIO_JAX_TEST_XLA_CACHE"], ignore_errors=True)
_CACHE = os.environ["CURIO_JAX_TEST_XLA_CACHE"]
if _CACHE != "off":
    os.environ.update(
        JAX_COMPILATION_CACHE_DIR=_CACHE,
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
    jax.config.update("jax_compilation_cache_dir", _CACHE)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
