"""The Helm chart (deploy/helm/pollinate), rendered by helm itself with every example values
file and each autoscaling mode, and every manifest validated against its published schema:
Kubernetes' own (kubernetes-validate's copies of the API's JSON schemas, strict: an unknown
field is an error) and KEDA's CRDs (from KEDA's release). Then what the chart must say: each
consumer group the services declare has a lag trigger on its topics, replicas are bounded by
partitions, readiness is the database's, credentials come only from Secrets, migrations run as
the owner role before the pods change."""

from __future__ import annotations

import ast
import importlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from shared.topics import SERVICES, Topic
from tests.support.infra import ROOT, missing_capability

CHART = ROOT / "deploy" / "helm" / "pollinate"
EXAMPLES = ROOT / "deploy" / "helm" / "examples"
TOOLS = ROOT / ".work" / "tools"
KEDA_VERSION = "v2.21.0"
KUBERNETES_VERSION = "1.33"
KAFKA_EXAMPLES = sorted(EXAMPLES.glob("kafka-*.yaml"))
POSTGRES_EXAMPLES = sorted(EXAMPLES.glob("postgres-*.yaml"))


def helm() -> str:
    found = TOOLS / "bin" / "helm"
    if found.exists():
        return str(found)
    on_path = shutil.which("helm")
    if on_path is None:
        missing_capability("helm is not installed (deploy/test-tools.sh builds it)")
    return on_path


@cache
def rendered(*values: str, mode: str = "keda", sets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The manifests `helm template` renders with these values files (paths), mode and
    `--set`s."""
    answer = subprocess.run(
        [
            helm(),
            "template",
            "pollinate",
            str(CHART),
            "--namespace",
            "pollinate",
            "--kube-version",
            KUBERNETES_VERSION,
            *[arg for path in values for arg in ("--values", path)],
            "--set",
            f"autoscaling.mode={mode}",
            "--set",
            "kafkaAccess.enabled=true",
            *[arg for setting in sets for arg in ("--set", setting)],
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert answer.returncode == 0, answer.stderr
    return [doc for doc in yaml.safe_load_all(answer.stdout) if doc]


def combinations() -> Iterator[tuple[str, str]]:
    for kafka in KAFKA_EXAMPLES:
        for postgres in POSTGRES_EXAMPLES:
            yield str(kafka), str(postgres)


@cache
def keda_schemas() -> dict[str, Any]:
    """KEDA's CRD schemas by kind (its release's config/crd/bases)."""
    folder = TOOLS / "keda" / KEDA_VERSION
    if not folder.exists():
        missing_capability(f"KEDA {KEDA_VERSION} CRDs are not fetched (deploy/test-tools.sh)")
    schemas = {}
    for path in folder.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
        schemas[crd["spec"]["names"]["kind"]] = version["schema"]["openAPIV3Schema"]
    return schemas


def validate(manifest: dict[str, Any]) -> None:
    if manifest["apiVersion"].startswith("keda.sh/"):
        jsonschema.validate(manifest, keda_schemas()[manifest["kind"]])
    else:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(("kafka", "postgres"), list(combinations()))
def test_every_manifest_is_valid_against_its_schema(kafka: str, postgres: str) -> None:
    manifests = rendered(kafka, postgres)
    kinds = {m["kind"] for m in manifests}
    assert {"Deployment", "Service", "Job", "ScaledObject", "NetworkPolicy"} <= kinds
    for manifest in manifests:
        validate(manifest)


@pytest.mark.parametrize("mode", ["hpa", "none"])
def test_the_other_autoscaling_modes_are_valid_too(mode: str) -> None:
    kafka, postgres = next(combinations())
    manifests = rendered(kafka, postgres, mode=mode)
    for manifest in manifests:
        validate(manifest)
    kinds = [m["kind"] for m in manifests]
    assert "ScaledObject" not in kinds
    # The portal has no Kafka lag to follow: it scales on CPU whenever the chart autoscales.
    assert kinds.count("HorizontalPodAutoscaler") == (len(SERVICES) + 1 if mode == "hpa" else 0)


def test_a_broken_manifest_is_refused_by_the_validation() -> None:
    """The validation can fail: an unknown field and a wrong type are caught."""
    deployment = next(m for m in rendered(*next(combinations())) if m["kind"] == "Deployment")
    wrong = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(wrong)
    scaled = next(m for m in rendered(*next(combinations())) if m["kind"] == "ScaledObject")
    bad = {**scaled, "spec": {**scaled["spec"], "maxReplicaCount": "many"}}
    with pytest.raises(jsonschema.ValidationError):
        validate(bad)


def declared_consumer_groups() -> dict[str, dict[str, set[str]]]:
    """What the code declares: per service, each consumer group and the topics it reads (the
    `platform.consumer(name, topics)` calls of its wiring, plus the platform's own)."""
    groups: dict[str, dict[str, set[str]]] = {}

    def calls(path: Path, module: Any) -> Iterator[tuple[str, list[Topic]]]:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "consumer"
                and len(node.args) == 2
            ):
                # The expressions name the module's own constants (a group's name, topics).
                name, topics = (
                    eval(compile(ast.Expression(arg), str(path), "eval"), vars(module))
                    for arg in node.args
                )
                yield str(name), topics

    platform = importlib.import_module("shared.service")
    shared_groups = list(calls(ROOT / "shared" / "service.py", platform))
    for service in SERVICES:
        app = importlib.import_module(f"services.{service}.app")
        declared = list(calls(ROOT / "services" / service / "app.py", app)) + shared_groups
        groups[service] = {
            f"{service}.{name}": {t.name for t in topics} for name, topics in declared
        }
    return groups


