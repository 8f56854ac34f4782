"""Studies: a spec (arms x seeds, sliced into programs), slices run anywhere, their records
kept in the repository, one report (docs/studies.md)."""
