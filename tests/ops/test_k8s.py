"""ops/k8s: the Kubernetes manifests, validated offline against Kubernetes' own schemas (strict: an
unknown field fails), and the facts between objects, the image and the settings that no schema checks."""

from __future__ import annotations

import dataclasses
import posixpath
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import orjson
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from stream.settings import ConfigError, Settings, describe
from stream.worker.learnerproc import STOP_TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "ops" / "k8s"
SETTINGS = {name for name, _, _ in describe()}
SECRET_SETTINGS = {"STREAM_" + f.name.upper() for f in dataclasses.fields(Settings) if f.metadata["secret"]}
# The oldest Kubernetes the manifests are meant for, and the newest the installed schemas know.
VERSIONS = ("1.28.0", kubernetes_validate.latest_version())
# Custom resources: no schema in kubernetes-validate; checked field by field below.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
# In ops/k8s but not in kustomization.yaml (said why there).
NOT_APPLIED = {"secret.example.yaml", "servicemonitor.yaml"}
WEB_PORT = 6066
MANIFESTS = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def load(name: str, directory: Path = K8S) -> dict[str, Any]:
    """The one object of ``<directory>/<name>`` (``ops/k8s`` by default)."""
    (doc,) = [d for d in yaml.safe_load_all((directory / name).read_text()) if d]
    return doc


def rendered(directory: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize <directory>`` renders."""
    kubectl = shutil.which("kubectl")  # `make sysdeps` installs it (Debian's kubernetes-client)
    assert kubectl is not None, "kubectl is not installed: run `make sysdeps`"
    res = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return [d for d in yaml.safe_load_all(res.stdout) if d]


CORE_MANIFESTS = [n for n in MANIFESTS if (load(n)["apiVersion"], load(n)["kind"]) not in CUSTOM_KINDS]


def pod_spec() -> dict[str, Any]:
    return load("deployment.yaml")["spec"]["template"]["spec"]


def worker() -> dict[str, Any]:
    (container,) = [c for c in pod_spec()["containers"] if c["name"] == "worker"]
    return container


def all_containers(spec: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The init containers and containers of a pod spec (the workers' by default)."""
    spec = pod_spec() if spec is None else spec
    return [*spec.get("initContainers", []), *spec["containers"]]


def configmap_env() -> dict[str, str]:
    return load("configmap.yaml")["data"]


def image_instructions() -> dict[str, str]:
    """The Dockerfile's ``worker`` stage: its ENV variables, ENTRYPOINT and EXPOSE."""
    stage: dict[str, str] = {}
    inside = False
    for ins in DockerfileParser(path=str(ROOT / "Dockerfile")).structure:
        if ins["instruction"] == "FROM":
            inside = ins["value"].endswith(" AS worker")
        elif inside and ins["instruction"] == "ENV":
            stage.update(pair.partition("=")[::2] for pair in shlex.split(ins["value"]))
        elif inside and ins["instruction"] in ("ENTRYPOINT", "EXPOSE"):
            stage[ins["instruction"]] = ins["value"]
    return stage


def quantity(value: str | int) -> float:
    """A Kubernetes CPU or memory quantity as a number (cores, bytes).

    >>> quantity("500m"), quantity("2"), quantity("512Mi"), quantity("1Gi") / quantity("512Mi")
    (0.5, 2.0, 536870912.0, 2.0)
    """
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value))
    assert match, f"not a quantity: {value!r}"
    return float(match[1]) * units.get(match[2], 1) if match[2] else float(match[1])


