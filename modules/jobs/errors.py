"""Exceptions a job raises, and the ones starting a job can answer with."""


class JobError(Exception):
    """A job ends with this message for the person (what went wrong, what was kept, what to do)."""


class DatabaseBusy(JobError):
    """The database stayed locked or busy past the retries; committed batches are kept (resumable)."""


class JobCancelled(Exception):
    """Raised inside a job at a checkpoint once cancellation was asked for."""


class JobLost(JobCancelled):
    """Raised inside a job whose record went to another runner (a takeover): it stops and writes nothing."""


class JobAlreadyRunning(Exception):
    def __init__(self, kind, job_id):
        super().__init__(f"a {kind} job is already running ({job_id})")
        self.kind = kind
        self.job_id = job_id


class JobNotFound(Exception):
    pass


class JobNotResumable(Exception):
    pass