def scaled_objects(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        m["spec"]["scaleTargetRef"]["name"]: m for m in manifests if m["kind"] == "ScaledObject"
    }


def test_each_declared_consumer_group_has_a_lag_trigger_on_each_of_its_topics() -> None:
    manifests = rendered(*next(combinations()), sets=("services.deals.crmWriteback=true",))
    scaled = scaled_objects(manifests)
    for service, groups in declared_consumer_groups().items():
        triggers = scaled[f"pollinate-{service}"]["spec"]["triggers"]
        charted: dict[str, set[str]] = {}
        for trigger in triggers:
            assert trigger["type"] == "kafka"
            assert trigger["authenticationRef"]["name"] == f"pollinate-{service}-kafka"
            charted.setdefault(trigger["metadata"]["consumerGroup"], set()).add(
                trigger["metadata"]["topic"]
            )
        assert charted == groups, service


def test_the_crm_writeback_group_scales_deals_only_where_write_back_is_configured() -> None:
    """Found in review: deals creates the group only with a CRM API configured, and KEDA reads
    a group that never committed as lagging by the whole topic (offsetResetPolicy earliest):
    deals sat at its most replicas for good, its real lag hidden."""
    default = scaled_objects(rendered(*next(combinations())))["pollinate-deals"]
    groups = {t["metadata"]["consumerGroup"] for t in default["spec"]["triggers"]}
    assert "deals.crm-writeback" not in groups
    assert "deals.crm-projection" in groups


def test_replicas_are_bounded_by_the_partitions_of_what_a_service_reads() -> None:
    partitions = {
        topic.name: topic.partitions
        for topic in vars(importlib.import_module("shared.topics")).values()
        if isinstance(topic, Topic)
    }
    manifests = rendered(*next(combinations()))
    for manifest in manifests:
        if manifest["kind"] != "ScaledObject":
            continue
        read = {t["metadata"]["topic"] for t in manifest["spec"]["triggers"]}
        assert manifest["spec"]["maxReplicaCount"] <= max(partitions[t] for t in read)
        assert manifest["spec"]["minReplicaCount"] >= 1


