"""Tools of the support agent, over a small deterministic in-memory dataset."""

import re

from langchain_core.tools import BaseTool, tool

ORDERS: dict[str, dict[str, str | float]] = {
    "A1001": {"item": "Wireless mouse", "status": "delivered", "total": 49.99},
    "A1002": {"item": "Mechanical keyboard", "status": "shipped", "total": 129.00},
    "A1003": {"item": "USB-C hub", "status": "processing", "total": 35.50},
}
"""Fake order database, keyed by order id."""

KB_ARTICLES: tuple[dict[str, str], ...] = (
    {
        "id": "KB-1",
        "title": "Returns and refunds",
        "body": "Items can be returned within 30 days of delivery. Refunds go back to "
        "the original payment method within 5 business days.",
    },
    {
        "id": "KB-2",
        "title": "Shipping times",
        "body": "Standard shipping takes 3-5 business days; express shipping takes 1-2 "
        "business days. Tracking links are emailed when an order ships.",
    },
    {
        "id": "KB-3",
        "title": "Password reset",
        "body": "Use 'Forgot password' on the sign-in page; the reset link is valid for one hour.",
    },
)
"""Fake knowledge base articles."""

SENSITIVE_TOOLS = frozenset({"issue_refund"})
"""Tools that need a human's approval before they run."""


def _terms(text: str) -> set[str]:
    return {word.rstrip("s") for word in re.findall(r"[a-z]+", text.lower()) if len(word) > 3}


@tool
def search_knowledge_base(query: str) -> str:
    """Search the help-center knowledge base for articles relevant to a question."""
    terms = _terms(query)
    scored = [
        (len(terms & _terms(f"{article['title']} {article['body']}")), article)
        for article in KB_ARTICLES
    ]
    best_score, best = max(scored, key=lambda pair: pair[0])
    if best_score == 0:
        return "No matching help-center article found."
    return f"[{best['id']}] {best['title']}: {best['body']}"


@tool
def lookup_order(order_id: str) -> str:
    """Look up the status, item and total of an order by its id (e.g. A1001)."""
    order = ORDERS.get(order_id.strip().upper())
    if order is None:
        return f"Order {order_id} was not found."
    return (
        f"Order {order_id.upper()}: {order['item']}, status {order['status']}, "
        f"total ${order['total']:.2f}."
    )


@tool
def issue_refund(order_id: str, amount: float | None = None) -> str:
    """Refund an order, fully or partially. Moves money: requires human approval."""
    key = order_id.strip().upper()
    order = ORDERS.get(key)
    if order is None:
        return f"Cannot refund: order {order_id} was not found."
    total = float(order["total"])
    refund = total if amount is None else amount
    if not 0 < refund <= total:
        return f"Cannot refund ${refund:.2f}: order {key} totals ${total:.2f}."
    return f"Refund of ${refund:.2f} issued for order {key} (reference RF-{key})."


TOOLS: tuple[BaseTool, ...] = (search_knowledge_base, lookup_order, issue_refund)
"""All tools bound to the model, in binding order."""
