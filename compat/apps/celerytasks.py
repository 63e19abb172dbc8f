"""The Celery app of celeryapp.py: the Redis broker and the Redis result backend, both at the
node in $KURA_BROKER (each worker and the client name their own node). Imported by the
workers (`celery -A celerytasks worker`, run in compat/apps) and by celeryapp.py."""

import os
import time

import redis
from celery import Celery

URL = os.environ.get("KURA_BROKER", "redis://127.0.0.1:6379/0")
app = Celery("celerytasks", broker=URL, backend=URL)
app.conf.update(
    # Short, so that a killed worker's unacknowledged task is re-delivered within seconds:
    # kombu restores an unacked message older than visibility_timeout on each sweep.
    broker_transport_options={
        "visibility_timeout": 2,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    },
    result_expires=600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(bind=True)
def add(self, x, y):
    """x + y, and which worker ran it."""
    return x + y, self.request.hostname


@app.task(acks_late=True, bind=True)
def stall_first(self, x):
    """Hangs on its first delivery (its worker is killed); returns x on a re-delivery."""
    attempts = redis.Redis.from_url(URL).incr(f"attempts:{self.request.id}")
    if attempts == 1:
        time.sleep(3600)
    return x
