"""docker-compose.yml carries every setting of ``.env`` to its containers, with the app's defaults, and runs
them with restart policies, resource limits and a liveness health check; ``.env.example`` lists every
setting. Validated offline with the official Compose binary (``docker-compose config``); each run uses a
project directory of its own, so that a developer's ``.env`` in the repository plays no part."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from stream.audience.rules import load_rules
from stream.settings import Settings, describe
from stream.tools.envfile import COMPOSE_VALUES, GRAFANA_PASSWORD, render_env_example
from tests.ops.test_prometheus_rules import promtool

ROOT = Path(__file__).resolve().parents[2]
BASE = ("docker-compose.yml",)
CLUSTER = ("docker-compose.yml", "docker-compose.cluster.yml")
STREAM_SERVICES = ("topics", "worker", "producer")
LONG_RUNNING = ("kafka", "worker", "prometheus", "grafana")
SETTINGS = [name for name, _, _ in describe()]
FIXED = {name: v.value for name, v in COMPOSE_VALUES.items() if v.fixed}
WORKER_ONLY = {"STREAM_TRIGGER_RULES"}  # only the worker reads the rules: the file is mounted in it alone
REQUIRED = {"STREAM_CHECKPOINT_KEY": "test-checkpoint-key", GRAFANA_PASSWORD: "test-grafana-password"}


def project(tmp_path: Path, dotenv: str | None) -> Path:
    """A project directory beside the repository: its ``.env`` (if any), the compose files and ``ops/``."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name in (*CLUSTER, "ops"):
        (tmp_path / name).symlink_to(ROOT / name)
    if dotenv is not None:
        (tmp_path / ".env").write_text(dotenv)
    return tmp_path


def run_compose(
    directory: Path, files: tuple[str, ...], env: dict[str, str], *extra: str
) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose") or str(Path(sys.executable).parent / "docker-compose")
    args = [binary, "--project-directory", str(directory)]
    for f in files:
        args += ["-f", str(directory / f)]
    return subprocess.run(
        [*args, "config", "--format", "json", *extra],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **env},
    )


def config(directory: Path, files: tuple[str, ...] = BASE, env: dict[str, str] | None = None, *extra: str) -> dict:
    res = run_compose(directory, files, REQUIRED if env is None else env, *extra)
    assert res.returncode == 0, res.stderr
    return orjson.loads(res.stdout)


def distinct_dotenv() -> dict[str, str]:
    """A ``.env`` that gives every setting (and Grafana's password) a value of its own."""
    values = {name: f"from-dotenv-{name.lower()}" for name in SETTINGS}
    return {**values, GRAFANA_PASSWORD: "from-dotenv-grafana"}


def expected(service: str, name: str, dotenv: dict[str, str]) -> str:
    if name in FIXED and (service == "worker" or name not in WORKER_ONLY):
        return FIXED[name]
    return dotenv[name]


@pytest.mark.parametrize("files", [BASE, CLUSTER], ids=["single", "cluster"])
def test_every_setting_of_dotenv_reaches_the_stream_containers(tmp_path, files):
    dotenv = distinct_dotenv()
    directory = project(tmp_path, "".join(f"{k}={v}\n" for k, v in dotenv.items()))
    services = config(directory, files, env={})["services"]  # nothing from the shell: .env alone
    for service in STREAM_SERVICES:
        env = services[service]["environment"]
        wrong = {name: env.get(name) for name in SETTINGS if env.get(name) != expected(service, name, dotenv)}
        assert not wrong, f"{service}: settings of .env that do not reach it (or have another value): {wrong}"
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "from-dotenv-grafana"


def test_the_shell_wins_over_dotenv_for_what_compose_interpolates(tmp_path):
    dotenv = distinct_dotenv()
    directory = project(tmp_path, "".join(f"{k}={v}\n" for k, v in dotenv.items()))
    services = config(directory, env={"STREAM_BROKER": "shell:9092", "STREAM_CHECKPOINT_KEY": "shell-key"})["services"]
    for service in STREAM_SERVICES:
        env = services[service]["environment"]
        assert env["STREAM_BROKER"] == "shell:9092" and env["STREAM_CHECKPOINT_KEY"] == "shell-key"
        assert env["STREAM_MODEL"] == dotenv["STREAM_MODEL"]


def test_compose_defaults_are_the_apps_unless_documented(tmp_path):
    services = config(project(tmp_path, None))["services"]
    app = Settings()
    for service in STREAM_SERVICES:
        env = services[service]["environment"]
        assert set(env) <= set(SETTINGS), set(env) - set(SETTINGS)  # nothing but settings, no .env here
        for name, value in env.items():
            if name in COMPOSE_VALUES:  # documented in .env.example and in docker-compose.yml
                assert value == COMPOSE_VALUES[name].value, (service, name, value)
            elif name == "STREAM_CHECKPOINT_KEY":
                assert value == REQUIRED[name]
            else:
                field = name.removeprefix("STREAM_").lower()
                got = getattr(Settings.from_env({name: value}), field)
                assert got == getattr(app, field), f"{service}: {name}={value!r} is not the app's default"
    # the documented values are what compose gives, in the worker at least
    for name, documented in COMPOSE_VALUES.items():
        assert services["worker"]["environment"][name] == documented.value, name