def port_number(port: int | str) -> int:
    """A probe's or Service's target port: a number, or the name of one of the worker's ports."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in worker()["ports"] if p["name"] == port]
    return number


def is_under(path: str, directory: str) -> bool:
    """
    >>> is_under("/var/lib/x/cache", "/var/lib/x"), is_under("/var/lib/xy", "/var/lib/x")
    (True, False)
    """
    return posixpath.commonpath([path, directory]) == directory


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", CORE_MANIFESTS)
def test_manifests_validate_strictly_against_the_kubernetes_schemas(name, version):
    """Every manifest of a core kind (the ServiceMonitor, a custom resource with no schema here, is
    checked by test_service_monitor_scrapes_the_service)."""
    doc = load(name)
    # Raises ValidationError on a wrong or unknown field, SchemaNotFoundError on an unknown kind.
    kubernetes_validate.validate(doc, version, strict=True)


def test_kustomization_applies_every_core_manifest_and_says_what_it_leaves_out():
    text = (K8S / "kustomization.yaml").read_text()
    kustomization = yaml.safe_load(text)
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["namespace"] == load("servicemonitor.yaml")["metadata"]["namespace"]
    assert load("secret.example.yaml")["metadata"]["namespace"] == kustomization["namespace"]
    assert sorted(kustomization["resources"]) == sorted(set(MANIFESTS) - NOT_APPLIED)
    for name in NOT_APPLIED:
        assert name in text  # a comment says why it is not applied


def test_kustomize_renders_the_manifests_into_valid_objects():
    docs = rendered(K8S)
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service"]
    for doc in docs:
        assert doc["metadata"]["namespace"] == "interest-stream"
        kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)


def test_selectors_select_the_pods():
    deployment = load("deployment.yaml")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = {
        "Deployment": deployment["spec"]["selector"]["matchLabels"],
        "Service": load("service.yaml")["spec"]["selector"],
        "PodDisruptionBudget": load("pdb.yaml")["spec"]["selector"]["matchLabels"],
        **{
            f"topologySpreadConstraints[{i}]": c["labelSelector"]["matchLabels"]
            for i, c in enumerate(pod_spec().get("topologySpreadConstraints", []))
        },
    }
    for owner, selector in selectors.items():
        assert selector and selector.items() <= pod_labels.items(), owner
    assert deployment["spec"]["replicas"] == 2
    assert load("pdb.yaml")["spec"]["maxUnavailable"] == 1


def test_the_worker_runs_the_image_on_its_web_port_with_probes_on_it():
    image = image_instructions()
    container = worker()
    assert container["image"].startswith("interest-stream:")
    assert orjson.loads(image["ENTRYPOINT"]) == ["interest-stream"] and container["args"] == ["worker"]
    assert container.get("command") is None  # the image's entrypoint runs
    assert int(image["EXPOSE"]) == WEB_PORT
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": WEB_PORT}
    probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert {kind: probe["path"] for kind, probe in probes.items()} == {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/ready",
    }
    assert {port_number(probe["port"]) for probe in probes.values()} == {WEB_PORT}
    # Joining the group and loading the model take 10-40 s: no liveness failure may restart a worker
    # before that (a startup probe holds the liveness probe back until it passes).
    startup = container["startupProbe"]
    assert startup.get("initialDelaySeconds", 0) + startup["periodSeconds"] * startup["failureThreshold"] >= 60
    liveness = container["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 30  # a slow moment is not a restart
    assert liveness["timeoutSeconds"] < liveness["periodSeconds"]
    annotations = load("deployment.yaml")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(WEB_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_service_exposes_the_web_port_as_http():
    service = load("service.yaml")
    (port,) = service["spec"]["ports"]
    assert port["name"] == "http" and port["port"] == WEB_PORT and port_number(port["targetPort"]) == WEB_PORT


def test_service_monitor_scrapes_the_service():
    monitor = load("servicemonitor.yaml")
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "ServiceMonitor")
    service = load("service.yaml")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector and selector.items() <= service["metadata"]["labels"].items()
    assert set(monitor["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    assert {p["name"] for p in service["spec"]["ports"]} >= {endpoint["port"]}


def test_settings_come_from_the_configmap_and_the_secret_by_their_real_names():
    deployment = pod_spec()
    sources = {next(iter(s)): next(iter(s.values()))["name"] for s in worker()["envFrom"]}
    assert sources == {
        "configMapRef": load("configmap.yaml")["metadata"]["name"],
        "secretRef": load("secret.example.yaml")["metadata"]["name"],
    }
    config = set(configmap_env())
    secret = load("secret.example.yaml")
    assert secret["type"] == "Opaque"
    secrets = set(secret["stringData"])
    assert config <= SETTINGS, config - SETTINGS
    assert secrets <= SETTINGS, secrets - SETTINGS
    assert secrets == {"STREAM_CHECKPOINT_KEY", "STREAM_PSEUDONYM_KEY", "STREAM_SASL_USERNAME", "STREAM_SASL_PASSWORD"}
    assert secrets >= SECRET_SETTINGS and not SECRET_SETTINGS & config  # keys only in the Secret
    assert "STREAM_CHECKPOINT_KEY" not in config
    env = {e["name"] for c in deployment["containers"] for e in c.get("env", [])}
    assert not {n for n in env if n.startswith("STREAM_")} - SETTINGS


def test_the_configmap_is_a_valid_configuration_for_the_deployment():
    data = configmap_env()
    settings = Settings.from_env({**data, "STREAM_CHECKPOINT_KEY": "a-key-of-the-operator"})
    assert (settings.web_host, settings.web_port) == ("0.0.0.0", WEB_PORT)
    assert settings.log_format == "json"
    assert settings.broker is not None
    # A worker without a partition of the posts topic is never ready.
    assert load("deployment.yaml")["spec"]["replicas"] <= settings.partitions


def test_an_unedited_secret_template_stops_the_worker():
    template = load("secret.example.yaml")["stringData"]
    with pytest.raises(ConfigError, match="STREAM_CHECKPOINT_KEY"):
        Settings.from_env({**configmap_env(), **template})


def test_the_commented_tls_settings_point_into_the_tls_mount():
    commented = dict(re.findall(r'^\s*#\s*(STREAM_SSL_\w+):\s*"([^"]+)"', (K8S / "configmap.yaml").read_text(), re.M))
    assert set(commented) == {"STREAM_SSL_CAFILE", "STREAM_SSL_CERTFILE", "STREAM_SSL_KEYFILE"} <= SETTINGS
    assert commented["STREAM_SSL_CAFILE"] == "/etc/interest-stream/tls/ca.pem"
    (mount,) = [m for m in worker()["volumeMounts"] if m["name"] == "tls"]
    (volume,) = [v for v in pod_spec()["volumes"] if v["name"] == "tls"]
    assert mount["readOnly"] and volume["secret"]["optional"]  # the pods start without that Secret
    assert all(posixpath.dirname(path) == mount["mountPath"] for path in commented.values())


def test_every_container_has_resources_and_runs_unprivileged():
    spec = pod_spec()
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"].get("runAsUser", 1) != 0
    for container in all_containers():
        name = container["name"]
        requests, limits = container["resources"]["requests"], container["resources"]["limits"]
        for resource in ("cpu", "memory"):
            assert quantity(requests[resource]) <= quantity(limits[resource]), (name, resource)
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"]["drop"] == ["ALL"], name
    resources = worker()["resources"]
    # One worker ~350 MB, and ~350 MB more for the learner process on the worker that holds the role
    # (any pod may take it over)
    assert quantity(resources["requests"]["memory"]) >= 700 * 2**20
    assert quantity(resources["limits"]["memory"]) >= 700 * 2**20


def test_everything_the_worker_writes_is_on_a_writable_volume():
    spec = pod_spec()
    empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
    writable = [m["mountPath"] for m in worker()["volumeMounts"] if m["name"] in empty_dirs and not m.get("readOnly")]
    image = image_instructions()
    env = {**image, **{e["name"]: e["value"] for e in worker().get("env", [])}, **configmap_env()}
    paths = {name: env[name] for name in ("STREAM_DATA_DIR", "NUMBA_CACHE_DIR", "HOME")} | {"tmp": "/tmp"}
    for name, path in paths.items():
        assert any(is_under(path, m) for m in writable), (name, path, writable)
    # The numba cache compiled into the image is hidden by that volume: an init container copies it there.
    (seed,) = spec["initContainers"]
    assert seed["image"] == worker()["image"]
    (seed_mount,) = seed["volumeMounts"]
    (state,) = [m for m in worker()["volumeMounts"] if m["name"] == seed_mount["name"]]
    # `cp -R NUMBA_CACHE_DIR <seed mount>/` lands in <state mount>/<its name>, which is NUMBA_CACHE_DIR.
    assert seed["command"] == ["cp", "-R", image["NUMBA_CACHE_DIR"], seed_mount["mountPath"] + "/"]
    assert posixpath.dirname(image["NUMBA_CACHE_DIR"]) == state["mountPath"]


def test_a_stopping_worker_has_time_to_hand_over_the_learner_role():
    # The learner's last delta and snapshot (STOP_TIMEOUT), then Faust's commit and leaving the group.
    assert pod_spec()["terminationGracePeriodSeconds"] >= STOP_TIMEOUT + 30
    assert pod_spec()["automountServiceAccountToken"] is False


# -- ops/k8s-split: posts workers and aggregates workers (an overlay of ops/k8s) ---------------------

SPLIT = ROOT / "ops" / "k8s-split"
SPLIT_NOT_APPLIED = {"servicemonitor.yaml"}
SPLIT_MANIFESTS = sorted(p.name for p in SPLIT.glob("*.yaml") if p.name != "kustomization.yaml")
ROLES = {"interest-stream-worker": "posts", "interest-stream-aggregates": "aggregates"}


def role_of(deployment: dict[str, Any]) -> str | None:
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "worker"]
    roles = [e["value"] for e in container.get("env", []) if e["name"] == "STREAM_ROLE"]
    return roles[0] if len(roles) == 1 else None


def test_the_split_kustomization_applies_the_base_and_its_own_manifests():
    text = (SPLIT / "kustomization.yaml").read_text()
    kustomization = yaml.safe_load(text)
    assert kustomization["namespace"] == yaml.safe_load((K8S / "kustomization.yaml").read_text())["namespace"]
    applied = {r for r in kustomization["resources"] if r != "../k8s"} | {p["path"] for p in kustomization["patches"]}
    assert "../k8s" in kustomization["resources"]
    assert applied == set(SPLIT_MANIFESTS) - SPLIT_NOT_APPLIED
    for name in SPLIT_NOT_APPLIED:
        assert name in text  # a comment says why it is not applied


def test_the_split_layout_renders_a_posts_and_an_aggregates_deployment():
    docs = rendered(SPLIT)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "Deployment",
        "PodDisruptionBudget",
        "PodDisruptionBudget",
        "Service",
        "Service",
    ]
    for doc in docs:
        assert doc["metadata"]["namespace"] == "interest-stream"
        for version in VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    # One image for every container of both kinds (set in the overlay's kustomization, see its comment).
    images = {c["image"] for d in deployments.values() for c in all_containers(d["spec"]["template"]["spec"])}
    assert images == {worker()["image"]}
    assert {name: role_of(d) for name, d in deployments.items()} == ROLES
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    for name, role in ROLES.items():
        settings = Settings.from_env({**config, "STREAM_ROLE": role, "STREAM_CHECKPOINT_KEY": "a-key-of-the-operator"})
        assert (settings.runs_posts, settings.runs_aggregates) == (role == "posts", role == "aggregates")
        assert deployments[name]["spec"]["replicas"] <= settings.partitions
    # Each Service and PodDisruptionBudget selects the pods of its own Deployment, and only those.
    pod_labels = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments.items()}
    selectors = [
        (
            doc["kind"],
            doc["metadata"]["name"],
            doc["spec"]["selector"] if doc["kind"] == "Service" else doc["spec"]["selector"]["matchLabels"],
        )
        for doc in docs
        if doc["kind"] in ("Service", "PodDisruptionBudget", "Deployment")
    ]
    for name, d in deployments.items():  # the pods are spread among their own kind
        for c in d["spec"]["template"]["spec"].get("topologySpreadConstraints", []):
            selectors.append(("topologySpreadConstraints", name, c["labelSelector"]["matchLabels"]))
    for kind, owner, selector in selectors:
        selected = {name for name, labels in pod_labels.items() if selector.items() <= labels.items()}
        assert selected == {owner}, (kind, owner)


def test_an_aggregates_pod_is_a_worker_pod_with_its_role_labels_resources_and_trigger_rules():
    base = pod_spec()
    spec = load("aggregates-deployment.yaml", SPLIT)["spec"]["template"]["spec"]
    (container,) = [c for c in spec["containers"] if c["name"] == "worker"]
    ignored = {"containers", "topologySpreadConstraints", "volumes"}
    assert {k: v for k, v in spec.items() if k not in ignored} == {k: v for k, v in base.items() if k not in ignored}
    same = {k: v for k, v in container.items() if k not in ("env", "resources", "volumeMounts")}
    assert same == {k: v for k, v in worker().items() if k not in ("env", "resources", "volumeMounts")}
    assert [e for e in container["env"] if e["name"] != "STREAM_ROLE"] == worker()["env"]
    assert container["volumeMounts"][: len(worker()["volumeMounts"])] == worker()["volumeMounts"]
    assert spec["volumes"][: len(base["volumes"])] == base["volumes"]
    # Smaller than a worker that may hold the learner role (about 125 MB in the bench), within its limits.
    requests, limits = container["resources"]["requests"], container["resources"]["limits"]
    assert quantity(requests["memory"]) < quantity(worker()["resources"]["requests"]["memory"])
    for resource in ("cpu", "memory"):
        assert quantity(requests[resource]) <= quantity(limits[resource])
    # The commented STREAM_TRIGGER_RULES points into the optional ConfigMap mount, and the example rules load.
    text = (SPLIT / "aggregates-deployment.yaml").read_text()
    (rules,) = re.findall(r"^\s*#\s*value:\s*(/\S+)", text, re.M)
    assert "# - name: STREAM_TRIGGER_RULES" in text and "STREAM_TRIGGER_RULES" in SETTINGS
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "triggers"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == "triggers"]
    assert mount["readOnly"] and volume["configMap"]["optional"]
    (key,) = re.findall(r"--from-file=([^=\s]+)=", text)  # the file's name in the ConfigMap
    assert posixpath.dirname(rules) == mount["mountPath"] and posixpath.basename(rules) == key
    from stream.audience.rules import load_rules

    assert load_rules(ROOT / "ops" / "triggers" / "rules.toml")


def test_the_aggregates_service_monitor_scrapes_the_aggregates_service():
    monitor, service = load("servicemonitor.yaml", SPLIT), load("aggregates-service.yaml", SPLIT)
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert not selector.items() <= load("service.yaml")["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    assert {p["name"] for p in service["spec"]["ports"]} >= {endpoint["port"]}
