"""Errors that carry a user-facing message: the workflow prints them without a traceback."""


class PipelineError(Exception):
    """Base class for problems the user can fix (config, input data)."""


class ConfigError(PipelineError):
    """The config (or a file/column it names) is wrong; raised before any job runs."""


class DataError(PipelineError):
    """An input file or the data in it cannot be used as configured."""
