"""Crons: runs created on a schedule, on one thread or on a fresh thread per fire, and the
scheduler that fires them."""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from garrison.domain.access import AccessFilter
from garrison.domain.clock import utcnow
from garrison.domain.cron import next_fire, parse_timezone, validate_schedule
from garrison.domain.errors import (
    BadRequestError,
    GarrisonError,
    InvalidArgumentError,
    NotFoundError,
)
from garrison.domain.ids import parse_uuid, uuid7
from garrison.domain.principal import Principal
from garrison.schemas import crons as wire
from garrison.schemas.runs import RunCreate
from garrison.services.assistants import ASSISTANT_NOT_FOUND, AssistantService
from garrison.services.authorization import AllowAll, Authorizer
from garrison.services.thread_access import admits
from garrison.services.webhooks import WebhookPolicy
from garrison.storage import models
from garrison.storage.models import UNSET, CronQuery, Json, Page, SortOrder
from garrison.storage.ports import CronRepository, Storage

logger = logging.getLogger(__name__)

# The run-creation fields a cron stores in its payload and replays on every fire.
_PAYLOAD_FIELDS = (
    "input",
    "metadata",
    "config",
    "context",
    "checkpoint_during",
    "interrupt_before",
    "interrupt_after",
    "webhook",
    "multitask_strategy",
    "stream_mode",
    "stream_subgraphs",
    "stream_resumable",
    "durability",
)
# What PATCH may change in the payload (metadata is merged separately).
_PATCHABLE_PAYLOAD = (
    "input",
    "config",
    "context",
    "webhook",
    "interrupt_before",
    "interrupt_after",
    "stream_mode",
    "stream_subgraphs",
    "stream_resumable",
    "durability",
)
_PATCH_FIELDS = frozenset(wire.CronPatch.model_fields)


