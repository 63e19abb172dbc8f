"""The job functions of rqapp.py, imported by RQ's workers (`rq worker --path compat/apps`)."""

import time

from rq import get_current_job


def square(x):
    """x squared, and which worker ran it."""
    return x * x, get_current_job().worker_name


def hang():
    """A task that never ends by itself: the test kills its worker while it runs."""
    time.sleep(3600)


def hang_first_attempt(x):
    """Hangs on its first attempt (its worker is killed), returns x on the next."""
    job = get_current_job()
    if job.connection.incr(f"attempts:{job.id}") == 1:
        time.sleep(3600)
    return x
