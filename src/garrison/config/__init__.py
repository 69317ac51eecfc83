"""Settings (environment, garrison.json) and the langgraph.json project loader."""

from garrison.config.project import GraphSpec, ProjectConfig, load_project
from garrison.config.settings import Settings

__all__ = ["GraphSpec", "ProjectConfig", "Settings", "load_project"]
