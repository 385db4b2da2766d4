"""Starts some services of the platform in this process, for the split-mode tests.

    python tests/split_server.py execution 8102

Configuration comes from ALP_* variables like any deployment; the model is the scripted test provider
(registered through the model service's interface). With BREAK_V2=1 the primary execute endpoint
answers 500, to prove the orchestrator falls back to /agents/execute. With SPLIT_MODELS=quoting the model
answers by quoting the knowledge and memories in its prompt, and embeddings are real (tests/embedded.py).
GET /_hits counts requests per path. SCRIPTED_DELAY_S makes the scripted model that slow.
"""

from __future__ import annotations

import os
import sys
from collections import Counter

from fastapi.responses import JSONResponse

sys.path.insert(0, os.path.dirname(__file__))

from scripted import ScriptedProvider, scripted_models

from agent_lightning.app import create_app
from agent_lightning.cli import run_server
from agent_lightning.core.config import Settings


def main() -> None:
    services, port = sys.argv[1].split(","), int(sys.argv[2])
    settings = Settings()
    delay_s = float(os.environ.get("SCRIPTED_DELAY_S", "0"))  # each answer takes this long, like a real model
    if os.environ.get("SPLIT_MODELS") == "quoting":
        from embedded import QuotingProvider, with_embeddings

        models = with_embeddings(settings, QuotingProvider(delay_s=delay_s))
    else:
        models, _ = scripted_models(settings, ScriptedProvider(delay_s=delay_s))
    app = create_app(settings, services, model_service=models, migrate=False)
    hits: Counter[str] = Counter()

    @app.middleware("http")
    async def count_and_break(request, call_next):
        hits[request.url.path] += 1
        if os.environ.get("BREAK_V2") and request.url.path == "/api/v2/agents/execute":
            return JSONResponse(
                status_code=500, content={"error": {"code": "internal_error", "message": "broken on purpose"}}
            )
        return await call_next(request)

    @app.get("/_hits", include_in_schema=False)
    async def get_hits() -> dict[str, int]:
        return dict(hits)

    run_server(app, "127.0.0.1", port, settings)  # as `alp serve` runs it: SIGTERM drains


if __name__ == "__main__":
    main()
