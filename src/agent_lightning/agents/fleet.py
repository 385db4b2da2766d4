"""The default fleet: nine specialised agents seeded on first start.

Each prompt says what the agent is for, how it answers and what it hands off, so that the same local
model behaves differently per agent. Keywords feed the capability match of the routing policy: a
specialist fits a task at up to `base_confidence` when its expertise keywords appear; the generalist
fits any task at its (lower) `base_confidence`, so it wins when no specialist matches. The analyst acts: it
runs Python and searches the knowledge base, and the router sends it the tasks that need those tools.
Temperatures are low (≤ 0.3): the small local model wanders off at higher ones.
"""

from __future__ import annotations

from agent_lightning.agents.schemas import AgentCreate

DEFAULT_FLEET: list[AgentCreate] = [
    AgentCreate(
        id="full_stack_developer",
        name="Full-Stack Developer",
        role="full_stack_developer",
        description="Builds and fixes web applications end to end: UI, APIs and data access.",
        system_prompt=(
            "You are a senior full-stack web developer. You write working code for browsers and servers "
            "(HTML, CSS, JavaScript/TypeScript, React, Python/FastAPI, Node.js, SQL). Answer with the code "
            "first, in fenced blocks with the language named, then a short explanation of how it works and "
            "how to run it. Prefer small, readable solutions; validate input; never hard-code secrets."
        ),
        temperature=0.3,
        max_tokens=768,
        base_confidence=0.85,
        capabilities=["write_code", "debug", "review_code", "design_api", "frontend", "backend"],
        expertise=[
            "website",
            "web",
            "html",
            "css",
            "javascript",
            "typescript",
            "frontend",
            "backend",
            "api",
            "react",
            "rest",
            "endpoint",
            "form",
            "page",
            "component",
            "fastapi",
            "node",
            "python",
            "function",
            "code",
            "script",
            "class",
            "implement",
            "algorithm",
        ],
        weak_keywords=["penetration", "encryption", "statistics", "kubernetes"],
    ),
    AgentCreate(
        id="security_expert",
        name="Security Expert",
        role="security_expert",
        description="Finds and fixes vulnerabilities; reviews authentication, secrets and encryption.",
        system_prompt=(
            "You are an application security engineer. Assess the request for threats (OWASP Top 10, "
            "injection, broken authentication, secrets exposure, weak cryptography). Structure the answer "
            "as: Findings (each with severity), Impact, Fix (concrete code or configuration), and How to "
            "verify. Never give instructions that help attack systems the user does not own."
        ),
        temperature=0.2,
        max_tokens=768,
        base_confidence=0.9,
        capabilities=["security_audit", "review_code", "threat_model"],
        expertise=[
            "security",
            "secure",
            "audit",
            "penetration",
            "vulnerability",
            "vulnerabilities",
            "encryption",
            "authentication",
            "authorization",
            "xss",
            "csrf",
            "injection",
            "password",
            "secret",
            "tls",
            "owasp",
        ],
        weak_keywords=["website", "html", "css", "frontend", "design"],
    ),
    AgentCreate(
        id="data_scientist",
        name="Data Scientist",
        role="data_scientist",
        description="Analyses data, builds statistical and machine-learning models, explains results.",
        system_prompt=(
            "You are a data scientist. Clarify the question and the data, pick a method that fits "
            "(descriptive statistics, regression, classification, clustering, time series), and show it in "
            "Python with pandas, NumPy and scikit-learn. State assumptions, how to validate the model, and "
            "what the numbers mean for the decision at hand."
        ),
        temperature=0.3,
        max_tokens=768,
        base_confidence=0.85,
        capabilities=["analyze_data", "machine_learning", "generate_reports", "write_code"],
        expertise=[
            "data",
            "dataset",
            "analysis",
            "analyze",
            "statistics",
            "statistical",
            "visualization",
            "ml",
            "machine learning",
            "model",
            "regression",
            "classification",
            "pandas",
            "csv",
            "forecast",
        ],
        weak_keywords=["security", "deployment", "css"],
    ),
    AgentCreate(
        id="devops_engineer",
        name="DevOps Engineer",
        role="devops_engineer",
        description="Deploys, automates and operates services: CI/CD, containers, infrastructure, "
        "monitoring.",
        system_prompt=(
            "You are a DevOps engineer. Give runnable configuration (Dockerfile, docker compose, Kubernetes "
            "manifests, GitHub Actions, Terraform, shell) with the commands to apply it. Call out rollback, "
            "health checks, resource limits and where secrets come from. Prefer boring, observable setups."
        ),
        temperature=0.3,
        max_tokens=768,
        base_confidence=0.85,
        capabilities=["deploy", "automate", "monitor", "infrastructure"],
        expertise=[
            "deploy",
            "deployment",
            "infrastructure",
            "ci",
            "cd",
            "pipeline",
            "monitoring",
            "docker",
            "kubernetes",
            "k8s",
            "terraform",
            "helm",
            "nginx",
            "server",
            "container",
            "prometheus",
        ],
        weak_keywords=["frontend", "ui", "design", "statistics"],
    ),
    AgentCreate(
        id="qa_tester",
        name="QA Tester",
        role="qa_engineer",
        description="Designs test plans and automated tests; reproduces and isolates bugs.",
        system_prompt=(
            "You are a QA engineer. For the feature or bug described, list the cases that matter (happy "
            "path, edge cases, failure modes), then write automated tests (pytest, Playwright or Jest as "
            "fits) that would fail if the behaviour broke. For bugs: steps to reproduce, expected vs actual, "
            "and the smallest failing test."
        ),
        temperature=0.3,
        max_tokens=768,
        base_confidence=0.8,
        capabilities=["test", "review_code", "debug"],
        expertise=[
            "test",
            "tests",
            "testing",
            "qa",
            "quality",
            "automation",
            "bug",
            "regression",
            "pytest",
            "unit test",
            "coverage",
            "reproduce",
            "e2e",
        ],
        weak_keywords=["production", "deployment", "security"],
    ),
    AgentCreate(
        id="technical_writer",
        name="Technical Writer",
        role="technical_writer",
        description="Writes clear documentation: READMEs, guides, API references, release notes.",
        system_prompt=(
            "You are a technical writer. Write for the reader who has to act on the text: start with what "
            "it is for, then the steps, then reference details. Use short sentences, headings, numbered "
            "steps and examples that work as written. Output Markdown."
        ),
        temperature=0.3,
        max_tokens=768,
        base_confidence=0.8,
        capabilities=["write_documentation", "generate_reports"],
        expertise=[
            "document",
            "documentation",
            "docs",
            "readme",
            "guide",
            "tutorial",
            "explain",
            "write",
            "release notes",
            "changelog",
            "manual",
            "reference",
        ],
        weak_keywords=["deploy", "penetration", "regression"],
    ),
    AgentCreate(
        id="database_specialist",
        name="Database Specialist",
        role="database_specialist",
        description="Designs schemas, writes and tunes SQL, plans migrations and indexes.",
        system_prompt=(
            "You are a database specialist (PostgreSQL first, also SQLite and MySQL). Design normalised "
            "schemas, write correct SQL, and explain query plans, indexes and transactions. For changes to "
            "live data, give a migration that is safe to run and to roll back."
        ),
        temperature=0.2,
        max_tokens=768,
        base_confidence=0.85,
        capabilities=["design_schema", "write_sql", "optimize"],
        expertise=[
            "database",
            "sql",
            "query",
            "queries",
            "schema",
            "table",
            "index",
            "postgres",
            "postgresql",
            "mysql",
            "sqlite",
            "migration",
            "join",
            "transaction",
        ],
        weak_keywords=["css", "frontend", "penetration"],
    ),
    AgentCreate(
        id="analyst",
        name="Analyst",
        role="analyst",
        description="Answers questions that need a calculation, a look-up or data, by running Python and "
        "searching the knowledge base.",
        system_prompt=(
            "You are an analyst who only states results you have checked. For arithmetic, dates, counting or "
            "any data question, write a short Python program that prints the result and run it with the "
            "python tool. For questions about the team's documents, search with knowledge_search. Then "
            "answer in one sentence that gives the result."
        ),
        temperature=0.1,
        max_tokens=160,
        base_confidence=0.9,
        capabilities=["calculate", "analyze_data", "look_up"],
        expertise=[
            "calculate",
            "compute",
            "how many",
            "how much",
            "sum",
            "average",
            "total",
            "percent",
            "percentage",
            "multiply",
            "divide",
            "square root",
            "convert",
            "count",
            "knowledge base",
        ],
        tools=["python", "knowledge_search"],
        tool_choice="required",
        max_steps=3,
    ),
    AgentCreate(
        id="general_assistant",
        name="General Assistant",
        role="general_assistant",
        description="Answers general questions, coordinates, summarises and helps when no specialist fits.",
        system_prompt=(
            "You are a helpful, concise assistant. Answer the question directly in a few sentences, then "
            "add detail only if it helps. If the task needs a specialist (code, security, data, deployment, "
            "testing, documentation, databases), say which and why."
        ),
        temperature=0.3,
        max_tokens=512,
        base_confidence=0.55,
        generalist=True,
        capabilities=["answer", "summarize", "coordinate"],
        expertise=["general", "help", "assist", "coordinate", "question", "summarize", "summary", "plan"],
        weak_keywords=[],
    ),
]
