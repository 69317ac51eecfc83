"""What no schema checks: objects of one render refer to each other correctly."""

import subprocess
import sys
from functools import cache
from typing import Any

import pytest

from tests.deploy.conftest import HELM_VALUES, OVERLAYS, docs_of

RENDERS = [f"helm-{name}" for name in HELM_VALUES] + list(OVERLAYS)
WORKLOAD_KINDS = {"Deployment", "Rollout", "Job"}
PROBE_ROUTES = {"/health", "/ready", "/ok"}
Obj = dict[str, Any]


def objects(text: str) -> list[Obj]:
    return docs_of(text)


def of_kind(objs: list[Obj], *kinds: str) -> list[Obj]:
    return [o for o in objs if o["kind"] in kinds]


def pod_templates(objs: list[Obj]) -> list[tuple[Obj, Obj]]:
    return [(o, o["spec"]["template"]) for o in of_kind(objs, *WORKLOAD_KINDS)]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def selected(selector: dict[str, str], objs: list[Obj]) -> list[Obj]:
    return [o for o, t in pod_templates(objs) if matches(selector, t["metadata"]["labels"])]


def containers(objs: list[Obj]) -> list[Obj]:
    return [c for _, t in pod_templates(objs) for c in t["spec"]["containers"]]


@pytest.fixture(params=RENDERS)
def objs(request: pytest.FixtureRequest, all_renders: dict[str, str]) -> list[Obj]:
    return objects(all_renders[request.param])


def test_workload_selectors_match_their_pod_labels(objs: list[Obj]) -> None:
    for workload in of_kind(objs, "Deployment", "Rollout"):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert matches(workload["spec"]["selector"]["matchLabels"], labels)


