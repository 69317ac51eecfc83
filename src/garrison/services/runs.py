"""Runs: creation under the thread's multitask rule, cancellation, results and streams."""

from collections.abc import AsyncIterator, Mapping
from typing import Any

from garrison import serde
from garrison.broker.ports import FROM_START, Broker, StreamRecord
from garrison.config.security_settings import LimitSettings
from garrison.config.settings import WorkerSettings
from garrison.domain.clock import after, utcnow
from garrison.domain.errors import (
    BadRequestError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    TooManyRequestsError,
)
from garrison.domain.ids import parse_uuid, uuid7
from garrison.domain.principal import Principal
from garrison.domain.runs import ACTIVE_STATUSES, CancelAction, MultitaskStrategy, RunStatus
from garrison.observability import tracing
from garrison.runtime.stream_events import INTERRUPT_KEY, parse_stream_modes
from garrison.schemas import runs as wire
from garrison.services.assistants import AssistantService
from garrison.services.status_checks import RunStatusChecks
from garrison.services.streams import without_stale_attempts
from garrison.services.thread_access import ThreadAccess, admits
from garrison.services.webhooks import WebhookPolicy
from garrison.storage import models
from garrison.storage.models import CancelledRun, Json, NewRun, Page
from garrison.storage.ports import Storage

# Keys clients may not set: the server owns them.
_RESERVED_CONFIGURABLE = ("langgraph_auth_user", "langgraph_request_id", "__")
_RESERVED_METADATA = frozenset({"thread_id", "assistant_id", "run_id", "cron_id"})


