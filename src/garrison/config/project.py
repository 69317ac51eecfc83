"""The project file: `langgraph.json`, or `garrison.json` (same shape plus Garrison's keys).

Only what a server needs is interpreted (graphs, dependencies, env, store, checkpointer,
http, webhooks, auth); image-build keys such as `python_version` or `dockerfile_lines` are
accepted and ignored so existing projects load unchanged.
"""

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from garrison.domain.errors import InvalidArgumentError

logger = logging.getLogger(__name__)

PROJECT_FILE_NAMES = ("garrison.json", "langgraph.json")
# Top-level garrison.json keys that configure Garrison itself rather than the project.
SETTINGS_KEYS = ("server", "storage", "database", "redis", "worker", "streams", "crons")


class _Lenient(BaseModel):
    # Newer langgraph.json files carry keys this version does not know; accept them.
    model_config = ConfigDict(extra="allow")


class GraphSpec(BaseModel):
    graph_id: str
    path: str  # "./file.py:attr" or "package.module:attr"
    description: str | None = None


class StoreIndexConfig(_Lenient):
    dims: int = Field(gt=0)
    embed: str
    fields: list[str] | None = None


class StoreTTLConfig(_Lenient):
    default_ttl: float | None = None
    refresh_on_read: bool = True
    sweep_interval_minutes: int | None = None


class StoreConfig(_Lenient):
    index: StoreIndexConfig | None = None
    ttl: StoreTTLConfig | None = None


class ThreadTTLConfig(_Lenient):
    strategy: Literal["delete", "keep_latest"] = "delete"
    default_ttl: float | None = None
    sweep_interval_minutes: float = 5.0
    sweep_limit: int = 1000


class CheckpointerConfig(_Lenient):
    ttl: ThreadTTLConfig | None = None


class CorsConfig(_Lenient):
    allow_origins: list[str] = ["*"]
    allow_methods: list[str] = ["*"]
    allow_headers: list[str] = ["*"]
    allow_credentials: bool = False
    allow_origin_regex: str | None = None
    expose_headers: list[str] = []
    max_age: int = 600


class HeaderFilter(_Lenient):
    includes: list[str] = []
    excludes: list[str] = []


class HttpConfig(_Lenient):
    cors: CorsConfig | None = None
    configurable_headers: HeaderFilter | None = None
    disable_assistants: bool = False
    disable_threads: bool = False
    disable_runs: bool = False
    disable_store: bool = False
    disable_meta: bool = False
    disable_webhooks: bool = False


class WebhookUrlPolicy(_Lenient):
    require_https: bool = False
    allowed_domains: list[str] = []
    allowed_ports: list[int] = []
    max_url_length: int = 4096
    disable_loopback: bool = True


class WebhooksConfig(_Lenient):
    url: WebhookUrlPolicy | None = None
    headers: dict[str, str] = {}


class ProjectConfig(BaseModel):
    """A parsed project file. `root` is the directory relative paths are resolved against."""

    model_config = ConfigDict(extra="ignore")

    root: Path
    source: Path | None = None
    graphs: dict[str, GraphSpec]
    dependencies: list[str] = []
    env: dict[str, str] | str | None = None
    store: StoreConfig | None = None
    checkpointer: CheckpointerConfig | None = None
    http: HttpConfig = HttpConfig()
    webhooks: WebhooksConfig | None = None
    auth: dict[str, Any] | None = None
    llm: dict[str, Any] | None = None  # LLM profiles, validated by garrison.llm
    settings: dict[str, dict[str, Any]] = {}

    @field_validator("graphs", mode="before")
    @classmethod
    def _normalise_graphs(cls, raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict) or not raw:
            raise ValueError("'graphs' must be a non-empty object of graph_id -> path")
        graphs: dict[str, Any] = {}
        for graph_id, spec in raw.items():
            if isinstance(spec, str):
                graphs[graph_id] = {"graph_id": graph_id, "path": spec}
            elif isinstance(spec, dict) and isinstance(spec.get("path"), str):
                graphs[graph_id] = {"graph_id": graph_id, **spec}
            else:
                raise ValueError(f"graph {graph_id!r}: expected 'path:attr' or {{'path': ...}}")
            if ":" not in graphs[graph_id]["path"]:
                raise ValueError(f"graph {graph_id!r}: path must look like './file.py:attribute'")
        return graphs

    def webhook_settings(self) -> dict[str, Any]:
        """The `webhooks.url` policy expressed as WebhookSettings values."""
        values: dict[str, Any] = dict(self.settings.get("webhooks", {}))
        policy = self.webhooks.url if self.webhooks else None
        if policy is not None:
            values.setdefault("require_https", policy.require_https)
            values.setdefault("allowed_domains", policy.allowed_domains)
            values.setdefault("allowed_ports", policy.allowed_ports)
            values.setdefault("max_url_length", policy.max_url_length)
            values.setdefault("allow_loopback", not policy.disable_loopback)
        if self.http.disable_webhooks:
            values["enabled"] = False
        return values

    def settings_values(self) -> dict[str, dict[str, Any]]:
        """Garrison settings groups found in the project file."""
        return {**self.settings, "webhooks": self.webhook_settings()}

    def apply_environment(self) -> None:
        """Load `env` (object or .env path) without overriding variables already set, and
        put local `dependencies` on the import path, as LangGraph's CLI does."""
        for name, value in self._env_values().items():
            os.environ.setdefault(name, value)
        for dependency in self.dependencies:
            path = (self.root / dependency).resolve()
            if dependency.startswith((".", "/")) and path.is_dir():
                if str(path) not in sys.path:
                    sys.path.insert(0, str(path))
            else:
                logger.info(
                    "dependency %r is not a local directory; it must already be installed",
                    dependency,
                )

    def _env_values(self) -> dict[str, str]:
        if self.env is None:
            return {}
        if isinstance(self.env, dict):
            return {k: str(v) for k, v in self.env.items()}
        from dotenv import dotenv_values

        env_file = self.root / self.env
        if not env_file.is_file():
            raise InvalidArgumentError(f"env file not found: {env_file}")
        return {k: v for k, v in dotenv_values(env_file).items() if v is not None}


def parse_project(data: Any, root: Path, source: Path | None = None) -> ProjectConfig:
    if not isinstance(data, dict):
        raise InvalidArgumentError("project file must hold a JSON object")
    settings = {key: data[key] for key in SETTINGS_KEYS if isinstance(data.get(key), dict)}
    try:
        return ProjectConfig.model_validate(
            {**data, "root": root, "source": source, "settings": settings}
        )
    except ValidationError as exc:
        where = source or "project config"
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidArgumentError(f"{where}: {problems}") from None


def load_project(path: Path) -> ProjectConfig:
    """Read and validate a project file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidArgumentError(f"config file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(f"{path}: invalid JSON ({exc})") from None
    return parse_project(data, root=path.resolve().parent, source=path.resolve())


def find_project_file(directory: Path) -> Path | None:
    """`garrison.json`, else `langgraph.json`, in `directory`."""
    for name in PROJECT_FILE_NAMES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def bundled_examples_file() -> Path:
    """The examples' langgraph.json: packaged in the wheel, or in the source checkout."""
    package_dir = Path(__file__).resolve().parent.parent
    for candidate in (
        package_dir / "_examples" / "langgraph.json",
        package_dir.parent.parent / "examples" / "langgraph.json",
    ):
        if candidate.is_file():
            return candidate
    raise InvalidArgumentError("bundled examples not found; pass --config")
