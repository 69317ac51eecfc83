"""Answers with the user the server says is calling (`langgraph_auth_user`)."""

from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    question: str
    identity: str
    display_name: str
    permissions: list[str]
    org: str
    user_id: str


def whoami(state: State, config: RunnableConfig) -> dict[str, Any]:
    configurable = config["configurable"]
    user = configurable["langgraph_auth_user"]
    return {
        "identity": user.identity,
        "display_name": user["display_name"],
        "permissions": list(user.permissions),
        "org": getattr(user, "org", ""),
        "user_id": configurable["langgraph_auth_user_id"],
    }


builder = StateGraph(State)
builder.add_node("whoami", whoami)
builder.add_edge(START, "whoami")
builder.add_edge("whoami", END)
graph = builder.compile(name="whoami")
