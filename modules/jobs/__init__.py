"""Jobs: start, run, cancel, resume; one of a kind at a time across every process."""
from .errors import JobAlreadyRunning, JobCancelled, JobError, JobNotFound, JobNotResumable
from .kinds import KINDS, get_kind
from .lifecycle import cancel_job, job_snapshot, reap_stale_jobs, resume_job, start_job
from .reaper import reap, start_reaper
from .runner import make_runner

__all__ = ["start_job", "cancel_job", "resume_job", "reap_stale_jobs", "reap", "start_reaper", "job_snapshot", "make_runner",
           "KINDS", "get_kind", "JobAlreadyRunning", "JobCancelled", "JobError", "JobNotFound",
           "JobNotResumable"]
