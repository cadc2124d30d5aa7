"""The Flask extension: a store per app, trackers that publish to it, and the job endpoints.

    progress = JobProgress(app)            # or progress.init_app(app) in an app factory

registers, under `url_prefix` (default "/jobs"):
- GET  <prefix>/<job_id>         the snapshot as JSON (for polling clients), 404 if unknown;
- GET  <prefix>/<job_id>/events  the Server-Sent Events stream (snapshot on connect, Last-Event-ID);
- POST <prefix>/<job_id>/cancel  asks the job to stop (202), 404 if unknown;
- GET  <prefix>/static/jobprogress.js  the browser client (`url_for("jobprogress.static", ...)`;
  `static_url_path` moves it elsewhere).

`authorize(job_id, action)` (action: "snapshot", "events" or "cancel") is called before each of
them in the request's context; a false answer gives 403. It may also abort() with its own answer.
"""
from __future__ import annotations

import logging
import threading
import uuid

from flask import Blueprint, Response, current_app, jsonify, request

from .sse import HEADERS, event_stream, parse_last_event_id
from .store import MemoryStore
from .tracker import ProgressTracker

log = logging.getLogger(__name__)
EXTENSION_KEY = "jobprogress"
ROUTES = ("snapshot", "events", "cancel")


class Cancelled(Exception):
    """Raised by a job's code (see `ProgressTracker.cancel_requested`) to stop at a safe point."""


def make_store(kind, *, database_url=None, engine=None, redis_url=None, redis_prefix=None, **options):
    """The store named by configuration: 'memory', 'database' or 'redis'."""
    if kind == "memory":
        return MemoryStore()
    if kind == "database":
        from .database_store import DatabaseStore  # SQLAlchemy is only needed when chosen

        if engine is None:
            if not database_url:
                raise ValueError("the database progress store needs an engine or a database URL")
            import sqlalchemy as sa

            from .database_store import metadata

            engine = sa.create_engine(database_url, pool_pre_ping=True)
            metadata.create_all(engine)
        return DatabaseStore(engine, **options)
    if kind == "redis":
        from .redis_store import PREFIX, RedisStore  # redis is only needed when chosen

        if not redis_url:
            raise ValueError("the redis progress store needs a Redis URL")
        return RedisStore(redis_url, prefix=redis_prefix or PREFIX)
    raise ValueError(f"unknown progress store {kind!r}: use 'memory', 'database' or 'redis'")


class _State:
    """What the extension keeps per app (app.extensions["jobprogress"])."""

    def __init__(self, store, options):
        self.store = store
        self.options = options
        self.trackers = {}  # job_id -> the live trackers of this process, for cancel
        self.lock = threading.Lock()
        self.open_streams = 0


class JobProgress:
    """Live progress for an app's long jobs (see the module's docstring for the endpoints).

    Options (keyword arguments of the constructor or `init_app`, else app.config):
    - store: a store object; else JOBPROGRESS_STORE ('memory' by default) with
      JOBPROGRESS_DATABASE_URL or JOBPROGRESS_REDIS_URL (and JOBPROGRESS_REDIS_PREFIX);
    - url_prefix (JOBPROGRESS_URL_PREFIX, "/jobs"); routes: which of ROUTES to register;
      static_url_path (url_prefix + "/static"): where the browser client is served;
    - authorize(job_id, action) -> bool; snapshot(job_id) -> dict or None, to read snapshots from
      somewhere else than the store, or to add what the app knows to them (a stream asks it on
      connect and every refresh_seconds while idle, and sends its answer when it is newer than
      what the client has, or of the same version when the keys it adds to the store's snapshot,
      its notes, changed or went away);
      cancel(job_id) -> bool, to cancel jobs this process does not run;
    - heartbeat (JOBPROGRESS_HEARTBEAT_SECONDS, 15) and retry_ms (2000) of the stream;
      refresh_seconds (JOBPROGRESS_REFRESH_SECONDS, the heartbeat): how often an idle stream asks
      the snapshot hook (no more often than the heartbeat when unset).
    """

    def __init__(self, app=None, **options):
        self._options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app, **options):
        options = {**self._options, **options}
        store = options.pop("store", None)
        if store is None:
            store = make_store(app.config.get("JOBPROGRESS_STORE", "memory"),
                               database_url=app.config.get("JOBPROGRESS_DATABASE_URL"),
                               redis_url=app.config.get("JOBPROGRESS_REDIS_URL"),
                               redis_prefix=app.config.get("JOBPROGRESS_REDIS_PREFIX"))
        options.setdefault("url_prefix", app.config.get("JOBPROGRESS_URL_PREFIX", "/jobs"))
        options.setdefault("heartbeat", app.config.get("JOBPROGRESS_HEARTBEAT_SECONDS", 15.0))
        options.setdefault("retry_ms", 2000)
        options.setdefault("refresh_seconds", app.config.get("JOBPROGRESS_REFRESH_SECONDS"))
        options["url_prefix"] = options["url_prefix"].rstrip("/")
        options.setdefault("static_url_path", options["url_prefix"] + "/static")
        options.setdefault("routes", ROUTES)
        unknown = set(options["routes"]) - set(ROUTES)
        if unknown:
            raise ValueError(f"unknown routes {sorted(unknown)}: choose among {ROUTES}")
        app.extensions[EXTENSION_KEY] = _State(store, options)
        app.register_blueprint(_blueprint(options["url_prefix"], options["routes"], options["static_url_path"]))

    # ------------------------------------------------------------------ jobs
    @staticmethod
    def state(app=None):
        return (app or current_app).extensions[EXTENSION_KEY]

    def store_of(self, app=None):
        """The app's store (the current app's by default)."""
        return self.state(app).store

    @property
    def store(self):
        return self.state().store

    def tracker(self, kind, steps=(), job_id=None, *, app=None, **options):
        """A new tracker publishing to the app's store, its queued state published at once.

        Its id (a random hex string unless given) is what the endpoints and the client take.
        """
        state = self.state(app)
        tracker = ProgressTracker(job_id or uuid.uuid4().hex, kind, steps, state.store.publish, **options)
        with state.lock:
            state.trackers[tracker.id] = tracker
        tracker.flush()
        return tracker

    def run_in_thread(self, tracker, work, *args, app=None, **kwargs):
        """Run `work(tracker, *args, **kwargs)` in a daemon thread inside an app context.

        The tracker is started first; when `work` returns, the job completes with its return value
        as result (unless `work` ended the job itself); `Cancelled` ends it as cancelled and any
        other exception as failed, with the exception's text as message.
        """
        app = (app or current_app)._get_current_object()
        state = self.state(app)

        def run():
            with app.app_context():
                tracker.start()
                try:
                    result = work(tracker, *args, **kwargs)
                except Cancelled as exc:
                    tracker.cancelled(str(exc) or "Cancelled")
                except Exception as exc:  # noqa: BLE001 - the job's failure is shown, not raised
                    log.exception("job %s failed", tracker.id)
                    tracker.fail(str(exc) or type(exc).__name__)
                else:
                    if not tracker.is_finished:
                        tracker.complete(result=result)
                finally:
                    with state.lock:
                        state.trackers.pop(tracker.id, None)

        thread = threading.Thread(target=run, name=f"job-{tracker.id}", daemon=True)
        thread.start()
        return thread

    def open_streams(self, app=None):
        """How many event streams this process is serving now."""
        return self.state(app).open_streams


