"""gunicorn settings: gevent workers, so one worker holds many open event streams."""
import os
import re
import sys
from pathlib import Path

from gunicorn.glogging import Logger

sys.path.insert(0, str(Path(__file__).resolve().parent))
import config as sillon_config  # noqa: E402 - "config" is a gunicorn setting name

bind = os.environ.get("BIND", "127.0.0.1:8000")
worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "2000"))
# Event streams stay open for the length of a job; gevent workers beat independently of requests,
# so this only bounds a worker that stopped yielding altogether.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 10
keepalive = 5
accesslog = os.environ.get("ACCESS_LOG", "-")
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
# gunicorn's control socket lives at one fixed path per user; several servers on one machine
# (tests, two instances) would fight over it, and the app does not use it.
control_socket_disable = True

# Query parameters that carry a credential: ListenBrainz clients may send the API token as `?token=`.
_SECRET_PARAMETER = re.compile(r"(?i)((?:^|[?&])(?:token|api_key|api_secret|password|secret|key)=)[^&\s]*")


class RedactingLogger(Logger):
    """gunicorn's logger, with credentials in query strings and the Authorization header masked."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for name in ("r", "q"):
            if atoms.get(name):
                atoms[name] = _SECRET_PARAMETER.sub(r"\1[redacted]", atoms[name])
        for name in list(atoms):
            if name.lower() in ("{authorization}i", "{cookie}i", "{set-cookie}o"):
                atoms[name] = "[redacted]"
        return atoms


logger_class = RedactingLogger


def post_worker_init(worker):
    """Background duties of a server process: continue the jobs of runners that died, on a timer of
    its own; bring the live tracker back if it should run."""
    from modules.jobs.live_tracker import start_supervisor
    from modules.jobs.reaper import start_reaper

    start_reaper(worker.wsgi)
    start_supervisor(worker.wsgi)
    _end_streams_on_sigterm(worker)


def _end_streams_on_sigterm(worker):
    """On SIGTERM (a stop or a restart), end the open event streams at once: gunicorn otherwise waits
    graceful_timeout for them, since a stream between two heartbeats does not know it should end.
    Their pages reconnect to the server that answers next. The other requests finish as before."""
    import signal

    import gevent
    from flask_jobprogress import end_streams

    stop = worker.handle_exit

    def handle_exit(sig, frame):
        stop(sig, frame)
        gevent.spawn(end_streams)  # out of the signal handler, as gunicorn does for SIGQUIT

    worker.handle_exit = handle_exit
    signal.signal(signal.SIGTERM, handle_exit)
    signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn leaves it: active requests' system calls go on


def on_starting(server):
    """Without APP_PASSWORD, refuse to listen anywhere but this machine (a clear message, exit 1)."""
    problem = sillon_config.bind_problem(server.cfg.bind, sillon_config.load_settings())
    if problem:
        server.log.error(problem)
        sys.exit(1)
