"""Which stream-slot pool the settings give."""

from pydantic import SecretStr

from garrison.config.security_settings import LimitSettings
from garrison.config.settings import RedisSettings
from garrison.limits.factory import open_stream_slots
from garrison.limits.redis_streams import RedisStreamSlots
from garrison.limits.streams import MemoryStreamSlots


async def test_the_settings_choose_none_per_process_or_redis() -> None:
    no_redis, with_redis = RedisSettings(), RedisSettings(url=SecretStr("redis://127.0.0.1:1/0"))
    assert open_stream_slots(LimitSettings(), with_redis) is None
    assert isinstance(
        open_stream_slots(LimitSettings(max_streams_per_key=2), no_redis), MemoryStreamSlots
    )
    shared = open_stream_slots(LimitSettings(max_streams_per_key=2), with_redis)
    assert isinstance(shared, RedisStreamSlots) and shared.max_per_key == 2
    await shared.close()