class CronService:
    def __init__(
        self,
        storage: Storage,
        assistants: AssistantService,
        webhooks: WebhookPolicy,
        *,
        authorizer: Authorizer | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._storage = storage
        self._assistants = assistants
        self._webhooks = webhooks
        self._authorizer = authorizer or AllowAll()
        self._clock = clock

    async def _decide(
        self, principal: Principal, action: str, value: dict[str, Any]
    ) -> AccessFilter | None:
        return await self._authorizer.authorize(principal, "crons", action, value)

    async def create(
        self, principal: Principal, thread_id: str | None, body: wire.CronCreate
    ) -> models.Cron:
        """A cron on `thread_id`, or a stateless one (a new thread per fire) when None."""
        schedule = validate_schedule(body.schedule)
        timezone = body.timezone or None
        parse_timezone(timezone)
        if thread_id is not None:
            thread_id = parse_uuid(thread_id, "thread_id")
        assistant = await self._resolve_assistant(principal, body.assistant_id)
        if body.webhook:
            await self._check_webhook(body.webhook)
        payload: Json = {"assistant_id": assistant.assistant_id, **_dump_fields(body)}
        cron_id = uuid7()
        request: Json = {
            "payload": payload,
            "schedule": schedule,
            "cron_id": cron_id,
            "thread_id": thread_id,
            "user_id": principal.identity,
            "end_time": body.end_time,
            "metadata": dict(body.metadata or {}),
        }
        await self._decide(principal, "create", request)
        payload = request["payload"]
        _check_config(payload)
        new = models.NewCron(
            cron_id=cron_id,
            assistant_id=assistant.assistant_id,
            thread_id=thread_id,
            schedule=schedule,
            timezone=timezone,
            payload=payload,
            metadata=dict(request["metadata"] or {}),
            end_time=_aware(body.end_time),
            next_run_date=next_fire(schedule, timezone, self._clock()),
            enabled=body.enabled,
            on_run_completed=body.on_run_completed,
            user_id=principal.identity,
        )
        return await self._storage.crons.create(principal.tenant_id, principal.identity, new)

    async def get(self, principal: Principal, cron_id: str, action: str = "read") -> models.Cron:
        """The cron, if the caller may `action` it (else NotFoundError)."""
        cron_id = parse_uuid(cron_id, "cron_id")
        access = await self._decide(principal, action, {"cron_id": cron_id})
        cron = await self._storage.crons.get(principal.tenant_id, cron_id)
        if cron is None or not admits(access, cron):
            raise NotFoundError(f"Cron {cron_id} not found")
        return cron

    async def update(self, principal: Principal, cron_id: str, body: wire.CronPatch) -> models.Cron:
        # model_fields_set tells "end_time": null (clear it) from an omitted end_time (keep).
        given = body.model_fields_set & _PATCH_FIELDS
        if not given:
            raise BadRequestError("Nothing to update: the request body sets no cron field")
        current = await self.get(principal, cron_id, "update")
        schedule = validate_schedule(body.schedule) if body.schedule is not None else None
        timezone = body.timezone or None
        if timezone is not None:
            parse_timezone(timezone)
        if body.webhook:
            await self._check_webhook(body.webhook)

        payload_patch = {
            key: value
            for key, value in _dump_fields(body, keep_none=True).items()
            if key in given and key in _PATCHABLE_PAYLOAD
        }
        if body.metadata is not None:
            # The payload's metadata stays in step with the cron's, both merged.
            payload_patch["metadata"] = {**(current.payload.get("metadata") or {}), **body.metadata}
        _check_config({**current.payload, **payload_patch})

        enabled = body.enabled if body.enabled is not None else current.enabled
        # A new schedule, or a paused cron resuming, starts from now: no backlog fires.
        reschedule = enabled and (
            schedule is not None
            or timezone is not None
            or not current.enabled
            or current.next_run_date is None
        )
        next_run_date = (
            next_fire(schedule or current.schedule, timezone or current.timezone, self._clock())
            if reschedule
            else None
        )
        patch = models.CronPatch(
            schedule=schedule,
            timezone=timezone,
            payload=payload_patch or None,
            metadata=body.metadata,
            end_time=_aware(body.end_time) if "end_time" in given else UNSET,
            next_run_date=next_run_date,
            enabled=body.enabled,
            on_run_completed=body.on_run_completed,
        )
        return await self._storage.crons.update(principal.tenant_id, current.cron_id, patch)

    async def delete(self, principal: Principal, cron_id: str) -> None:
        cron_id = (await self.get(principal, cron_id, "delete")).cron_id
        if not await self._storage.crons.delete(principal.tenant_id, cron_id):
            raise NotFoundError(f"Cron {cron_id} not found")

    async def search(
        self, principal: Principal, body: wire.CronSearch
    ) -> tuple[list[models.Cron], bool]:
        request: Json = {
            "assistant_id": _optional_uuid(body.assistant_id, "assistant_id"),
            "thread_id": _optional_uuid(body.thread_id, "thread_id"),
            "metadata": body.metadata,
            "limit": body.limit,
            "offset": body.offset,
        }
        access = await self._decide(principal, "search", request)
        query = CronQuery(
            assistant_id=request["assistant_id"],
            thread_id=request["thread_id"],
            enabled=body.enabled,
            metadata=request["metadata"],
            sort_by=body.sort_by or "created_at",
            sort_order=SortOrder(body.sort_order or "desc"),
            page=Page(body.limit, body.offset),
            access=access,
        )
        return await self._storage.crons.search(principal.tenant_id, query)

    async def count(self, principal: Principal, body: wire.CronCount) -> int:
        request: Json = {
            "assistant_id": _optional_uuid(body.assistant_id, "assistant_id"),
            "thread_id": _optional_uuid(body.thread_id, "thread_id"),
            "metadata": body.metadata,
        }
        access = await self._decide(principal, "search", request)
        query = CronQuery(
            assistant_id=request["assistant_id"],
            thread_id=request["thread_id"],
            metadata=request["metadata"],
            access=access,
        )
        return await self._storage.crons.count(principal.tenant_id, query)

    async def _resolve_assistant(self, principal: Principal, assistant_id: str) -> models.Assistant:
        try:
            return await self._assistants.resolve(principal, assistant_id, for_run=True)
        except InvalidArgumentError:
            # Runs answer 422 for a name that is neither a UUID nor a graph; crons answer 404.
            raise NotFoundError(ASSISTANT_NOT_FOUND) from None

    async def _check_webhook(self, url: str) -> None:
        if not self._webhooks.enabled:
            raise BadRequestError("Webhooks are disabled on this server")
        await self._webhooks.validate(url)


class RunCreator(Protocol):
    """How the scheduler starts a run (RunService.create)."""

    async def create(
        self,
        principal: Principal,
        thread_id: str | None,
        body: RunCreate,
        *,
        server_configurable: Mapping[str, Any] | None = None,
        extra_metadata: Json | None = None,
    ) -> models.Run: ...


class CronScheduler:
    """Every `tick_seconds`, starts one run for each due cron and moves it to its next tick.

    Each tick is claimed with a conditional update before its run is created, so a tick
    fires at most once however many schedulers share the database.
    """

    def __init__(
        self,
        crons: CronRepository,
        runs: RunCreator,
        *,
        tick_seconds: float,
        batch_size: int = 100,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._crons = crons
        self._runs = runs
        self._tick_seconds = tick_seconds
        self._batch_size = batch_size
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="cron-scheduler")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def run(self) -> None:
        while True:
            try:
                await self.fire_due(self._clock())
            except Exception:
                logger.exception("cron tick failed; retrying at the next tick")
            await asyncio.sleep(self._tick_seconds)

    async def fire_due(self, now: datetime) -> int:
        """Fire every cron due at `now`; returns how many runs were started."""
        fired = 0
        for cron in await self._crons.due(now, self._batch_size):
            if await self._fire(cron, now):
                fired += 1
        return fired

    async def _fire(self, cron: models.Cron, now: datetime) -> bool:
        expected = cron.next_run_date
        if expected is None:
            return False
        if cron.end_time is not None and expected > cron.end_time:
            await self._crons.advance(cron.cron_id, expected, None)  # its schedule is over
            return False
        # From max(now, expected): ticks missed while no scheduler ran fire once, not each.
        following = _following(cron, max(now, expected))
        if following is not None and cron.end_time is not None and following > cron.end_time:
            following = None
        if not await self._crons.advance(cron.cron_id, expected, following):
            return False  # another scheduler won this tick, or the cron changed meanwhile
        try:
            await self._start_run(cron)
        except GarrisonError as exc:
            # e.g. 409 from a busy thread under multitask "reject", a deleted assistant.
            logger.warning("cron %s could not start its run: %s", cron.cron_id, exc.detail)
            return False
        except Exception:
            logger.exception("cron %s could not start its run", cron.cron_id)
            return False
        return True

    async def _start_run(self, cron: models.Cron) -> models.Run:
        payload = {k: v for k, v in cron.payload.items() if k in _PAYLOAD_FIELDS}
        metadata = {**cron.metadata, **(payload.pop("metadata", None) or {})}
        fields = {k: v for k, v in payload.items() if v is not None}
        body = RunCreate.model_validate(
            {
                **fields,
                "assistant_id": cron.assistant_id,
                "metadata": metadata,
                "config": _without_cron_id(fields.get("config")),
                "multitask_strategy": fields.get("multitask_strategy") or "enqueue",
                "on_completion": cron.on_run_completed,
            }
        )
        principal = Principal(tenant_id=cron.tenant_id, identity=cron.owner)
        return await self._runs.create(
            principal,
            cron.thread_id,
            body,
            server_configurable={"cron_id": cron.cron_id},
            extra_metadata={"cron_id": cron.cron_id},
        )


def _following(cron: models.Cron, after: datetime) -> datetime | None:
    try:
        return next_fire(cron.schedule, cron.timezone, after)
    except InvalidArgumentError as exc:
        logger.warning("cron %s is disabled: %s", cron.cron_id, exc.detail)
        return None


def _dump_fields(body: wire.CronCreate | wire.CronPatch, *, keep_none: bool = False) -> Json:
    """The run-creation fields of a cron body, as JSON."""
    dumped = body.model_dump(mode="json", exclude_none=not keep_none)
    fields = {k: v for k, v in dumped.items() if k in _PAYLOAD_FIELDS}
    if isinstance(fields.get("config"), dict):
        fields["config"] = {k: v for k, v in fields["config"].items() if v is not None}
    return fields


def _check_config(payload: Json) -> None:
    # Refuse now what would fail at every fire.
    config = payload.get("config") or {}
    if config.get("configurable") and payload.get("context"):
        raise BadRequestError("Cannot specify both configurable and context. Prefer context.")


def _without_cron_id(config: Any) -> Any:
    if not isinstance(config, dict) or not isinstance(config.get("configurable"), dict):
        return config
    configurable = {k: v for k, v in config["configurable"].items() if k != "cron_id"}
    return {**config, "configurable": configurable}


def _aware(moment: datetime | None) -> datetime | None:
    # A naive end_time is read as UTC, the zone the API speaks.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _optional_uuid(value: str | None, what: str) -> str | None:
    return parse_uuid(value, what) if value else None
