"""Our gateway (the models service alone) in front of the fake upstream, as `alp serve models` runs it, with
the rate limiter off (see run.py)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import uvicorn

from agent_lightning.app import create_app
from agent_lightning.core.config import Settings

if __name__ == "__main__":
    port, upstream = int(sys.argv[1]), sys.argv[2]
    tmp = Path(tempfile.mkdtemp(prefix="alp-bench-"))
    models_file = tmp / "models.json"
    models_file.write_text(
        json.dumps(
            [
                {
                    "id": "bench",
                    "deployments": [
                        {
                            "provider": "openai-compatible",
                            "model": "bench-model",
                            "base_url": f"{upstream}/v1",
                            "api_key": "sk-bench",
                        }
                    ],
                }
            ]
        )
    )
    settings = Settings(
        _env_file=None,
        data_dir=tmp,
        database_url=f"sqlite+aiosqlite:///{tmp / 'alp.db'}",
        models_file=models_file,
        log_level="WARNING",
        rate_limit="0",
    )
    uvicorn.run(
        create_app(settings, ["models"]), host="127.0.0.1", port=port, log_level="error", access_log=False
    )