def test_services_pdbs_and_policies_select_pods(objs: list[Obj]) -> None:
    for svc in of_kind(objs, "Service"):
        pods = selected(svc["spec"]["selector"], objs)
        assert pods, f"Service {svc['metadata']['name']} selects no pod"
        port_names = {p["name"] for c in containers(pods) for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in port_names
    for obj in of_kind(objs, "PodDisruptionBudget", "NetworkPolicy"):
        spec = obj["spec"]
        selector = (spec.get("selector") or spec["podSelector"])["matchLabels"]
        assert selected(selector, objs), f"{obj['kind']} {obj['metadata']['name']} selects no pod"


def test_network_policy_ports_match_container_ports(objs: list[Obj]) -> None:
    for policy in of_kind(objs, "NetworkPolicy"):
        pods = selected(policy["spec"]["podSelector"]["matchLabels"], objs)
        opened = {p["containerPort"] for c in containers(pods) for p in c.get("ports", [])}
        for rule in policy["spec"].get("ingress", []):
            for port in rule["ports"]:
                assert port["port"] in opened, f"{policy['metadata']['name']}: {port}"


def test_default_deny_and_database_egress_exist(objs: list[Obj]) -> None:
    policies = of_kind(objs, "NetworkPolicy")
    if not policies:
        return  # the minimal value set turns them off
    assert any(
        set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"} and "ingress" not in p["spec"]
        for p in policies
    ), "no default-deny policy"
    egress_ports = {
        port["port"]
        for p in policies
        for rule in p["spec"].get("egress", [])
        for port in rule["ports"]
    }
    assert {53, 5432, 443} <= egress_ports


def test_probes_hit_real_routes_on_declared_ports(objs: list[Obj]) -> None:
    for container in containers(objs):
        names = {p["name"] for p in container.get("ports", [])}
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            if container["name"] == "migrate":
                continue
            probe = container[kind]["httpGet"]
            assert probe["path"] in PROBE_ROUTES and probe["port"] in names
        if container["name"] != "migrate":
            assert container["readinessProbe"]["httpGet"]["path"] == "/ready"


def test_hpa_targets_exist(objs: list[Obj]) -> None:
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    for hpa in of_kind(objs, "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        assert (ref["kind"], ref["name"]) in names
        target = next(
            o for o in objs if (o["kind"], o["metadata"]["name"]) == (ref["kind"], ref["name"])
        )
        assert target["apiVersion"] == ref["apiVersion"]
        assert "replicas" not in target["spec"], "the HPA owns replicas"
        for metric in hpa["spec"]["metrics"]:
            if metric["type"] == "External":
                assert metric["external"]["metric"]["name"] == "garrison_queue_depth"


def test_rbac_and_service_accounts_resolve(objs: list[Obj]) -> None:
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    for binding in of_kind(objs, "RoleBinding"):
        assert (binding["roleRef"]["kind"], binding["roleRef"]["name"]) in names
        for subject in binding["subjects"]:
            assert (subject["kind"], subject["name"]) in names
    for role in of_kind(objs, "Role"):
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"], "least privilege"
            assert set(rule["verbs"]) <= {"get", "list", "watch"}
    for _, template in pod_templates(objs):
        account = template["spec"]["serviceAccountName"]
        assert ("ServiceAccount", account) in names
        assert template["spec"]["automountServiceAccountToken"] is False


def test_pod_security_standard_restricted(objs: list[Obj]) -> None:
    for _, template in pod_templates(objs):
        pod = template["spec"]["securityContext"]
        assert pod["runAsNonRoot"] and pod["seccompProfile"]["type"] == "RuntimeDefault"
        for c in template["spec"]["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"]
            assert sc["capabilities"]["drop"] == ["ALL"] and sc["runAsNonRoot"]
            assert c["resources"]["limits"] and c["resources"]["requests"]


def test_secrets_are_referenced_not_inlined(objs: list[Obj]) -> None:
    assert not of_kind(objs, "Secret")
    for c in containers(objs):
        env = {e["name"]: e for e in c["env"]}
        assert "secretKeyRef" in env["DATABASE_URL"]["valueFrom"]
        assert "value" not in env["DATABASE_URL"]
        if "REDIS_URL" in env:
            assert "secretKeyRef" in env["REDIS_URL"]["valueFrom"]


def test_worker_grace_exceeds_drain_time(objs: list[Obj]) -> None:
    for workload, template in pod_templates(objs):
        for c in template["spec"]["containers"]:
            env = {e["name"]: e.get("value") for e in c["env"]}
            if "GARRISON_WORKER_SHUTDOWN_GRACE_SECONDS" in env:
                grace = float(env["GARRISON_WORKER_SHUTDOWN_GRACE_SECONDS"] or 0)
                assert template["spec"]["terminationGracePeriodSeconds"] > grace, workload


def test_servers_leave_migrations_to_the_job(objs: list[Obj]) -> None:
    jobs = of_kind(objs, "Job")
    for c in containers(objs):
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["GARRISON_DATABASE_AUTO_MIGRATE"] == ("false" if jobs else "true")
    for job in jobs:
        assert job["spec"]["template"]["spec"]["containers"][0]["args"][0] == "migrate"


@cache
def cli_help(command: str) -> str:
    garrison = [sys.executable, "-m", "garrison", command, "--help"]
    result = subprocess.run(garrison, capture_output=True, text=True, env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_container_args_are_real_cli_flags(objs: list[Obj]) -> None:
    for c in containers(objs):
        command, *args = c["args"]
        for flag in (a for a in args if a.startswith("--")):
            assert flag in cli_help(command), f"garrison {command} has no {flag}"


def test_ingress_routes_to_the_api_service_with_tls(objs: list[Obj]) -> None:
    services = {s["metadata"]["name"]: s for s in of_kind(objs, "Service")}
    for ingress in of_kind(objs, "Ingress"):
        assert ingress["spec"]["tls"][0]["secretName"]
        for rule in ingress["spec"]["rules"]:
            assert rule["host"] in ingress["spec"]["tls"][0]["hosts"]
            backend = rule["http"]["paths"][0]["backend"]["service"]
            ports = {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
            assert backend["port"]["name"] in ports


def test_service_monitors_select_services_by_port(objs: list[Obj]) -> None:
    for monitor in of_kind(objs, "ServiceMonitor"):
        svcs = [
            s
            for s in of_kind(objs, "Service")
            if matches(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
        ]
        assert len(svcs) == 1
        ports = {p["name"] for p in svcs[0]["spec"]["ports"]}
        assert all(e["port"] in ports for e in monitor["spec"]["endpoints"])


def test_rollout_replaces_the_api_deployment(all_renders: dict[str, str]) -> None:
    objs = objects(all_renders["helm-canary"])
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    assert ("Rollout", "garrison-api") in names and ("Deployment", "garrison-api") not in names
    rollout = next(o for o in objs if o["kind"] == "Rollout")
    weights = [
        s["setWeight"] for s in rollout["spec"]["strategy"]["canary"]["steps"] if "setWeight" in s
    ]
    assert weights == [10, 25, 50, 75]
    template = rollout["spec"]["strategy"]["canary"]["analysis"]["templates"][0]["templateName"]
    assert ("AnalysisTemplate", template) in names


def test_production_pins_image_digests(all_renders: dict[str, str]) -> None:
    for render in ("helm-production", "prod"):
        for c in containers(objects(all_renders[render])):
            assert "@sha256:" in c["image"], c["image"]


def test_overlays_render_the_same_workloads(all_renders: dict[str, str]) -> None:
    def workloads(render: str) -> set[tuple[str, str]]:
        objs = objects(all_renders[render])
        return {
            (o["metadata"]["name"], c["name"])
            for o in of_kind(objs, "Deployment")
            for c in o["spec"]["template"]["spec"]["containers"]
        }

    expected = workloads("helm-defaults")
    assert expected == {("garrison-api", "api"), ("garrison-worker", "worker")}
    for overlay in OVERLAYS:
        assert workloads(overlay) == expected
