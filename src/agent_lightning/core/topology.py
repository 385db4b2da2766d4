"""The split-mode topology in one place: which services exist, on which port, how each finds the others, how
many replicas run and what they need. `alp up --split` starts processes from it, and `deploy/generate.py`
writes the compose file and the Kubernetes manifests from it, so that none of them can drift from the code.

Plain data, no service imported (core sits below every service).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agent_lightning.core.config import SERVICE_PORTS


@dataclass(frozen=True)
class ServiceSpec:
    """One service as deployed: its port, replicas, resources (from measurements) and scaling."""

    name: str
    port: int
    replicas: int = 1
    cpu: str = "250m"
    """CPU request; the limit is left open so a quiet node can lend more."""
    memory: str = "256Mi"
    """Memory request; the limit is twice this."""
    autoscale_max: int = 0
    """Above 0: a HorizontalPodAutoscaler from `replicas` to this many on CPU."""
    public: bool = False
    """Clients (browsers, the CLI) reach it from outside the cluster."""
    rate_limited: bool = False
    """Clients come in here, so it counts their requests; the other services serve the platform's own
    calls."""


# Memory requests: the resident size after a warm-up, measured with benchmarks/footprint
# (docs/operate/deploy.md), plus headroom (the limit is twice the request). Every process is ~145 MiB of
# Python and libraries at rest; the models service grows to ~515 MiB once the local chat model and the
# embedder are loaded (the other services embed through it).
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("auth", SERVICE_PORTS["auth"], memory="192Mi", public=True, rate_limited=True),
    ServiceSpec(
        "orchestrator",
        SERVICE_PORTS["orchestrator"],
        cpu="500m",
        memory="256Mi",
        public=True,
        rate_limited=True,
    ),
    ServiceSpec(
        "execution", SERVICE_PORTS["execution"], replicas=2, cpu="250m", memory="192Mi", autoscale_max=6
    ),
    ServiceSpec("models", SERVICE_PORTS["models"], cpu="1000m", memory="768Mi", autoscale_max=4),
    ServiceSpec("knowledge", SERVICE_PORTS["knowledge"], cpu="250m", memory="256Mi"),
    ServiceSpec("memory", SERVICE_PORTS["memory"], memory="192Mi"),
    ServiceSpec("validation", SERVICE_PORTS["validation"], memory="192Mi"),
    ServiceSpec("workflows", SERVICE_PORTS["workflows"], memory="192Mi", public=True),
    ServiceSpec("monitoring", SERVICE_PORTS["monitoring"], memory="192Mi", public=True),
)

SERVICE_URL_SETTINGS: dict[str, str] = {
    "ALP_EXECUTION_URLS": "execution",
    "ALP_AGENTS_URL": "execution",  # the agent registry is served with execution
    "ALP_MODELS_URL": "models",
    "ALP_ORCHESTRATOR_URL": "orchestrator",
    "ALP_KNOWLEDGE_URL": "knowledge",
    "ALP_MEMORY_URL": "memory",
    "ALP_VALIDATION_URL": "validation",
    "ALP_AUTH_URL": "auth",
}
"""The setting through which every process finds each service it does not run itself."""


def service(name: str) -> ServiceSpec:
    """The spec of one service by name."""
    for spec in SERVICES:
        if spec.name == name:
            return spec
    raise KeyError(name)


def wiring(url_of: Callable[[ServiceSpec], str], dashboard_origin: str | None = None) -> dict[str, str]:
    """The environment that points a process at every service, given how a service's URL is spelt where it
    runs (``http://127.0.0.1:8002`` for `alp up --split`, ``http://execution:8002`` in compose or Kubernetes),
    and where browsers load the dashboard from (it calls the services from the browser, allowed by CORS)."""
    env = {setting: url_of(service(name)) for setting, name in SERVICE_URL_SETTINGS.items()}
    env["ALP_CORS_ORIGINS"] = dashboard_origin or url_of(service("monitoring"))
    env["ALP_MIGRATE_ON_START"] = "false"  # migrations are one step before the services start
    return env


def process_env(spec: ServiceSpec) -> dict[str, str]:
    """What differs for one service's own process: its port, and no rate limit where the callers are the other
    services (whose calls must not be throttled as one client)."""
    env = {"ALP_PORT": str(spec.port)}
    if not spec.rate_limited:
        env["ALP_RATE_LIMIT"] = "0"
    return env


SHARED_SETTINGS: dict[str, str] = {
    "ALP_QUEUE_URL": "nats://nats:4222",
    "ALP_EVENT_BUS_URL": "nats://nats:4222",
    "ALP_RATE_LIMIT_STORAGE_URL": "redis://redis:6379/0",
    "ALP_AUTH_ENABLED": "true",
    "ALP_LOG_JSON": "true",
    "ALP_DATA_DIR": "/data",
    "HF_HUB_OFFLINE": "1",
}
"""What every process of a multi-host deployment shares: PostgreSQL (``ALP_DATABASE_URL``, a secret), the NATS
JetStream queue and event bus, Redis for the rate limiter's counters, authentication on."""

SECRET_SETTINGS: tuple[str, ...] = ("ALP_DATABASE_URL", "ALP_AUTH_SECRET", "ALP_SECRETS_KEY")
"""Settings that come from a secret (env file in compose, a Secret in Kubernetes), never from a manifest."""
