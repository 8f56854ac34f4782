"""Host-side analysis: statistics, compare, evaluate, render."""
