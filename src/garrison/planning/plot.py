"""Cost versus users as a PNG (needs the `plan-plot` extra: matplotlib)."""

from collections.abc import Callable
from pathlib import Path

from garrison.planning.cost import Cost


class PlotUnavailableError(RuntimeError):
    """matplotlib is not installed."""


def user_steps(center: float, points: int = 13) -> list[float]:
    """Daily active users from center / 10 to center * 10, evenly spaced on a log scale."""
    if points < 2:
        raise ValueError("points must be at least 2")
    return [center * 10 ** (-1 + 2 * i / (points - 1)) for i in range(points)]


def plot_cost_vs_users(
    cost_at: Callable[[float], Cost], center_users: float, path: Path, title: str
) -> list[tuple[float, Cost]]:
    """Price the plan at each of `user_steps(center_users)` and draw on-demand and spot
    totals; returns the points drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotUnavailableError(
            "plotting needs matplotlib: pip install 'garrison[plan-plot]'"
        ) from exc
    points = [(users, cost_at(users)) for users in user_steps(center_users)]
    currency = points[0][1].prices.currency
    figure, axes = plt.subplots(figsize=(8, 5))
    users = [u for u, _ in points]
    axes.plot(users, [c.total_on_demand for _, c in points], marker="o", label="on-demand")
    spot = points[0][1].spot_share
    axes.plot(users, [c.total_with_spot for _, c in points], marker="o", label=f"{spot:.0%} spot")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("daily active users")
    axes.set_ylabel(f"{currency} per month")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return points