class RunService:
    def __init__(
        self,
        storage: Storage,
        broker: Broker,
        assistants: AssistantService,
        webhooks: WebhookPolicy,
        settings: WorkerSettings,
        access: ThreadAccess,
        *,
        limits: LimitSettings | None = None,
    ) -> None:
        self._storage = storage
        self._access = access
        self._broker = broker
        self._assistants = assistants
        self._webhooks = webhooks
        self._settings = settings
        self._limits = limits or LimitSettings()
        self._status_checks = RunStatusChecks(storage.runs.statuses)

    # Creation --------------------------------------------------------------------------
    async def create(
        self,
        principal: Principal,
        thread_id: str | None,
        body: wire.RunCreate,
        *,
        server_configurable: Mapping[str, Any] | None = None,
        extra_metadata: Json | None = None,
    ) -> models.Run:
        """Create a run on `thread_id`, or a stateless run when it is None.

        `server_configurable` holds values the server puts in `config.configurable`
        (forwarded request headers, a cron's id); unlike the client's own configurable,
        they never conflict with `context`.
        """
        stateless = thread_id is None
        if stateless and body.command is not None and "resume" in body.command.model_fields_set:
            raise BadRequestError("You must provide a thread_id when resuming.")
        thread_id = parse_uuid(thread_id, "thread_id") if thread_id is not None else uuid7()
        request = _run_request(body, thread_id, stateless)
        await self._authorize_run(principal, request, stateless)
        body = body.model_copy(update={"metadata": request["metadata"]})
        assistant = await self._assistants.resolve(principal, body.assistant_id, for_run=True)
        if body.webhook:
            if not self._webhooks.enabled:
                raise BadRequestError("Webhooks are disabled on this server")
            await self._webhooks.validate(body.webhook)
        run_id = uuid7()
        if tracing.enabled():  # the worker continues the trace of the creating request
            traceparent = tracing.current_traceparent().get("traceparent")
            if traceparent:
                server_configurable = {
                    **(server_configurable or {}),
                    tracing.TRACEPARENT_KEY: traceparent,
                }
        config, context = self._run_config(
            principal, assistant, body, thread_id, run_id, server_configurable
        )
        metadata = {
            **{k: v for k, v in (body.metadata or {}).items() if k not in _RESERVED_METADATA},
            **(extra_metadata or {}),
            "assistant_id": assistant.assistant_id,
        }
        temporary = stateless and body.on_completion == "delete"
        await self._check_tenant_caps(principal.tenant_id)
        new = NewRun(
            run_id=run_id,
            thread_id=thread_id,
            assistant_id=assistant.assistant_id,
            graph_id=assistant.graph_id,
            metadata=metadata,
            kwargs=_kwargs(body, config, context, temporary),
            multitask_strategy=MultitaskStrategy(body.multitask_strategy),
            available_at=after(utcnow(), body.after_seconds or 0),
            temporary=temporary,
            thread_config={k: v for k, v in config.items() if k != "configurable"},
        )
        created = await self._storage.runs.create(
            principal.tenant_id,
            principal.identity,
            new,
            create_thread=stateless or body.if_not_exists == "create",
        )
        for superseded in created.superseded:
            await self._settle_cancel(principal, superseded)
        await self._broker.notify_work()
        return created.run

    async def _authorize_run(self, principal: Principal, request: Json, stateless: bool) -> None:
        """`threads.create_run` on the run's thread; a thread the caller may not see is
        reported as missing."""
        access = await self._access.decide(principal, "create_run", request)
        if access is None or stateless:
            return
        thread = await self._storage.threads.get(principal.tenant_id, request["thread_id"])
        if thread is not None and not admits(access, thread):
            raise NotFoundError(f"Thread {request['thread_id']} not found")

    async def _check_tenant_caps(self, tenant_id: str) -> None:
        """Refuse a new run while the tenant is at its queued or in-flight cap.

        Checked before the insert, not inside its transaction: concurrent creations can
        overshoot a cap by the number of requests racing, never by more.
        """
        queued_cap = self._limits.max_queued_runs_per_tenant
        active_cap = self._limits.max_concurrent_runs_per_tenant
        if not queued_cap and not active_cap:
            return
        counts = await self._storage.runs.count_active(tenant_id)
        queued = counts.get(RunStatus.PENDING, 0)
        active = queued + counts.get(RunStatus.RUNNING, 0)
        if queued_cap and queued >= queued_cap:
            raise TooManyRequestsError(
                f"Too many queued runs for this tenant (limit {queued_cap}); "
                "retry when some have started",
                retry_after=1.0,
            )
        if active_cap and active >= active_cap:
            raise TooManyRequestsError(
                f"Too many runs in flight for this tenant (limit {active_cap}); "
                "retry when some have finished",
                retry_after=1.0,
            )

    def _run_config(
        self,
        principal: Principal,
        assistant: models.Assistant,
        body: wire.RunCreate,
        thread_id: str,
        run_id: str,
        server_configurable: Mapping[str, Any] | None,
    ) -> tuple[Json, Json | None]:
        run_config = body.config.model_dump(exclude_none=True) if body.config else {}
        client_configurable = _without_reserved(run_config.pop("configurable", None) or {})
        if client_configurable and body.context:
            raise BadRequestError("Cannot specify both configurable and context. Prefer context.")
        limit = run_config.get("recursion_limit")
        if limit is not None and limit > self._settings.max_recursion_limit:
            raise InvalidArgumentError(
                f"recursion_limit {limit} exceeds this server's maximum "
                f"({self._settings.max_recursion_limit})"
            )
        configurable: Json = {
            **assistant.config.get("configurable", {}),
            **(server_configurable or {}),
            **client_configurable,
            **_checkpoint_fields(body),
            "run_id": run_id,
            "thread_id": thread_id,
            "assistant_id": assistant.assistant_id,
            "graph_id": assistant.graph_id,
        }
        if principal.identity is not None:
            configurable["user_id"] = principal.identity
        user = principal.graph_user
        if user is not None:
            # What graphs read as config["configurable"]["langgraph_auth_user"] (rebuilt as
            # an AuthUser by the worker).
            configurable["langgraph_auth_user"] = user.to_dict()
            configurable["langgraph_auth_user_id"] = user.identity
            configurable["langgraph_auth_permissions"] = user.permissions
        tags = [*assistant.config.get("tags", []), *run_config.pop("tags", [])]
        config: Json = {
            **{k: v for k, v in assistant.config.items() if k != "configurable"},
            **run_config,
            "configurable": configurable,
        }
        if tags:
            config["tags"] = list(dict.fromkeys(tags))
        context = {**assistant.context, **(body.context or {})} or None
        return config, context

    async def create_batch(
        self, principal: Principal, bodies: list[wire.RunCreate]
    ) -> list[models.Run]:
        if not bodies:
            raise InvalidArgumentError("A batch needs at least one run")
        return [await self.create(principal, None, body) for body in bodies]

    # Reading ---------------------------------------------------------------------------
    async def get(
        self, principal: Principal, thread_id: str, run_id: str, action: str = "read"
    ) -> models.Run:
        """The run, if the caller may `action` its thread (else NotFoundError)."""
        thread_id = parse_uuid(thread_id, "thread_id")
        run_id = parse_uuid(run_id, "run_id")
        await self._access.check(principal, action, thread_id, run_id=run_id)
        run = await self._storage.runs.get(principal.tenant_id, run_id, thread_id)
        if run is None:
            raise NotFoundError(f"Run {run_id} not found")
        return run

    async def get_any(self, principal: Principal, run_id: str) -> models.Run:
        """A run by id alone (stateless runs have no thread the client knows)."""
        run = await self._storage.runs.get(principal.tenant_id, parse_uuid(run_id, "run_id"))
        if run is None:
            raise NotFoundError(f"Run {run_id} not found")
        try:
            await self._access.check(principal, "read", run.thread_id, run_id=run.run_id)
        except NotFoundError:
            raise NotFoundError(f"Run {run_id} not found") from None
        return run

    async def list_runs(
        self,
        principal: Principal,
        thread_id: str,
        limit: int,
        offset: int,
        status: RunStatus | None,
    ) -> list[models.Run]:
        thread_id = parse_uuid(thread_id, "thread_id")
        await self._access.check(principal, "read", thread_id, run_id=None)
        return await self._storage.runs.list_runs(
            principal.tenant_id, thread_id, Page(limit, offset), status
        )

    async def delete(self, principal: Principal, thread_id: str, run_id: str) -> None:
        run = await self.get(principal, thread_id, run_id, "delete")
        if not await self._storage.runs.delete(principal.tenant_id, run.thread_id, run.run_id):
            raise NotFoundError(f"Run {run_id} not found")
        await self._storage.checkpointer.adelete_for_runs([run.run_id])

    # Cancellation ----------------------------------------------------------------------
    async def cancel(
        self, principal: Principal, thread_id: str, run_id: str, action: CancelAction
    ) -> models.Run:
        run = await self.get(principal, thread_id, run_id, "update")
        cancelled = await self._storage.runs.cancel(
            principal.tenant_id, action, thread_id=run.thread_id, run_ids=[run.run_id]
        )
        if not cancelled:
            raise NotFoundError(f"Run {run_id} is {run.status.value}; no matching runs to cancel")
        for item in cancelled:
            await self._settle_cancel(principal, item)
        return run

    async def cancel_many(
        self, principal: Principal, body: wire.CancelMany, action: CancelAction
    ) -> int:
        if body.status is not None and (body.thread_id or body.run_ids):
            raise InvalidArgumentError("Give either status, or thread_id with run_ids, not both")
        if body.status is None and not (body.thread_id and body.run_ids):
            raise InvalidArgumentError("Give status, or thread_id with run_ids")
        statuses = None
        if body.status is not None and body.status != "all":
            statuses = [RunStatus(body.status)]
        thread_id = parse_uuid(body.thread_id, "thread_id") if body.thread_id else None
        if thread_id is not None:
            await self._access.check(principal, "update", thread_id, run_id=None)
        elif await self._access.decide(principal, "update", {"thread_id": None}) is not None:
            # Cancelling by status reaches every thread of the tenant, including hidden ones.
            raise PermissionDeniedError("Cancelling runs by status needs access to every thread")
        cancelled = await self._storage.runs.cancel(
            principal.tenant_id,
            action,
            thread_id=thread_id,
            run_ids=[parse_uuid(r, "run_id") for r in body.run_ids] if body.run_ids else None,
            statuses=statuses,
        )
        for item in cancelled:
            await self._settle_cancel(principal, item)
        return len(cancelled)

    async def cancel_thread_runs(self, principal: Principal, thread_id: str) -> None:
        """Stop whatever runs on a thread (before the thread is deleted)."""
        cancelled = await self._storage.runs.cancel(
            principal.tenant_id, CancelAction.INTERRUPT, thread_id=thread_id
        )
        for item in cancelled:
            await self._settle_cancel(principal, item)

    async def _settle_cancel(self, principal: Principal, cancelled: CancelledRun) -> None:
        if cancelled.signal:
            # Its worker finishes the cancel (and the stream) when the signal lands.
            await self._broker.send_cancel(cancelled.run_id, cancelled.action)
            return
        if cancelled.action is CancelAction.ROLLBACK:
            await self._storage.checkpointer.adelete_for_runs([cancelled.run_id])
        thread = await self._storage.threads.get(principal.tenant_id, cancelled.thread_id)
        await self._broker.end_run_stream(
            cancelled.thread_id, cancelled.run_id, serde.dumps(_thread_output(thread))
        )

    # Results and streams ---------------------------------------------------------------
    async def output_ticks(
        self, principal: Principal, run: models.Run, idle_seconds: float
    ) -> AsyncIterator[bytes | None]:
        """The run's final output (JSON), preceded by a None for each idle period spent
        waiting for the run to end."""
        while True:
            if run.status not in ACTIVE_STATUSES and not await self._broker.run_stream_ended(
                run.run_id
            ):
                yield serde.dumps(await self._stored_output(principal, run))
                return
            data = await self._broker.wait_run_output(run.run_id, idle_seconds)
            if data is not None:
                yield data
                return
            yield None
            status = await self._status_checks.status(run.run_id)
            if status in ACTIVE_STATUSES:
                continue
            refreshed = None
            if status is not None:
                refreshed = await self._storage.runs.get(principal.tenant_id, run.run_id)
            if refreshed is None:  # deleted meanwhile (rollback, stateless cleanup)
                yield serde.dumps({})
                return
            run = refreshed

    async def _stored_output(self, principal: Principal, run: models.Run) -> Any:
        if run.status in (RunStatus.ERROR, RunStatus.TIMEOUT):
            return {"__error__": run.error}
        thread = await self._storage.threads.get(principal.tenant_id, run.thread_id)
        return _thread_output(thread)

    async def records(
        self, principal: Principal, run: models.Run, since: str | None, idle_seconds: float
    ) -> AsyncIterator[StreamRecord | None]:
        """The run's stream events from `since` until the run ends (the end record is not
        yielded); None for each idle period."""
        if run.status not in ACTIVE_STATUSES and not await self._broker.run_stream_ended(
            run.run_id
        ):
            return  # finished, and its events are past retention: nothing to replay
        events = self._broker.subscribe_run(run.run_id, since, idle_seconds)
        async for record in without_stale_attempts(events):
            if record is None:
                if await self._finished_unannounced(run.run_id):
                    return
                yield None
            elif record.end:
                return
            else:
                yield record

    async def _finished_unannounced(self, run_id: str) -> bool:
        # A run whose end was never published (its process died before announcing it, or
        # it was cancelled while pending on another server version) must not hang waiters.
        status = await self._status_checks.status(run_id)
        return status not in ACTIVE_STATUSES and not await self._broker.run_stream_ended(run_id)