def _answer(job_id, action):
    state = JobProgress.state()
    authorize = state.options.get("authorize")
    if authorize is not None and not authorize(job_id, action):
        return state, (jsonify({"error": "forbidden"}), 403)
    return state, None


def _snapshot(state, job_id):
    hook = state.options.get("snapshot")
    return hook(job_id) if hook is not None else state.store.get(job_id)


def _blueprint(url_prefix, routes, static_url_path):
    # No url_prefix on the blueprint: its static route is placed on its own (static_url_path).
    bp = Blueprint(EXTENSION_KEY, __name__, static_folder="static", static_url_path=static_url_path)

    def snapshot(job_id):
        state, denied = _answer(job_id, "snapshot")
        if denied:
            return denied
        snap = _snapshot(state, job_id)
        if snap is None:
            return jsonify({"error": f"no job {job_id}"}), 404
        return jsonify(snap)

    def events(job_id):
        state, denied = _answer(job_id, "events")
        if denied:
            return denied
        if _snapshot(state, job_id) is None:
            return jsonify({"error": f"no job {job_id}"}), 404
        app = current_app._get_current_object()
        last_id = parse_last_event_id(request.headers.get("Last-Event-ID") or request.args.get("last_event_id"))
        refresh = None
        if state.options.get("snapshot") is not None:
            def refresh(jid):
                with app.app_context():
                    return _snapshot(state, jid)

        stream = event_stream(state.store, job_id, last_id, heartbeat=state.options["heartbeat"],
                              retry_ms=state.options["retry_ms"], refresh=refresh,
                              refresh_seconds=state.options["refresh_seconds"])
        return Response(_counted(state, stream), mimetype="text/event-stream", headers=HEADERS)

    def cancel(job_id):
        state, denied = _answer(job_id, "cancel")
        if denied:
            return denied
        hook = state.options.get("cancel")
        if hook is not None:
            found = hook(job_id)
        else:
            with state.lock:
                tracker = state.trackers.get(job_id)
            found = tracker is not None
            if found:
                tracker.request_cancel()
        if not found:
            return jsonify({"error": f"no running job {job_id}"}), 404
        return jsonify({"id": job_id, "cancel_requested": True}), 202

    if "snapshot" in routes:
        bp.add_url_rule(url_prefix + "/<job_id>", "snapshot", snapshot, methods=["GET"])
    if "events" in routes:
        bp.add_url_rule(url_prefix + "/<job_id>/events", "events", events, methods=["GET"])
    if "cancel" in routes:
        bp.add_url_rule(url_prefix + "/<job_id>/cancel", "cancel", cancel, methods=["POST"])
    return bp


def _counted(state, stream):
    """Count the stream while it is served; a client that goes away closes it (GeneratorExit)."""
    with state.lock:
        state.open_streams += 1
    try:
        yield from stream
    finally:
        with state.lock:
            state.open_streams -= 1