def test_pods_are_probed_hardened_and_given_credentials_only_from_secrets() -> None:
    manifests = rendered(*next(combinations()))
    deployments = [
        m
        for m in manifests
        if m["kind"] == "Deployment" and m["metadata"]["name"] != "pollinate-portal"
    ]
    assert sorted(d["metadata"]["name"] for d in deployments) == sorted(
        f"pollinate-{s}" for s in SERVICES
    )
    secret_names = ("URL", "PASSWORD", "SECRET", "KEY", "KEYS")
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["securityContext"]["runAsNonRoot"] is True
        for variable in container["env"]:
            if (
                variable["name"].endswith(secret_names)
                and variable["name"] != "DEALS_PUBLIC_BASE_URL"
            ):
                assert "secretKeyRef" in variable.get("valueFrom", {}), variable["name"]
        names = {v["name"] for v in container["env"]}
        assert {"DATABASE_URL", "KAFKA_SASL_PASSWORD", "TOKEN_VERIFICATION_KEYS"} <= names
        assert "MIGRATION_DATABASE_URL" not in names  # the runtime role only
    signing = [
        d["metadata"]["name"]
        for d in deployments
        if "TOKEN_SIGNING_KEY"
        in {v["name"] for v in d["spec"]["template"]["spec"]["containers"][0]["env"]}
    ]
    assert signing == ["pollinate-onboarding"]  # the one token-issuing place


