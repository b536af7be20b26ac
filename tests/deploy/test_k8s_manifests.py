"""deploy/k8s: offline schema checks of every manifest (Kubernetes' own schemas via kubernetes-validate,
KEDA's CRD schema for the ScaledObject), the kustomize layout (one autoscaler per overlay) and what the
manifests promise: a scheduler, probes that a Redis outage does not turn into restarts, pinned images,
secrets as files."""

from __future__ import annotations

import configparser
import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT

K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("keda", "hpa")
KEDA_CRD = Path(__file__).parent / "data" / "keda.sh_scaledobjects.yaml"
KUBECTL = shutil.which("kubectl")
# The oldest Kubernetes still maintained when this was written; the manifests use nothing newer.
KUBERNETES_VERSION = "1.32"
AUTOSCALERS = {"ScaledObject", "HorizontalPodAutoscaler"}
Doc = dict[str, Any]


# Helm values of prometheus-adapter, for the HPA overlay: not a manifest (nothing applies it with kubectl).
ADAPTER_VALUES = K8S / "hpa" / "prometheus-adapter-values.yaml"


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml" and p != ADAPTER_VALUES)


def autoscaler_queries() -> dict[str, str]:
    """The PromQL each overlay's autoscaler asks Prometheus: KEDA's trigger, prometheus-adapter's rule."""
    keda = by_key(render(K8S / "keda"))[("ScaledObject", "nodedrop-worker")]["spec"]["triggers"][0]["metadata"]
    adapter = yaml.safe_load(ADAPTER_VALUES.read_text())["rules"]["external"][0]
    return {"keda": keda["query"], "hpa": adapter["metricsQuery"]}


