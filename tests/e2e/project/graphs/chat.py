"""A chat node over the offline model, for token streaming."""

from langgraph.graph import END, START, MessagesState, StateGraph

from garrison.llm import OfflineChatModel

model = OfflineChatModel()


async def respond(state: MessagesState) -> MessagesState:
    return {"messages": [await model.ainvoke(state["messages"])]}


builder = StateGraph(MessagesState)
builder.add_node("respond", respond)
builder.add_edge(START, "respond")
builder.add_edge("respond", END)
graph = builder.compile(name="chat")
