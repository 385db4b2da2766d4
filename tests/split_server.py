"""Starts some services of the platform in this process, for the split-mode tests.

    python tests/split_server.py execution 8102

Configuration comes from ALP_* variables like any deployment; the model is the scripted test provider
(registered through the model service's interface). With BREAK_V2=1 the primary execute endpoint
answers 500, to prove the orchestrator falls back to /agents/execute. With SPLIT_MODELS=quoting the model
answers by quoting the knowledge and memories in its prompt, and embeddings are real (tests/embedded.py).
GET /_hits counts requests per path.
"""

from __future__ import annotations

import os
import sys
from collections import Counter

import uvicorn
from fastapi.responses import JSONResponse

sys.path.insert(0, os.path.dirname(__file__))

from agent_lightning.app import create_app  # noqa: E402
from agent_lightning.core.config import Settings  # noqa: E402
from scripted import scripted_models  # noqa: E402


def main() -> None:
    services, port = sys.argv[1].split(","), int(sys.argv[2])
    settings = Settings()
    if os.environ.get("SPLIT_MODELS") == "quoting":
        from embedded import QuotingProvider, with_embeddings

        models = with_embeddings(settings, QuotingProvider())
    else:
        models, _ = scripted_models(settings)
    app = create_app(settings, services, model_service=models, migrate=False)
    hits: Counter[str] = Counter()

    @app.middleware("http")
    async def count_and_break(request, call_next):
        hits[request.url.path] += 1
        if os.environ.get("BREAK_V2") and request.url.path == "/api/v2/agents/execute":
            return JSONResponse(status_code=500, content={"error": {"code": "internal_error", "message": "broken on purpose"}})
        return await call_next(request)

    @app.get("/_hits", include_in_schema=False)
    async def get_hits() -> dict[str, int]:
        return dict(hits)

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
