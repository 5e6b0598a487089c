"""The one exception type for expected failures (bad input, bad params, unreachable data)."""


class PipelineError(Exception):
    """An expected failure: the message alone tells the user what is wrong and what to do.

    Stage scripts print it as one line and exit non-zero, without a traceback.
    """
