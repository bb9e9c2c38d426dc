"""Errors that carry a user-facing message: the workflow prints them without a traceback."""


class PipelineError(Exception):
    """Base class for problems the user can fix (config, input data)."""


class ConfigError(PipelineError):
    """The config (or a file/column it names) is wrong; raised before any job runs."""


class DataError(PipelineError):
    """An input file or the data in it cannot be used as configured."""


class NotEstimable(PipelineError):
    """An analysis that the data cannot answer (an empty arm, no comparable patients, ...).

    Not a failure: the stage that finds it writes its outputs as a result that states the reason,
    every later stage of that analysis passes the reason on, and the other analyses go on.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
