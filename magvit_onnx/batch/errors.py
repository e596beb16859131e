"""The two errors of a batch run: one job's (JobError) and the whole run's (RunError)."""


class JobError(ValueError):
    """One job cannot run; the message names the problem and what is valid (not the job)."""


class RunError(Exception):
    """The run as a whole cannot go on; `exit_code` 2 for usage errors, 1 otherwise."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code