def test_the_portal_reaches_the_services_over_http_only() -> None:
    """The front end: no database, no Kafka, no migration; the services' URLs by their Service
    names, the verification keys from their Secret, a client of the services' policies."""
    manifests = rendered(*next(combinations()))
    named = {(m["kind"], m["metadata"]["name"]): m for m in manifests}
    deployment = named[("Deployment", "pollinate-portal")]
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]
    assert container["command"] == ["python", "-m", "services.portal"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {v["name"]: v for v in container["env"]}
    assert "DATABASE_URL" not in env
    assert not [name for name in env if name.startswith("KAFKA_")]
    assert "secretKeyRef" in env["TOKEN_VERIFICATION_KEYS"]["valueFrom"]
    for service in SERVICES:
        # Found in review: the URLs named the pods' port, which the Services do not expose, so
        # every portal page waited out its backend timeout on Kubernetes.
        url = env[f"PORTAL_{service.upper()}_URL"]["value"]
        host, port = url.removeprefix("http://").split(":")
        assert host == f"pollinate-{service}"
        exposed = named[("Service", host)]["spec"]["ports"]
        assert int(port) in {p["port"] for p in exposed}
    assert pod["metadata"]["labels"]["pollinate.io/client"] == "true"
    assert ("Job", "pollinate-portal-migrate") not in named
    assert ("HorizontalPodAutoscaler", "pollinate-portal") in named
    policy = named[("NetworkPolicy", "pollinate-portal")]
    egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert egress_ports == {53, 8000}


def test_every_service_keeps_its_outbox_compressed_unless_told_not_to(tmp_path: Path) -> None:
    """One value for every service's pods: off for a rolling upgrade from a version before the
    outbox codec (an older relay would send the compressed bytes), on otherwise."""

    def compression(*values: str) -> dict[str, str]:
        return {
            m["metadata"]["name"]: env["value"]
            for m in rendered(*values)
            if m["kind"] == "Deployment" and m["metadata"]["name"] != "pollinate-portal"
            for env in m["spec"]["template"]["spec"]["containers"][0]["env"]
            if env["name"] == "OUTBOX_COMPRESSION"
        }

    default = next(combinations())
    assert compression(*default) == {f"pollinate-{s}": "true" for s in SERVICES}
    upgrading = tmp_path / "upgrading.yaml"
    upgrading.write_text("outbox: {compression: false}\n")
    assert compression(*default, str(upgrading)) == {f"pollinate-{s}": "false" for s in SERVICES}


def test_migrations_run_as_the_owner_before_the_pods_change() -> None:
    jobs = [m for m in rendered(*next(combinations())) if m["kind"] == "Job"]
    migrations = {
        j["metadata"]["name"]: j for j in jobs if j["metadata"]["name"].endswith("-migrate")
    }
    assert sorted(migrations) == sorted(f"pollinate-{s}-migrate" for s in SERVICES)
    for name, job in migrations.items():
        assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
        [container] = job["spec"]["template"]["spec"]["containers"]
        service = name.removeprefix("pollinate-").removesuffix("-migrate")
        assert container["command"] == ["python", "-m", f"services.{service}", "migrate"]
        [url] = container["env"]
        assert url["name"] == "MIGRATION_DATABASE_URL"
        assert url["valueFrom"]["secretKeyRef"]["key"] == "migration-database-url"


@pytest.mark.parametrize("kafka", KAFKA_EXAMPLES, ids=lambda p: p.stem)
def test_topics_are_laid_out_for_a_cluster_and_the_access_job_trusts_the_brokers_ca(
    kafka: Path,
) -> None:
    """Found in review: the kafka-access Job created topics with one replica and set
    min.insync.replicas back to 1 on every upgrade (no layout was passed), and with a CA
    Secret it neither mounted nor named the CA, so TLS failed and the install with it."""
    manifests = rendered(str(kafka), str(POSTGRES_EXAMPLES[0]))
    [job] = [m for m in manifests if m["metadata"]["name"] == "pollinate-kafka-access"]
    deployments = [m for m in manifests if m["kind"] == "Deployment"]
    pod_specs = [job["spec"]["template"]["spec"]] + [
        d["spec"]["template"]["spec"] for d in deployments
    ]
    ca_secret = yaml.safe_load(kafka.read_text())["kafka"].get("caSecret")
    for pod in pod_specs:
        for container in pod["containers"]:
            env = {v["name"]: v.get("value") for v in container["env"]}
            if "KAFKA_BOOTSTRAP_SERVERS" not in env:
                continue  # the portal reaches no broker
            assert env["KAFKA_TOPIC_REPLICATION_FACTOR"] == "3"
            assert env["KAFKA_TOPIC_MIN_INSYNC_REPLICAS"] == "2"
            if ca_secret:
                assert env["KAFKA_SSL_CAFILE"] == "/etc/pollinate/kafka-ca/ca.crt"
                mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
                assert mounts["kafka-ca"] == "/etc/pollinate/kafka-ca"
                volumes = {v["name"]: v for v in pod["volumes"]}
                assert volumes["kafka-ca"]["secret"]["secretName"] == ca_secret
            else:
                assert "KAFKA_SSL_CAFILE" not in env


def test_a_stopping_pod_keeps_serving_until_its_endpoints_are_gone() -> None:
    """Found in review: no pod waited before stopping, so a rollout refused the connections
    kube-proxy still sent it; the grace period covers the wait and both stops."""
    for manifest in rendered(*next(combinations())):
        if manifest["kind"] != "Deployment":
            continue
        pod = manifest["spec"]["template"]["spec"]
        [container] = pod["containers"]
        wait = container["lifecycle"]["preStop"]["exec"]["command"]
        assert wait == ["python", "-c", "import time; time.sleep(5)"]
        assert pod["terminationGracePeriodSeconds"] >= 5 + 10 + 15


def test_a_missing_bootstrap_server_is_refused_with_a_message() -> None:
    answer = subprocess.run(
        [helm(), "template", "pollinate", str(CHART), "--kube-version", KUBERNETES_VERSION],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ},
    )
    assert answer.returncode != 0
    assert "kafka.bootstrapServers is required" in answer.stderr


def test_helm_lint_passes() -> None:
    kafka, postgres = next(combinations())
    answer = subprocess.run(
        [
            helm(),
            "lint",
            str(CHART),
            "--strict",
            "--kube-version",
            KUBERNETES_VERSION,
            "--values",
            kafka,
            "--values",
            postgres,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert answer.returncode == 0, answer.stdout + answer.stderr