def render(folder: Path) -> list[Doc]:
    """What ``kubectl apply -k folder`` applies, for the subset of kustomize these files use (resources and
    images); test_kubectl_kustomize_agrees checks it against the real kustomize where kubectl exists."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    docs: list[Doc] = []
    for resource in kustomization["resources"]:
        path = (folder / resource).resolve()
        docs += render(path) if path.is_dir() else [d for d in yaml.safe_load_all(path.read_text()) if d]
    for image in kustomization.get("images", []):
        for container in _containers(docs):
            name, _, _tag = container["image"].partition(":")
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image['newTag']}"
    return docs


def _containers(docs: list[Doc]) -> list[Doc]:
    return [c for d in docs if d["kind"] in ("Deployment", "StatefulSet")
            for c in d["spec"]["template"]["spec"]["containers"]]


def by_key(docs: list[Doc]) -> dict[tuple[str, str], Doc]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


# -- schemas -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_manifest_matches_its_schema(path: Path) -> None:
    import kubernetes_validate

    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs
    for doc in docs:
        if doc["kind"] == "ScaledObject":
            keda_validator().validate(doc)
        else:
            # strict: an unknown or misspelt field is an error, not silently dropped by the API server.
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_schema_checks_reject_broken_manifests() -> None:
    """The two checks above can fail: a misspelt field and a wrong type in each kind of schema."""
    import kubernetes_validate

    docs = by_key(render(K8S / "keda"))
    worker = copy.deepcopy(docs[("Deployment", "nodedrop-worker")])
    worker["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {"exec": {"command": ["true"]}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, KUBERNETES_VERSION, strict=True)
    scaled = docs[("ScaledObject", "nodedrop-worker")]
    for mutate in (lambda s: s["spec"].update(maxReplicaCount="20"),
                   lambda s: s["spec"].update(pollingIntervall=15),
                   lambda s: s["spec"].pop("scaleTargetRef"),
                   lambda s: s["spec"]["triggers"][0].pop("type")):
        broken = copy.deepcopy(scaled)
        mutate(broken)
        with pytest.raises(jsonschema.ValidationError):
            keda_validator().validate(broken)


def keda_validator() -> jsonschema.Draft7Validator:
    crd = next(d for d in yaml.safe_load_all(KEDA_CRD.read_text()) if d)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    schema = _closed(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
    # The API server fills these in; the CRD's schema leaves them open.
    schema["properties"]["apiVersion"] = {"const": f"{crd['spec']['group']}/v1alpha1"}
    schema["properties"]["kind"] = {"const": crd["spec"]["names"]["kind"]}
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata", "spec"})
    return jsonschema.Draft7Validator(schema)


def _closed(schema: Doc) -> Doc:
    """Refuse unknown fields where the CRD lists the known ones, as `kubectl apply --validate=strict` does
    (the API server would otherwise prune them silently)."""
    if isinstance(schema, dict):
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        for value in schema.values():
            if isinstance(value, dict):
                _closed(value)
            elif isinstance(value, list):
                for item in value:
                    _closed(item)
    return schema


# -- layout --------------------------------------------------------------------------------------


def test_one_autoscaler_per_overlay_and_none_reachable_by_apply_f() -> None:
    # `kubectl apply -f deploy/k8s/` (not recursive) must find nothing, rather than both autoscalers.
    assert not list(K8S.glob("*.yaml")) and not list(K8S.glob("*.yml")) and not list(K8S.glob("*.json"))
    assert not AUTOSCALERS & {d["kind"] for d in render(K8S / "base")}
    found = {}
    for overlay in OVERLAYS:
        docs = render(K8S / overlay)
        scalers = [d for d in docs if d["kind"] in AUTOSCALERS]
        assert len(scalers) == 1, (overlay, [d["kind"] for d in scalers])
        assert scalers[0]["spec"]["scaleTargetRef"]["name"] == "nodedrop-worker"
        found[overlay] = scalers[0]["kind"]
        # Same base in both: only the autoscaler differs.
        assert sorted(by_key(docs)) == sorted(by_key(render(K8S / "base")) | by_key(scalers))
    assert found == {"keda": "ScaledObject", "hpa": "HorizontalPodAutoscaler"}
    # Every manifest file is part of some overlay: none is left for a stray `apply -f`.
    used = {Path(r).name for o in ("base", *OVERLAYS)
            for r in yaml.safe_load((K8S / o / "kustomization.yaml").read_text())["resources"]}
    assert {p.name for p in manifest_files()} <= used


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
@pytest.mark.parametrize("overlay", ("base", *OVERLAYS))
def test_kubectl_kustomize_agrees(overlay: str) -> None:
    done = subprocess.run([KUBECTL, "kustomize", str(K8S / overlay)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    real = by_key([d for d in yaml.safe_load_all(done.stdout) if d])
    ours = by_key(render(K8S / overlay))
    assert real.keys() == ours.keys()
    images = lambda docs: sorted(c["image"] for c in _containers(list(docs.values())))  # noqa: E731
    assert images(real) == images(ours)


# -- what the manifests promise ----------------------------------------------------------------


def test_a_scheduler_runs_as_in_compose() -> None:
    docs = by_key(render(K8S / "keda"))
    scheduler = docs[("Deployment", "nodedrop-scheduler")]["spec"]
    container = scheduler["template"]["spec"]["containers"][0]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["nodedrop-scheduler"]
    assert " ".join(container["args"]) == compose["command"] == "nodedrop-rq scheduler"
    assert scheduler["replicas"] >= 1
    assert {"configMapRef": {"name": "nodedrop-config"}} in container["envFrom"]
    assert _env(container)["REDIS_URL_FILE"]


def test_images_are_pinned_to_the_package_version() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    release = config["metadata"]["version"]
    for overlay in ("base", *OVERLAYS):
        for container in _containers(render(K8S / overlay)):
            name, _, tag = container["image"].partition(":")
            assert tag and tag != "latest", container["image"]
            if name == "nodedrop-rq":
                assert tag == release, (container["name"], tag, release)
                assert container["imagePullPolicy"] == "IfNotPresent"


def test_probes_liveness_never_depends_on_redis() -> None:
    docs = by_key(render(K8S / "keda"))

    def container(name: str) -> Doc:
        return docs[("Deployment", name)]["spec"]["template"]["spec"]["containers"][0]

    api, exporter, worker = container("nodedrop-api"), container("nodedrop-exporter"), container("nodedrop-worker")
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/healthz/readiness"
    assert exporter["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert exporter["readinessProbe"]["httpGet"]["path"] == "/healthz/readiness"
    # Workers: the pool's health port (test_worker_health_port.py stops Redis under it).
    assert worker["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert worker["readinessProbe"]["httpGet"]["path"] == "/healthz/readiness"
    health = next(p for p in worker["ports"] if p["name"] == worker["livenessProbe"]["httpGet"]["port"])
    assert _env(worker)["NODEDROP_WORKER_HEALTH_PORT"] == str(health["containerPort"])
    for probed in (api, exporter, worker):
        for probe in ("livenessProbe", "readinessProbe"):
            port = probed[probe]["httpGet"]["port"]
            assert port in {p["name"] for p in probed["ports"]}, (probed["name"], probe, port)


def test_secrets_come_from_files_and_the_token_only_where_needed() -> None:
    docs = by_key(render(K8S / "keda"))
    secret = docs[("Secret", "nodedrop-secrets")]
    for kind, name in docs:
        if kind != "Deployment" or name == "redis":
            continue
        spec = docs[(kind, name)]["spec"]["template"]["spec"]
        container = spec["containers"][0]
        # No secretRef in envFrom: secret values would sit in the environment of every child process.
        assert all("secretRef" not in source for source in container.get("envFrom", [])), name
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container.get("volumeMounts", [])}
        env = _env(container)
        files = {k: v for k, v in env.items() if k.endswith("_FILE")}
        assert "REDIS_URL_FILE" in files and "REDIS_URL" not in env, name
        assert ("NODEDROP_API_TOKEN_FILE" in files) == (name == "nodedrop-api"), name
        for variable, path in files.items():
            folder, _, key = path.rpartition("/")
            source = mounts[folder]["secret"]
            assert source["secretName"] == "nodedrop-secrets"
            assert {"key": key, "path": key} in source["items"]
            assert key == variable.removesuffix("_FILE") and key in secret["stringData"]
        assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsUser"]


def test_worker_grace_exceeds_the_job_timeout_and_keda_matches_the_config() -> None:
    docs = by_key(render(K8S / "keda"))
    worker = docs[("Deployment", "nodedrop-worker")]["spec"]["template"]["spec"]
    env = _env(worker["containers"][0])
    assert worker["terminationGracePeriodSeconds"] > int(env["EXECUTION_JOB_TIMEOUT"])
    assert worker["containers"][0]["args"] == ["nodedrop-rq", "worker"]
    config = docs[("ConfigMap", "nodedrop-config")]["data"]
    assert config["EXECUTION_JOB_TIMEOUT"] == env["EXECUTION_JOB_TIMEOUT"]
    trigger = docs[("ScaledObject", "nodedrop-worker")]["spec"]["triggers"][0]["metadata"]
    # The metric counts worker containers already (it divides by EXECUTION_WORKER_CONCURRENCY).
    assert trigger["threshold"] == "1"
    assert "EXECUTION_TARGET_WAIT_SECONDS" in config
    for overlay, query in autoscaler_queries().items():
        compact = query.replace(" ", "")
        # The latency-based value, not the depth rule; for the queue the workers serve.
        assert "nodedrop_workers_desired{" in compact and "_by_depth" not in compact, (overlay, query)
        assert f'queue="{config["EXECUTION_QUEUE"]}"' in compact, (overlay, query)
        # A second exporter replica must not double the workers: no sum over the replicas' series.
        assert "sum(" not in compact and "maxby(queue)(" in compact, (overlay, query)
    hpa = by_key(render(K8S / "hpa"))[("HorizontalPodAutoscaler", "nodedrop-worker")]["spec"]
    adapter = yaml.safe_load(ADAPTER_VALUES.read_text())["rules"]["external"][0]
    assert hpa["metrics"][0]["external"]["metric"]["name"] == adapter["name"]["as"] == "nodedrop_workers_desired"
    api = docs[("Deployment", "nodedrop-api")]["spec"]["template"]["spec"]["containers"][0]
    assert api["args"][-2:] == ["--workers", "0"]


def _env(container: Doc) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}
