"""Everything a request handler may need, built once by the app factory."""

from dataclasses import dataclass

from garrison.broker.ports import Broker
from garrison.config.project import ProjectConfig
from garrison.config.settings import Settings
from garrison.runtime.graphs import GraphRegistry
from garrison.runtime.worker import Worker
from garrison.services.assistants import AssistantService
from garrison.services.crons import CronService
from garrison.services.runs import RunService
from garrison.services.store import StoreService
from garrison.services.threads import ThreadService
from garrison.storage.ports import Storage


@dataclass(slots=True)
class Services:
    settings: Settings
    project: ProjectConfig
    storage: Storage
    broker: Broker
    registry: GraphRegistry
    assistants: AssistantService
    threads: ThreadService
    runs: RunService
    crons: CronService
    store: StoreService
    worker: Worker | None
