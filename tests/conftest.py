import os
import sys

from hypothesis import settings

# tests/ holds helper modules (minigrid_helpers, fake_env) imported by the test files
sys.path.insert(0, os.path.dirname(__file__))

# Property-based tests draw the same examples on every run (CI and local runs agree). To explore
# new examples locally: pytest --hypothesis-profile=explore
settings.register_profile("deterministic", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile("deterministic")
