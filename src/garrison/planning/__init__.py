"""Capacity and cost planning grounded in measured numbers (docs/capacity.md).

- `measure`: `garrison bench profile`, what each request kind costs on this machine;
- `model`: the capacity formulas, pure; `plan`: a workload plus a profile -> a plan;
- `cost`: a plan priced from a versioned price table; `render`, `plot`: output;
- `procstat`, `launcher`, `topology`: /proc accounting and local deployments, shared with
  the load benchmark in bench/.
"""

from garrison.planning.cost import Cost, load_prices, price_plan
from garrison.planning.plan import Plan, Workload, make_plan
from garrison.planning.profile import Profile, load_profile, reference_profile

__all__ = [
    "Cost",
    "Plan",
    "Profile",
    "Workload",
    "load_prices",
    "load_profile",
    "make_plan",
    "price_plan",
    "reference_profile",
]