def test_the_trigger_rules_are_mounted_where_the_worker_reads_them(tmp_path):
    worker = config(project(tmp_path, None))["services"]["worker"]
    path = worker["environment"]["STREAM_TRIGGER_RULES"]
    mount = next(v for v in worker["volumes"] if v["target"] == path)
    assert mount["type"] == "bind" and mount["read_only"] is True
    source = Path(mount["source"]).resolve()
    assert source == ROOT / "ops/triggers/rules.toml"
    assert load_rules(source)  # the example rules are valid: the worker starts with them


def test_the_required_values_are_required_and_not_literals(tmp_path):
    directory = project(tmp_path, None)
    raw = config(directory, BASE, REQUIRED, "--no-interpolate")["services"]
    assert re.fullmatch(
        r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", raw["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    )
    for service in STREAM_SERVICES:
        assert raw[service]["environment"]["STREAM_CHECKPOINT_KEY"].startswith("${STREAM_CHECKPOINT_KEY:?")
    for missing in REQUIRED:
        res = run_compose(directory, BASE, {k: v for k, v in REQUIRED.items() if k != missing})
        assert res.returncode != 0 and missing in res.stderr
    # the example file as it is (empty placeholders) is refused too
    empty = project(tmp_path / "example", (ROOT / ".env.example").read_text())
    res = run_compose(empty, BASE, {})
    assert res.returncode != 0 and all(name in res.stderr for name in REQUIRED), res.stderr


def test_the_example_file_with_its_placeholders_filled_runs_the_defaults(tmp_path):
    text = (ROOT / ".env.example").read_text()
    for name, value in REQUIRED.items():
        text, n = re.subn(rf"(?m)^{name}=$", f"{name}={value}", text)
        assert n == 1, f"{name} is not an empty placeholder line in .env.example"
    services = config(project(tmp_path, text), BASE, {})["services"]
    defaults = config(project(tmp_path / "shell", None))["services"]  # the same values from the shell
    for service in (*STREAM_SERVICES, "grafana"):
        env = services[service]["environment"]
        if service != "grafana":  # every variable of .env reaches the stream containers, this one too
            assert env.pop(GRAFANA_PASSWORD) == REQUIRED[GRAFANA_PASSWORD]
        assert env == defaults[service]["environment"], service  # the commented lines set nothing


@pytest.mark.parametrize("files", [BASE, CLUSTER], ids=["single", "cluster"])
def test_long_running_services_restart_and_have_resource_limits(tmp_path, files):
    services = config(project(tmp_path, None), files)["services"]
    brokers = [name for name in services if name == "kafka" or name.startswith("kafka-")]
    for name in (*LONG_RUNNING, *brokers):
        assert services[name]["restart"] in ("unless-stopped", "always"), name
        limits = services[name]["deploy"]["resources"]["limits"]
        assert int(limits["memory"]) > 0 and float(limits["cpus"]) > 0, name
    # a worker (~350 MB) and the learner's child process (~350 MB) fit
    assert int(services["worker"]["deploy"]["resources"]["limits"]["memory"]) == 1 << 30
    assert services["topics"]["restart"] == services["producer"]["restart"] == "no"  # one-shot


def test_the_worker_health_check_asks_liveness_not_readiness(tmp_path):
    worker = config(project(tmp_path, None))["services"]["worker"]
    probe = " ".join(worker["healthcheck"]["test"])
    port = worker["environment"]["STREAM_WEB_PORT"]
    assert f"127.0.0.1:{port}/healthz" in probe and "/ready" not in probe
    assert worker["healthcheck"]["test"][0] == "CMD"  # no shell, no curl: python's urllib in the image
    dockerfile = (ROOT / "Dockerfile").read_text()
    healthcheck = dockerfile[dockerfile.index("HEALTHCHECK") :].split("\nENTRYPOINT")[0]
    assert "/healthz" in healthcheck and "/ready" not in healthcheck


def test_prometheus_loads_the_alert_rules_from_its_mount(tmp_path):
    prometheus = config(project(tmp_path, None))["services"]["prometheus"]
    mount = next(v for v in prometheus["volumes"] if v["target"] == "/etc/prometheus")
    assert Path(mount["source"]).resolve() == ROOT / "ops/prometheus" and mount["read_only"] is True
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    res = promtool("check", "config", "prometheus.yml")  # in ops/prometheus, as the mount lays it out
    assert res.returncode == 0, res.stdout + res.stderr
    found = re.search(r"Checking alerts\.yml\s+SUCCESS: (\d+) rules found", res.stdout + res.stderr)
    assert found and int(found.group(1)) > 0, res.stdout + res.stderr


def test_env_example_lists_every_setting_as_rendered():
    committed = (ROOT / ".env.example").read_text()
    assert committed == render_env_example(), (
        ".env.example is not what stream/settings.py renders; regenerate it: "
        ".venv/bin/python -m stream.tools.envfile > .env.example"
    )
    for name in SETTINGS:
        assert re.search(rf"(?m)^#? ?{name}=", committed), name


def test_every_setting_is_listed_under_a_group_of_its_own_kind():
    """A new setting whose name no group of ``stream.tools.envfile.GROUPS`` takes lands under "Other",
    away from its neighbours in ``.env.example``: name it in its group."""
    from stream.tools.envfile import group_of

    assert [name for name in SETTINGS if group_of(name) == "Other"] == []
