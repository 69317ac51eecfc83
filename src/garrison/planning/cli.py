"""`garrison bench profile`, `garrison plan`, `garrison plan cost`, `garrison plan spot`."""

import json
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import psycopg
import redis
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from garrison.planning.cost import (
    NODE_ALLOCATABLE,
    PROVIDERS,
    Cost,
    Prices,
    PriceTableError,
    load_prices,
    price_plan,
)
from garrison.planning.measure import (
    CALIBRATION_GRAPH,
    ProfileOptions,
    ProfileRunError,
    run_profile,
)
from garrison.planning.plan import Plan, Workload, make_plan
from garrison.planning.profile import Profile, ProfileError, load_profile, reference_profile
from garrison.planning.render import (
    helm_values,
    plan_json,
    print_assumptions,
    print_plan,
    profile_summary,
    profile_table,
    to_yaml,
)
from garrison.planning.spot import DEFAULT_MAX_POOLS
from garrison.planning.spot_prices import SpotDataError, fetch
from garrison.planning.spot_render import (
    mix_table,
    ranking_table,
    spot_json,
    spot_notes,
    spot_report,
)
from garrison.planning.topology import DEFAULT_POSTGRES_URL, DEFAULT_REDIS_URL, TOPOLOGIES

bench_app = typer.Typer(no_args_is_help=True, help="Measure Garrison on this machine.")
plan_app = typer.Typer(
    invoke_without_command=True,
    help="Size a deployment (replicas, pods, PostgreSQL, Redis) from a measured profile. "
    "Workload options go before a subcommand: `garrison plan --daily-active-users 5000 cost`.",
)
_console = Console()


class Format(StrEnum):
    table = "table"
    json = "json"


