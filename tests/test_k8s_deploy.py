"""The Kubernetes deployment files (deploy/), checked as far as a machine without a cluster, helm
or a container runtime allows. None of this has run on a cluster (docs/deployment.md says so):

- deploy/k8s/node.yaml against Kubernetes' own resource schemas (kubernetes-validate, strict:
  unknown fields refused), plus what those schemas cannot see: every selector matches its pod
  labels, every Service targets a named container port, every ConfigMap/Secret/claim a pod uses
  is defined here or is one of the named outside objects, every command is one the `coordinator`
  CLI parses, and the ConfigMap's variables are settings the node accepts;
- deploy/helm/values.yaml against the parts of Dagster's chart values schema it sets (transcribed
  below from dagster-io/dagster helm/dagster/values.schema.json, commit bdb8547f), and its code
  server arguments against `dagster api grpc`'s own option parser;
- deploy/celery.yaml and deploy/workspace_code_server.yaml against Dagster's config types.
"""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NODE = ROOT / "deploy" / "k8s" / "node.yaml"
VALUES = ROOT / "deploy" / "helm" / "values.yaml"
# Objects node.yaml refers to but does not define: credentials are created by hand
# (kubectl create secret), the instance ConfigMap by Dagster's Helm release.
OUTSIDE = {("Secret", "coordinator-secrets"), ("Secret", "dagster-postgresql-secret"), ("ConfigMap", "dagster-instance")}


def node_documents() -> list[dict]:
    return [doc for doc in yaml.safe_load_all(NODE.read_text()) if doc]


def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in docs if d["kind"] == "Deployment"]


