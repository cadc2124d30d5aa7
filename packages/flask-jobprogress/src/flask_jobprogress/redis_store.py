"""RedisStore: snapshots in a Redis hash, changes on one pub/sub channel.

Each process keeps ONE subscriber connection (to one channel for every job) and fans each change
out to its own open streams through the in-process Fanout, so the number of Redis connections
follows the number of processes, never the number of browsers. A snapshot only moves forward:
an older version never overwrites a newer one (checked atomically in Redis).
"""
from __future__ import annotations

import json
import logging
import threading
import time

from .store import Fanout

log = logging.getLogger(__name__)
PREFIX = "jobprogress"  # the channel; snapshots live under "<prefix>:<job id>"
CHANNEL = PREFIX  # the default store's channel
TTL_SECONDS = 30 * 86400  # finished jobs' live snapshots expire; the job history stays in the database

# KEYS[1] = hash; ARGV = version, snapshot json, ttl, channel. Store and announce only if newer.
_PUBLISH = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '-1')
if tonumber(ARGV[1]) < current then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'snapshot', ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
redis.call('PUBLISH', ARGV[4], ARGV[2])
return 1
"""


MAX_CONNECTIONS = 8
POOL_WAIT_SECONDS = 10


class RedisStore:
    """Snapshots in Redis, shared by every process that uses the same URL and prefix.

    `prefix` names the pub/sub channel and starts every key ("<prefix>:<job id>"): two apps on one
    Redis keep apart by giving each its own. `client` is an existing `redis.Redis` to use.
    """

    def __init__(self, url, client=None, *, prefix=PREFIX):
        import redis

        self.url = url
        self.channel = prefix
        self._key = prefix + ":{}"
        if client is None:
            # A bounded pool: 2,000 streams connecting at once each read a snapshot, and an unbounded
            # pool would open a connection per concurrent read. With this one a process never holds
            # more than MAX_CONNECTIONS (the subscriber included); a read waits for a free one.
            pool = redis.BlockingConnectionPool.from_url(url, max_connections=MAX_CONNECTIONS, timeout=POOL_WAIT_SECONDS,
                                                         health_check_interval=30)
            client = redis.Redis(connection_pool=pool)
        self.redis = client
        self._publish = self.redis.register_script(_PUBLISH)
        self.fanout = Fanout()
        self._listener = None
        self._listener_lock = threading.Lock()
        self._stopped = False
        self.listening = threading.Event()  # set once the subscriber connection is subscribed

    def publish(self, snapshot):
        text = json.dumps(snapshot)
        self._publish(keys=[self._key.format(snapshot["id"])], args=[snapshot["version"], text, TTL_SECONDS, self.channel])
        self.fanout.deliver(snapshot)  # this process's streams need not wait for the round trip

    def get(self, job_id):
        text = self.redis.hget(self._key.format(job_id), "snapshot")
        return json.loads(text) if text else None

    def subscribe(self, job_id):
        sub = self.fanout.subscribe(job_id)
        self._ensure_listener()
        return sub

    def close(self):
        self._stopped = True

    def _ensure_listener(self):
        with self._listener_lock:
            if self._listener is None or not self._listener.is_alive():
                self.listening.clear()
                self._listener = threading.Thread(target=self._listen, name="progress-redis-listener", daemon=True)
                self._listener.start()

    def _listen(self):
        """One pub/sub connection per process; reconnects after a Redis outage."""
        while not self._stopped:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel)
                self.listening.set()
                while not self._stopped:
                    message = pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    try:
                        snapshot = json.loads(message["data"])
                    except (TypeError, ValueError):
                        continue
                    self.fanout.deliver(snapshot)
            except Exception:  # noqa: BLE001 - Redis went away: streams keep their last state; retry
                self.listening.clear()
                log.exception("progress subscriber lost its Redis connection; reconnecting")
                time.sleep(1.0)
            finally:
                try:
                    pubsub.close()
                except Exception:  # noqa: BLE001
                    pass
