"""The job functions of rqapp.py, imported by RQ's workers (`rq worker --path compat/apps`)."""

import time

from rq import get_current_job
from rq.worker import SimpleWorker


class BoundedExitWorker(SimpleWorker):
    """RQ's SimpleWorker, but its pub/sub thread is stopped with a bound on exit.

    RQ 3.0's Worker.unsubscribe() sends UNSUBSCRIBE, then calls PubSubWorkerThread.stop(), and
    since redis-py 8.2 stop() waits for the thread to end. The thread sits in
    get_message(timeout=60) (RQ's sleep_time); if it reads the UNSUBSCRIBE reply before stop()
    clears its flag, it loops into get_message again, which, no longer subscribed, waits the
    whole 60 s for a subscription: a burst worker then takes a minute to exit (against
    redis-server as well). This stops the thread as RQ means to, with its 1 s join.
    """

    def unsubscribe(self):
        thread = self.pubsub_thread
        if thread is not None and "timeout" in thread.stop.__code__.co_varnames:
            stop = thread.stop
            thread.stop = lambda: stop(timeout=1)
        super().unsubscribe()


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
