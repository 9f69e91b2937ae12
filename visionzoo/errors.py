"""Errors that are the user's to fix.

Every error here carries one line that names the file or key at fault and what to do. Entry points catch
:class:`VisionZooError`, print that line and exit non-zero; anything else is a bug and keeps its traceback.
"""


class VisionZooError(Exception):
    """A user-facing error: its message is one line naming the file/key and the fix."""


class UnknownModelError(VisionZooError, KeyError):
    """A model name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class WeightsError(VisionZooError):
    """A weights file or URL that cannot be used (missing, wrong hash, unsafe pickle, wrong model)."""


class DataError(VisionZooError):
    """A data folder or file that does not match the expected layout."""


class TrainingDivergedError(VisionZooError, FloatingPointError):
    """The training loss became NaN or infinite; the run stops and keeps its last good checkpoint."""


class ConfigError(VisionZooError):
    """A config value or override that cannot work (an argument a constructor does not take, a grid the model was
    not built for, weights given to a recipe that loads none)."""
