"""The errors of the host run loop, by what the user can do about them."""


class RunError(Exception):
    """A request that cannot be carried out as asked (existing directory, config mismatch, ...);
    nothing was changed. The CLI reports it as one line with exit status 2."""


class RunFailure(Exception):
    """The run could not go on (unreadable checkpoints, non-finite values); exit status 1."""


class NonFiniteError(RunFailure):
    """A loss term or parameter became NaN/inf; the last good checkpoint is kept."""