def parse_since(last_event_id: str | None) -> str | None:
    return FROM_START if last_event_id in ("-", "0") else last_event_id


def _thread_output(thread: models.Thread | None) -> Any:
    if thread is None:
        return {}
    if thread.error is not None and thread.status.value == "error":
        return {"__error__": thread.error}
    values = thread.values if thread.values is not None else {}
    interrupts = [i for group in thread.interrupts.values() for i in group]
    if interrupts and isinstance(values, dict):
        return {**values, INTERRUPT_KEY: interrupts}
    return values


def _run_request(body: wire.RunCreate, thread_id: str, stateless: bool) -> Json:
    """The `RunsCreate` payload custom auth handlers receive (and may change)."""
    return {
        "thread_id": None if stateless else thread_id,
        "assistant_id": body.assistant_id,
        "run_id": None,
        "status": "pending",
        "metadata": dict(body.metadata or {}),
        "prevent_insert_if_inflight": body.multitask_strategy == "reject",
        "multitask_strategy": body.multitask_strategy,
        "if_not_exists": body.if_not_exists,
        "after_seconds": body.after_seconds,
        "kwargs": {"input": body.input, "config": body.config, "context": body.context},
        "action": None,
    }


def _without_reserved(configurable: Json) -> Json:
    return {k: v for k, v in configurable.items() if not k.startswith(_RESERVED_CONFIGURABLE)}