def references(spec: dict) -> set[tuple[str, str]]:
    found = set()
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            found.add(("ConfigMap", volume["configMap"]["name"]))
        if "persistentVolumeClaim" in volume:
            found.add(("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]))
    for container in spec["containers"]:
        for source in container.get("envFrom", []):
            for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if key in source:
                    found.add((kind, source[key]["name"]))
        for var in container.get("env", []):
            for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                if key in var.get("valueFrom", {}):
                    found.add((kind, var["valueFrom"][key]["name"]))
    return found


# ---- the node's services -----------------------------------------------------------------------


def test_the_node_manifests_pass_kubernetes_resource_schemas():
    import kubernetes_validate

    docs = node_documents()
    assert {d["kind"] for d in docs} == {"ConfigMap", "PersistentVolumeClaim", "Deployment", "Service"}
    for doc in docs:
        kubernetes_validate.validate(doc, "1.37.0", strict=True)
    broken = copy.deepcopy(next(d for d in docs if d["kind"] == "Deployment"))
    broken["spec"]["template"]["spec"]["containers"][0]["port"] = 8000  # a typo for `ports`
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.37.0", strict=True)


def test_the_node_manifests_hang_together():
    docs = node_documents()
    defined = {(d["kind"], d["metadata"]["name"]) for d in docs}
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == {"coordinator-api", "coordinator-models", "coordinator-feeds"}
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
    for name, spec in pod_specs(docs):
        assert references(spec) <= defined | OUTSIDE, (name, references(spec) - defined - OUTSIDE)
        mounted = {m["name"] for c in spec["containers"] for m in c.get("volumeMounts", [])}
        assert mounted == {v["name"] for v in spec.get("volumes", [])}, name
    for service in (d for d in docs if d["kind"] == "Service"):
        [target] = [d for d in deployments.values() if service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        ports = {p["name"]: p["containerPort"] for c in target["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports), service["metadata"]["name"]
    # Exactly one listener and one runner write: never two pods of them during a rollout.
    for name in ("coordinator-feeds", "coordinator-models"):
        assert deployments[name]["spec"]["replicas"] == 1 and deployments[name]["spec"]["strategy"]["type"] == "Recreate"
    # The model runner the code location calls is the Service in front of the runner.
    env = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    models = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "coordinator-models")
    assert env["MODEL_RUNNER_URL"] == f"http://coordinator-models:{models['spec']['ports'][0]['port']}"


def test_the_node_commands_and_settings_are_the_projects():
    from api.settings import ApiSettings
    from coordinator_dagster.cli.main import build_parser
    from coordinator_dagster.settings import load_settings, read_settings

    docs = node_documents()
    parser = build_parser()
    commands = {name: spec["containers"][0]["command"] for name, spec in pod_specs(docs)}
    for name, command in commands.items():
        assert command[0] == "coordinator", name
        parser.parse_args(command[1:])  # argparse exits on an unknown subcommand or option
    with pytest.raises(SystemExit):
        parser.parse_args(["models", "serve", "--hots", "0.0.0.0"])
    env = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    settings = load_settings(env)
    assert str(settings.home) == "/data/coordinator" and settings.feed_live and settings.model_runner_url
    api = read_settings(ApiSettings, env)
    assert api.dagster_graphql_url.startswith("http://dagster-dagster-webserver")
    # The lake is mounted where COORDINATOR_HOME points, in every pod.
    for name, spec in pod_specs(docs):
        assert {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]} >= {env["COORDINATOR_HOME"]}, name


# ---- Dagster's Helm chart ----------------------------------------------------------------------

REF = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
IMAGE = {
    "type": "object",
    "required": ["repository", "pullPolicy"],
    "properties": {"repository": {"type": "string"}, "tag": {"type": ["string", "integer", "null"]}, "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]}},
}
# The chart's schema for the sections deploy/helm/values.yaml sets. Where the chart's schema
# refers to Kubernetes' own definitions (volumes, resources), only the type is checked here.
CHART_SCHEMA = {
    "type": "object",
    "propertyNames": {"enum": [
        "dagsterWebserver", "dagster-user-deployments", "postgresql", "generatePostgresqlPasswordSecret", "generateCeleryConfigSecret",
        "rabbitmq", "redis", "flower", "ingress", "imagePullSecrets", "computeLogManager", "scheduler", "runLauncher", "pythonLogs",
        "dagsterDaemon", "busybox", "migrate", "telemetry", "serviceAccount", "global", "retention", "additionalInstanceConfig",
    ]},
    "properties": {
        "dagster-user-deployments": {
            "type": "object",
            "properties": {
                "enabled": {"type": "boolean"},
                "deployments": {"type": "array", "minItems": 1, "items": {
                    "type": "object",
                    "required": ["name", "image", "port"],
                    "propertyNames": {"enum": [
                        "name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns", "deploymentNamespace", "port", "env",
                        "envConfigMaps", "envSecrets", "annotations", "nodeSelector", "affinity", "tolerations", "podSecurityContext", "securityContext",
                        "resources", "livenessProbe", "readinessProbe", "startupProbe", "labels", "volumeMounts", "volumes", "schedulerName",
                        "initContainers", "sidecarContainers",
                    ]},
                    "properties": {
                        "name": {"type": "string"}, "image": IMAGE, "port": {"type": "integer"},
                        "dagsterApiGrpcArgs": {"type": "array", "items": {"type": "string"}},
                        "includeConfigInLaunchedRuns": {"type": "object", "required": ["enabled"], "properties": {"enabled": {"type": "boolean"}}},
                        "envConfigMaps": {"type": "array", "items": REF}, "envSecrets": {"type": "array", "items": REF},
                        "volumes": {"type": "array", "items": {"type": "object"}}, "volumeMounts": {"type": "array", "items": {"type": "object"}},
                        "resources": {"type": "object"},
                    },
                }},
            },
        },
        "runLauncher": {
            "type": "object",
            "required": ["type", "config"],
            "additionalProperties": False,
            "properties": {
                "type": {"enum": ["CeleryK8sRunLauncher", "K8sRunLauncher", "CustomRunLauncher"]},
                "config": {"type": "object", "properties": {"k8sRunLauncher": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "image": {"anyOf": [IMAGE, {"type": "null"}]}, "imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                        "jobNamespace": {"type": ["string", "null"]}, "loadInclusterConfig": {"type": "boolean"}, "kubeconfigFile": {"type": ["string", "null"]},
                        "envConfigMaps": {"type": "array", "items": REF}, "envSecrets": {"type": "array", "items": REF},
                        "envVars": {"type": "array", "items": {"type": "string"}},
                        "volumeMounts": {"type": "array", "items": {"type": "object"}}, "volumes": {"type": "array", "items": {"type": "object"}},
                        "labels": {"type": ["object", "null"]}, "failPodOnRunFailure": {"type": ["boolean", "null"]}, "resources": {"type": ["object", "null"]},
                        "schedulerName": {"type": ["string", "null"]}, "securityContext": {"type": ["object", "null"]}, "runK8sConfig": {"type": ["object", "null"]},
                    },
                }}},
            },
            "if": {"properties": {"type": {"const": "K8sRunLauncher"}}},
            "then": {"properties": {"config": {"required": ["k8sRunLauncher"]}}},
        },
        "postgresql": {
            "type": "object",
            "propertyNames": {"enum": ["image", "enabled", "postgresqlHost", "postgresqlUsername", "postgresqlPassword", "postgresqlDatabase", "postgresqlParams", "postgresqlScheme", "service"]},
            "properties": {
                "enabled": {"type": "boolean"}, "postgresqlHost": {"type": "string"}, "postgresqlUsername": {"type": "string"},
                "postgresqlDatabase": {"type": "string"}, "service": {"type": "object", "required": ["port"], "properties": {"port": {"type": "integer"}}},
            },
        },
        "generatePostgresqlPasswordSecret": {"type": "boolean"},
        "dagsterDaemon": {
            "type": "object",
            "properties": {
                "enabled": {"type": "boolean"},
                "sensors": {"type": "object", "required": ["useThreads"], "properties": {"useThreads": {"type": "boolean"}, "numWorkers": {"type": ["integer", "null"]}}},
                "runCoordinator": {
                    "type": "object",
                    "required": ["enabled", "type", "config"],
                    "additionalProperties": False,
                    "properties": {
                        "enabled": {"type": "boolean"},
                        "type": {"enum": ["QueuedRunCoordinator", "CustomRunCoordinator"]},
                        "config": {"type": "object", "properties": {"queuedRunCoordinator": {"type": "object", "properties": {"maxConcurrentRuns": {"type": ["integer", "null"]}}}}},
                    },
                },
            },
        },
        "dagsterWebserver": {"type": "object", "properties": {"replicaCount": {"type": "integer"}}},
        "telemetry": {"type": "object", "properties": {"enabled": {"type": "boolean"}}},
    },
}


def test_the_helm_values_fit_dagsters_chart_schema():
    values = yaml.safe_load(VALUES.read_text())
    jsonschema.validate(values, CHART_SCHEMA)
    for bad in (
        {**values, "runLauncher": {"type": "K8sRunLauncher", "config": {"k8sRunLauncher": {"loadInClusterConfig": True}}}},  # misspelt key
        {**values, "dagsterWebServer": {"replicaCount": 1}},  # not a chart key
        {**values, "runLauncher": {"type": "K8sRunLauncher", "config": {}}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, CHART_SCHEMA)


def test_the_helm_values_run_this_projects_code_location_from_the_nodes_settings():
    from dagster._cli.api import grpc_command

    values = yaml.safe_load(VALUES.read_text())
    [deployment] = values["dagster-user-deployments"]["deployments"]
    context = grpc_command.make_context("grpc", list(deployment["dagsterApiGrpcArgs"]))  # click refuses unknown options
    assert context.params["module_name"] == "coordinator_dagster.code_location"
    # Run pods and the code server see the node's settings and the lake, as the services do.
    node = {(d["kind"], d["metadata"]["name"]) for d in node_documents()} | OUTSIDE
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    for holder in (deployment, launcher):
        assert {("ConfigMap", r["name"]) for r in holder["envConfigMaps"]} | {("Secret", r["name"]) for r in holder["envSecrets"]} <= node
        claims = {v["persistentVolumeClaim"]["claimName"] for v in holder["volumes"]}
        assert {("PersistentVolumeClaim", claim) for claim in claims} <= node
        assert {m["mountPath"] for m in holder["volumeMounts"]} == {"/data/coordinator"}
    assert values["postgresql"]["enabled"] is False and values["generatePostgresqlPasswordSecret"] is False


# ---- one-machine files -------------------------------------------------------------------------


def test_the_celery_and_workspace_files_fit_dagsters_config_types(monkeypatch):
    from dagster._config import process_config
    from dagster._core.workspace.config_schema import process_workspace_config
    from dagster_celery.cli import get_validated_config

    monkeypatch.setenv("DAGSTER_CELERY_BROKER_URL", "redis://broker:6379/0")
    monkeypatch.setenv("DAGSTER_CELERY_BACKEND_URL", "redis://broker:6379/1")
    config = get_validated_config(str(ROOT / "deploy" / "celery.yaml"))
    assert config["broker"] == "redis://broker:6379/0" and config["backend"] == "redis://broker:6379/1"
    from coordinator_dagster.code_location_celery import CELERY_EXECUTOR

    assert process_config(CELERY_EXECUTOR.config_schema.config_type, {}).success  # everything comes from the environment
    workspace = yaml.safe_load((ROOT / "deploy" / "workspace_code_server.yaml").read_text())
    monkeypatch.setenv("DAGSTER_CODE_SERVER_HOST", "code.internal")
    monkeypatch.setenv("DAGSTER_CODE_SERVER_PORT", "4266")
    result = process_workspace_config(workspace)
    assert result.success, result.errors
    assert result.value["load_from"][0]["grpc_server"] == {"host": "code.internal", "port": 4266, "location_name": "coordinator"}
