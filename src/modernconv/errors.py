"""Errors a user can cause. The CLI prints their message as one line and exits non-zero."""


class UserError(Exception):
    """A mistake in what the user asked for (bad name, path, file, option or input)."""


class ModelNotFoundError(UserError, KeyError):
    """The requested model name is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class CheckpointError(UserError):
    """A checkpoint file is unreadable, corrupt, or does not fit the model."""


class InputShapeError(UserError, ValueError):
    """An input tensor's channels or spatial size do not fit the model."""


class ConfigError(UserError, ValueError):
    """An architecture or configuration option has an unsupported value or combination of values."""


class TrainingDivergedError(UserError):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


class DataError(UserError, ValueError):
    """A data set is missing, laid out wrongly, or holds a file that cannot be read."""


class UnreadableFileError(DataError):
    """One data file cannot be read or holds nothing usable. ``reason`` says why; the message adds the remedy of a
    training run (skip such files), which ``predict`` leaves out (it reports each file and goes on)."""

    REMEDY = "fix or remove it, or enable skip_bad_images (--skip-bad-images)"

    def __init__(self, reason: str) -> None:
        super().__init__(f"{reason}; {self.REMEDY}")
        self.reason = reason


class StorageError(UserError):
    """A run could not write to its folder (full disk, read-only folder); what was saved before is kept."""


class WorkerLostError(UserError):
    """A data-loading worker process died (the kernel kills one that runs out of memory); what was saved is
    kept."""


class RunStopped(Exception):
    """A run stopped on a signal (SIGTERM, SIGINT) after saving a resumable checkpoint: where it stopped, and
    how to continue (``continued``: another command can say it its way, e.g. the roadmap)."""

    def __init__(self, signum: int, where: str, how_to_continue: str) -> None:
        super().__init__(f"{where}; saved: {how_to_continue}")
        self.signum, self.where = signum, where

    def continued(self, how_to_continue: str) -> "RunStopped":
        return RunStopped(self.signum, self.where, how_to_continue)
