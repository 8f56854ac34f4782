"""The host run loop: run directory, checkpoints, loggers, progress, resume, sweeps."""