def _fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@bench_app.command("profile")
def profile_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Profile JSON to write")] = Path(
        "garrison-profile.json"
    ),
    topology: Annotated[
        str, typer.Option(help=f"Deployment to start: {', '.join(TOPOLOGIES)}")
    ] = "split",
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Your project (default: the calibration graph)"),
    ] = None,
    graph: Annotated[str | None, typer.Option(help="Graph id to run")] = None,
    graph_input: Annotated[
        str | None, typer.Option("--input", help="Graph input as JSON (with --config)")
    ] = None,
    payload_bytes: Annotated[
        int, typer.Option(min=1, help="Calibration payload size per run")
    ] = 1024,
    requests: Annotated[int, typer.Option(min=10, help="Requests per measured phase")] = 100,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight (at most)")] = 4,
    rate: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            help="Pace each phase at this many requests/s (default: as fast "
            "as --concurrency allows)",
        ),
    ] = None,
    streams: Annotated[int, typer.Option(min=10, help="SSE streams held open")] = 300,
    postgres_url: Annotated[str, typer.Option(help="PostgreSQL server (admin URL)")] = (
        DEFAULT_POSTGRES_URL
    ),
    redis_url: Annotated[str, typer.Option(help="Redis server")] = DEFAULT_REDIS_URL,
) -> None:
    """Start a local Garrison, drive a calibrated load through it and write a profile."""
    if topology not in TOPOLOGIES:
        _fail(f"unknown topology {topology!r}; choose from {', '.join(TOPOLOGIES)}")
    if config is not None and not config.is_file():
        _fail(f"project file {config} not found")
    if config is None and graph not in (None, CALIBRATION_GRAPH):
        _fail(f"without --config the only graph is {CALIBRATION_GRAPH!r}")
    if config is not None and graph is None:
        _fail("--config needs --graph (the graph id to profile)")
    parsed: dict[str, Any] | None = None
    if graph_input is not None:
        try:
            loaded = json.loads(graph_input)
        except json.JSONDecodeError as exc:
            _fail(f"--input is not JSON: {exc}")
        if not isinstance(loaded, dict):
            _fail("--input must be a JSON object")
        parsed = loaded
    options = ProfileOptions(
        topology=topology,
        config=config.resolve() if config else None,
        graph=graph or CALIBRATION_GRAPH,
        graph_input=parsed if config is not None else None,
        payload_bytes=payload_bytes,
        requests=requests,
        concurrency=concurrency,
        rate=rate,
        streams=streams,
        postgres_url=postgres_url,
        redis_url=redis_url,
    )
    columns = (
        TextColumn("{task.description:<26}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task("starting Garrison", total=options.total_steps())

        def advance(what: str, done: int) -> None:
            bar.update(task, description=what, advance=done)

        try:
            profile = run_profile(options, advance)
        except (
            ProfileRunError,
            RuntimeError,
            OSError,
            httpx.HTTPError,
            psycopg.Error,
            redis.RedisError,
        ) as exc:
            _fail(f"profile failed: {exc}")
    _write(output, json.dumps(profile.to_json(), indent=2) + "\n")
    _console.print(profile_table(profile))
    _console.print(profile_summary(profile))
    _console.print(f"profile written to {output}")


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as exc:
        _fail(f"cannot write {path}: {exc.strerror or exc}")


def _profile(path: Path | None) -> tuple[Profile, str]:
    try:
        if path is None:
            profile = reference_profile()
            return profile, f"reference, {profile.machine.get('name', 'unknown machine')}"
        return load_profile(path), str(path)
    except ProfileError as exc:
        _fail(str(exc))


def _make(profile: Profile, workload: Workload, source: str) -> Plan:
    try:
        return make_plan(profile, workload, source)
    except ValueError as exc:
        _fail(str(exc))


@plan_app.callback()
def plan_command(
    ctx: typer.Context,
    profile_path: Annotated[
        Path | None,
        typer.Option("--profile", help="From `garrison bench profile` (default: reference)"),
    ] = None,
    daily_active_users: Annotated[float, typer.Option()] = 10_000,
    peak_concurrency: Annotated[float, typer.Option(help="Share of users online at peak")] = 0.15,
    requests_per_user: Annotated[float, typer.Option(help="Runs per user per day")] = 50,
    avg_run_seconds: Annotated[float, typer.Option()] = 3.0,
    payload_mb: Annotated[float, typer.Option(help="Input + output size per run")] = 0.5,
    retention_days: Annotated[float, typer.Option()] = 30,
    target_cpu: Annotated[float, typer.Option(help="CPU utilisation at peak")] = 0.7,
    headroom: Annotated[float, typer.Option(help="Spare share for limits and HPA max")] = 0.3,
    session_minutes: Annotated[float, typer.Option(help="A user's session at peak")] = 30,
    worker_concurrency: Annotated[int, typer.Option(help="Upper bound per worker")] = 16,
    max_connections: Annotated[
        int | None, typer.Option(help="PostgreSQL max_connections when fixed")
    ] = None,
    output_format: Annotated[Format, typer.Option("--format")] = Format.table,
    emit_helm_values: Annotated[
        Path | None, typer.Option(help="Write Helm values for deploy/helm/garrison")
    ] = None,
) -> None:
    """Print replicas, pod sizes, PostgreSQL, Redis and storage for a workload."""
    profile, source = _profile(profile_path)
    workload = Workload(
        daily_active_users=daily_active_users,
        peak_concurrency=peak_concurrency,
        requests_per_user=requests_per_user,
        avg_run_seconds=avg_run_seconds,
        payload_mb=payload_mb,
        retention_days=retention_days,
        target_cpu=target_cpu,
        headroom=headroom,
        session_minutes=session_minutes,
        worker_concurrency=worker_concurrency,
        max_connections=max_connections,
    )
    plan = _make(profile, workload, source)
    ctx.obj = (profile, plan)
    if ctx.invoked_subcommand is not None:
        return
    if emit_helm_values is not None:
        header = f"# garrison plan ({source}); keys documented in docs/capacity.md\n"
        _write(emit_helm_values, header + to_yaml(helm_values(plan)) + "\n")
    if output_format is Format.json:
        typer.echo(json.dumps(plan_json(plan), indent=2))
    else:
        print_plan(plan, _console)
        if emit_helm_values is not None:
            _console.print(f"Helm values written to {emit_helm_values}")


def _cost_table(cost: Cost) -> Table:
    p = cost.prices
    table = Table(
        title=f"Monthly cost on {p.provider} ({p.region}), prices as of {p.as_of}",
        header_style="bold",
    )
    table.add_column("line")
    table.add_column(f"{p.currency} / month", justify="right")
    rows = [
        ("compute, on-demand", cost.compute_on_demand),
        (f"compute, {cost.spot_share:.0%} spot", cost.compute_with_spot),
        ("managed PostgreSQL", cost.database),
        ("database storage", cost.storage),
        ("managed Redis", cost.redis),
        ("network egress", cost.network),
    ]
    for name, value in rows:
        table.add_row(name, f"{value:,.0f}")
    table.add_section()
    table.add_row("[bold]total, on-demand[/bold]", f"[bold]{cost.total_on_demand:,.0f}[/bold]")
    table.add_row(
        f"[bold]total, {cost.spot_share:.0%} spot[/bold]",
        f"[bold]{cost.total_with_spot:,.0f}[/bold]",
    )
    table.add_row("spot savings", f"{cost.spot_savings:,.0f}")
    return table


def _cost_json(cost: Cost) -> dict[str, Any]:
    return {
        "provider": cost.prices.provider,
        "region": cost.prices.region,
        "prices_as_of": cost.prices.as_of,
        "currency": cost.prices.currency,
        "spot_share": cost.spot_share,
        "lines": {
            "compute_on_demand": cost.compute_on_demand,
            "compute_with_spot": cost.compute_with_spot,
            "database": cost.database,
            "storage": cost.storage,
            "redis": cost.redis,
            "network": cost.network,
        },
        "total_on_demand": cost.total_on_demand,
        "total_with_spot": cost.total_with_spot,
        "spot_savings": cost.spot_savings,
    }


@plan_app.command("cost")
def cost_command(
    ctx: typer.Context,
    provider: Annotated[str, typer.Option(help=" | ".join(PROVIDERS))],
    spot_share: Annotated[float, typer.Option(help="Share of compute on spot capacity")] = 0.6,
    prices_path: Annotated[
        Path | None, typer.Option("--prices", help="Your own price table (JSON)")
    ] = None,
    output_format: Annotated[Format, typer.Option("--format")] = Format.table,
    plot: Annotated[
        Path | None, typer.Option(help="Write a PNG of cost vs users (needs matplotlib)")
    ] = None,
) -> None:
    """Price the plan per month: compute (on-demand vs spot), database, storage, network."""
    profile, plan = ctx.obj
    try:
        prices = load_prices(provider, prices_path)
        cost = price_plan(plan, prices, spot_share)
    except (PriceTableError, ValueError) as exc:
        _fail(str(exc))
    if plot is not None:
        _plot(profile, plan, prices, spot_share, plot)
    if output_format is Format.json:
        typer.echo(json.dumps(_cost_json(cost), indent=2))
        return
    _console.print(_cost_table(cost))
    notes = [
        *plan.assumptions,
        f"Prices: {prices.source}",
        "Compute is priced at pod requests and peak replica count all month, plus "
        f"{1 / NODE_ALLOCATABLE - 1:.0%} for node reservations; off-peak scale-down is cheaper.",
        "Managed database priced single-zone at the planned CPU and memory; double it for HA.",
    ]
    print_assumptions(notes, f"profile: {plan.profile_source}", _console)
    if plot is not None:
        _console.print(f"plot written to {plot}")


def _plot(profile: Profile, plan: Plan, prices: Prices, spot_share: float, path: Path) -> None:
    from garrison.planning.plot import PlotUnavailableError, plot_cost_vs_users

    def cost_at(users: float) -> Cost:
        scaled = replace(plan.workload, daily_active_users=users)
        return price_plan(make_plan(profile, scaled, plan.profile_source), prices, spot_share)

    title = f"Garrison on {prices.provider}: monthly cost vs daily active users"
    try:
        plot_cost_vs_users(cost_at, plan.workload.daily_active_users, path, title)
    except PlotUnavailableError as exc:
        _fail(str(exc))


@plan_app.command("spot")
def spot_command(
    ctx: typer.Context,
    region: Annotated[str, typer.Option(help="AWS region, e.g. us-east-1")],
    instance_types: Annotated[
        str, typer.Option(help="Comma-separated candidates, e.g. m7i.large,c7i.xlarge")
    ],
    hours: Annotated[float, typer.Option(help="Price history window")] = 24,
    endpoint_url: Annotated[
        str | None, typer.Option(help="EC2 endpoint instead of AWS's (e.g. a local moto server)")
    ] = None,
    max_pools: Annotated[
        int, typer.Option(min=1, help="(type, AZ) pools in the suggested mix, at most")
    ] = DEFAULT_MAX_POOLS,
    output_format: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    r"""Rank EC2 instance types by recent spot price per vCPU and GiB for the plan, and
    suggest a mix over types and zones (needs `pip install 'garrison\[spot]'` and AWS
    credentials)."""  # `\[`: rich's markup in --help would eat `[spot]`
    _, plan = ctx.obj
    names = list(dict.fromkeys(n.strip() for n in instance_types.split(",") if n.strip()))
    try:
        data = fetch(region, names, hours, endpoint_url)
    except SpotDataError as exc:
        _fail(str(exc))
    report = spot_report(data, names, plan, hours, max_pools)
    if not report.ranked:
        _fail(f"no spot price for {', '.join(names)} in {region} in the last {hours:g} h")
    if output_format is Format.json:
        typer.echo(json.dumps(spot_json(report, plan), indent=2))
        return
    _console.print(ranking_table(report))
    _console.print(mix_table(report))
    print_assumptions(spot_notes(report, plan), f"profile: {plan.profile_source}", _console)
