"""The Redis broker: scale-out mode, where API and worker processes share one Redis.

Key layout (every key and channel under the deployment's `key_prefix`):

- `{prefix}:run:{run_id}:log`: Stream of the run's events, ending with the end record
  (field `x`) that carries the final output; bounded by MAXLEN ~, expires `retention`
  after the end (a day after the last event while the run is unfinished).
- `{prefix}:thread:{thread_id}:log`: Stream of every run's events on the thread plus
  thread events; bounded, expires `retention` after its last write.
- `{prefix}:signal:work` and `{prefix}:signal:cancel`: pub/sub channels for wake-ups and
  cancel signals (channels ignore the DB number, so the prefix is what isolates them).
- `{log key}:changes`: pub/sub channel announcing each append to that log; followers
  read a log when it changes instead of each blocking a connection on it.
- `{prefix}:run:{run_id}:ended`: pub/sub channel carrying a run's final output when its
  log ends, so output waiters are not woken by every event of the run.
"""

from garrison.broker.redis._broker import RedisBroker

__all__ = ["RedisBroker"]
