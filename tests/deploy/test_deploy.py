"""The deployment artefacts in deploy/: generated from the topology and up to date, every setting they name is
a real setting, the image recipe names only files and commands that exist and passes hadolint, the compose
file is valid against the Compose specification, and the Kubernetes manifests render with kustomize and
validate against the Kubernetes schemas. No Docker daemon or cluster is needed (none exists here); these are
static checks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dockerfile_parse import DockerfileParser
from typer.testing import CliRunner

from agent_lightning.cli import app as cli
from agent_lightning.core import topology
from agent_lightning.core.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    """A command-line tool from the test extra (installed beside this Python) or the machine."""
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    assert path, f"{name} is not installed (it comes with the test extra)"
    return str(path)


def _setting_names() -> set[str]:
    names = set()
    for field_name, field in Settings.model_fields.items():
        names.add(f"ALP_{field_name.upper()}")
        aliases = getattr(field.validation_alias, "choices", None) or []
        names.update(a for a in aliases if isinstance(a, str))
    return names


def _named_settings(text: str) -> set[str]:
    return set(re.findall(r"\bALP_[A-Z0-9_]+", text))


def test_generated_files_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(DEPLOY / "generate.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_every_setting_the_artefacts_name_exists() -> None:
    known = _setting_names()
    files = [DEPLOY / "Dockerfile", DEPLOY / ".env.example", *DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.env")]
    named = {path.relative_to(ROOT): _named_settings(path.read_text()) for path in files}
    unknown = {str(path): sorted(names - known) for path, names in named.items() if names - known}
    assert not unknown, f"settings that core/config.py does not have: {unknown}"
    assert set().union(*named.values()) >= set(topology.SERVICE_URL_SETTINGS) | set(topology.SECRET_SETTINGS)


def test_secrets_are_never_in_a_manifest() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    config = yaml.safe_load((DEPLOY / "k8s" / "base" / "config.yaml").read_text().split("---", 1)[1])
    for secret in topology.SECRET_SETTINGS:
        assert secret not in config["data"]
        for service in compose["services"].values():
            assert secret not in service.get("environment", {})
    assert set(topology.SECRET_SETTINGS) <= _named_settings((DEPLOY / ".env.example").read_text())


def test_dockerfile_names_only_what_exists_and_lints_clean() -> None:
    parser = DockerfileParser(path=str(DEPLOY / "Dockerfile"))
    for instruction in parser.structure:
        if instruction["instruction"] == "COPY" and "--from=" not in instruction["value"]:
            *sources, _ = instruction["value"].split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
    # The image runs `alp` with the default CMD, the HEALTHCHECK and each compose/Kubernetes command.
    entry = [i["value"] for i in parser.structure if i["instruction"] in ("CMD", "HEALTHCHECK", "ENTRYPOINT")]
    assert any('"alp"' in value for value in entry)
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    commands = [["up"], ["health"]] + [
        s["command"] for s in compose["services"].values() if s.get("image", "").startswith("agent-lightning")
    ]
    runner = CliRunner()
    for command in commands:
        words = [w for w in command if not w.startswith("-")][:2]
        words = words[:1] if words[0] in ("up", "health", "serve") else words
        result = runner.invoke(cli, [*words, "--help"])
        assert result.exit_code == 0, f"alp {' '.join(words)}: {result.output}"
    services = {s["command"][1] for s in compose["services"].values() if s.get("command", [""])[0] == "serve"}
    assert services == {spec.name for spec in topology.SERVICES}

    lint = subprocess.run(
        [_tool("hadolint"), "--config", str(DEPLOY / ".hadolint.yaml"), str(DEPLOY / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_compose_file_is_valid_and_wired() -> None:
    check = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(DEPLOY / "compose.yaml")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    for spec in topology.SERVICES:
        env = compose[spec.name]["environment"]
        assert env["ALP_PORT"] == str(spec.port)
        for setting, target in topology.SERVICE_URL_SETTINGS.items():
            assert env[setting] == f"http://{target}:{topology.service(target).port}", (spec.name, setting)
        assert env["ALP_QUEUE_URL"].startswith("nats://nats:") and "nats" in compose
        assert compose[spec.name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert compose["execution"]["deploy"]["replicas"] == 2
    assert compose["migrate"]["command"] == ["db", "upgrade"]


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl (for `kubectl kustomize`) is not installed")
@pytest.mark.parametrize("overlay", ["base", "demo"])
def test_kubernetes_manifests_render_and_validate(overlay: str, tmp_path: Path) -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / "k8s" / overlay)], capture_output=True, text=True
    )
    assert rendered.returncode == 0, rendered.stderr
    manifest = tmp_path / "all.yaml"
    manifest.write_text(rendered.stdout)
    check = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", "--quiet", str(manifest)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr

    objects = [o for o in yaml.safe_load_all(rendered.stdout) if o]
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("Job", "migrate") in kinds and ("ConfigMap", "alp-config") in kinds
    for spec in topology.SERVICES:
        assert ("Deployment", spec.name) in kinds and ("Service", spec.name) in kinds
    assert {name for kind, name in kinds if kind == "HorizontalPodAutoscaler"} == {"execution", "models"}
    for deployment in (
        o
        for o in objects
        if o["kind"] == "Deployment" and o["metadata"]["name"] in {s.name for s in topology.SERVICES}
    ):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        assert container["resources"]["requests"]["memory"]
        if overlay == "demo":
            assert deployment["spec"]["replicas"] == 1


def _metric_names() -> set[str]:
    """Every series name the platform's registry can expose (counters as *_total, histograms' parts)."""
    from agent_lightning.core.metrics import Metrics

    names = set()
    for family in Metrics().registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}.get(family.type, [""])
        names.update(family.name + suffix for suffix in suffixes)
    return names


def _selectors(node) -> list[str]:
    """The metric names a PromQL expression selects."""
    found = [node.name] if type(node).__name__ == "VectorSelector" else []
    for attribute in ("lhs", "rhs", "expr", "args", "vector_selector", "param"):
        child = getattr(node, attribute, None)
        for item in child if isinstance(child, list) else [child] if child is not None else []:
            found += _selectors(item)
    return found


def test_alert_rules_and_dashboard_query_only_metrics_the_platform_exports() -> None:
    import json

    import promql_parser

    rules = yaml.safe_load((DEPLOY / "observability" / "prometheus-rules.yaml").read_text())
    dashboard = json.loads((DEPLOY / "observability" / "grafana-dashboard.json").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    expressions += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    known = _metric_names()
    for expression in expressions:
        used = _selectors(promql_parser.parse(expression))  # raises on a PromQL syntax error
        assert used and set(used) <= known, f"{expression}: unknown {set(used) - known}"
    # One Prometheus rule per built-in alert rule.
    from agent_lightning.monitoring.service import MonitoringService

    builtin = MonitoringService.rules(type("S", (), {"settings": Settings(_env_file=None)})())
    assert len(rules["groups"][0]["rules"]) == len(builtin)
    queried = " ".join(expressions)
    assert (
        "alp_tasks_current" in queried
        and "alp_model_cost_usd_total" in queried
        and "alp_reward_sum" in queried
    )


def test_every_command_of_the_deploy_guide_is_run_or_checked(tmp_path: Path) -> None:
    """docs/operate/deploy.md: its bash blocks are run (the plain-hosts ones by
    tests/deploy/test_multihost.py, the backup one here); its console blocks need a Docker daemon or a
    cluster, so what they name must exist and render."""
    guide = (ROOT / "docs" / "operate" / "deploy.md").read_text()
    bash_blocks = re.findall(r"(<!-- deploy-guide: (\w+) -->\s*)?```bash\n(.*?)```", guide, re.S)
    assert all(marker for marker, _, _ in bash_blocks), "a bash block of the deploy guide that no test runs"
    assert {name for _, name, _ in bash_blocks} == {"secrets", "settings", "once", "services", "backup"}

    backup = next(body for _, name, body in bash_blocks if name == "backup")
    env = {k: v for k, v in os.environ.items() if k != "ALP_DATABASE_URL"}  # SQLite in the data dir
    env.update(ALP_DATA_DIR=str(tmp_path / "data"), ALP_LOG_LEVEL="WARNING")
    env["PATH"] = f"{BIN}:{env['PATH']}"
    subprocess.run(["alp", "db", "upgrade"], cwd=tmp_path, env=env, check=True, capture_output=True)
    ran = subprocess.run(["bash", "-ec", backup], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (tmp_path / "backups" / "alp.tar").exists()

    for block in re.findall(r"```console\n(.*?)```", guide, re.S):
        for path in re.findall(r"\bdeploy/[\w./-]+", block):
            assert (ROOT / path.rstrip(".")).exists() or path.endswith("/.env"), f"{path} (deploy guide)"
        for target in re.findall(r"kubectl apply -k (\S+)", block):
            rendered = subprocess.run(
                ["kubectl", "kustomize", str(ROOT / target)], capture_output=True, text=True
            )
            assert rendered.returncode == 0, rendered.stderr