def _checkpoint_fields(body: wire.RunCreate) -> Json:
    fields: Json = {}
    if body.checkpoint is not None:
        checkpoint = body.checkpoint.model_dump(exclude_none=True)
        checkpoint.pop("thread_id", None)
        fields.update(checkpoint)
    if body.checkpoint_id is not None:
        fields["checkpoint_id"] = body.checkpoint_id
    if "checkpoint_id" in fields:
        fields["checkpoint_id"] = parse_uuid(fields["checkpoint_id"], "checkpoint_id")
    return fields


def _kwargs(body: wire.RunCreate, config: Json, context: Json | None, temporary: bool) -> Json:
    durability = body.durability
    if durability is None and body.checkpoint_during is not None:
        durability = "async" if body.checkpoint_during else "exit"
    command = body.command.model_dump(exclude_unset=True) if body.command is not None else None
    return {
        "input": body.input,
        "command": command,
        "config": config,
        "context": context,
        "stream_mode": parse_stream_modes(body.stream_mode),
        "stream_subgraphs": body.stream_subgraphs,
        "stream_resumable": body.stream_resumable,
        "interrupt_before": body.interrupt_before,
        "interrupt_after": body.interrupt_after,
        "webhook": body.webhook,
        "feedback_keys": body.feedback_keys,
        "temporary": temporary,
        "durability": durability,
    }
