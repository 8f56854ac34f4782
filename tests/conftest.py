import atexit
import os
import shutil
import sys
import tempfile

import jax
from hypothesis import settings

# tests/ holds helper modules (minigrid_helpers, fake_env) imported by the test files
sys.path.insert(0, os.path.dirname(__file__))

# Property-based tests draw the same examples on every run (CI and local runs agree). To explore
# new examples locally: pytest --hypothesis-profile=explore
settings.register_profile("deterministic", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile("deterministic")

# One persistent XLA compilation cache per test session: the many tiny runs of the CLI and run
# loop tests compile the same programs (the seed's chunk, the init), and each run builds its own
# SeedProgram. A fresh directory per session, so nothing is reused across sessions or by CI.
_CACHE = tempfile.mkdtemp(prefix="curio_jax_test_xla_cache_")
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
