"""Every native dependency of the platform loads and runs beside every other, whatever the import order.

A native library that carries its own copy of the C++ runtime and exports it (as usearch's wheels did) shares
that runtime's locale ids with the system's through the dynamic linker (STB_GNU_UNIQUE symbols ignore
RTLD_LOCAL): whichever loads first wins, and onnxruntime crashed with SIGSEGV when usearch came first. These
tests load the installed dependencies in several orders in fresh processes, and look for a bundled C++
runtime in their binaries.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib import machinery, metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.slow

FIRST = ("hnswlib", "onnxruntime", "llama-cpp-python", "tokenizers", "numpy", "asyncpg", "orjson", "nh3")
"""Loaded first in an order of their own (the others follow in alphabetical order)."""
SHARED_OBJECT = re.compile(r"\.(so|pyd|dylib)(\.|$)")

# What the platform runs in each of the libraries that bring a C++ runtime along, after the imports.
EXERCISE = r"""
import asyncio, importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)

import hnswlib, numpy as np, orjson, nh3
from agent_lightning.models.embeddings import LocalEmbedder
from agent_lightning.models.providers.local import LocalLlamaProvider
from agent_lightning.models.schemas import ChatMessage, ChatRequest

vectors, _ = asyncio.run(LocalEmbedder().embed(["a restarted server", "every search mode"]))
vectors = np.asarray(vectors, dtype=np.float32)
index = hnswlib.Index(space="cosine", dim=vectors.shape[1])
index.init_index(max_elements=8)
index.add_items(vectors, [1, 2])
labels, _ = index.knn_query(vectors[1], k=1)
assert labels[0][0] == 2
local = LocalLlamaProvider(None)
request = ChatRequest(model="local", messages=[ChatMessage(role="user", content="Say hi")], max_tokens=2)
answer = asyncio.run(local.chat(request, local.model_name))
assert answer.completion_tokens > 0
orjson.dumps({"ok": nh3.clean("<b>ok</b>")})
print("ok")
"""


def _runtime_distributions() -> dict[str, metadata.Distribution]:
    """agent-lightning and everything it requires at run time (extras requested on the way included)."""
    found: dict[str, metadata.Distribution] = {}
    seen: set[tuple[str, tuple[str, ...]]] = set()
    todo: list[tuple[str, tuple[str, ...]]] = [("agent-lightning", ())]
    while todo:
        name, extras = todo.pop()
        key = (canonicalize_name(name), tuple(sorted(extras)))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement for another platform
        found[key[0]] = dist
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker and not any(
                requirement.marker.evaluate({"extra": e}) for e in ("", *extras)
            ):
                continue
            todo.append((requirement.name, tuple(requirement.extras)))
    return found


def _native_files() -> dict[str, list[Path]]:
    """The shared objects (extension modules and libraries loaded through ctypes) of each distribution."""
    files: dict[str, list[Path]] = {}
    for name, dist in _runtime_distributions().items():
        shared = [
            Path(str(dist.locate_file(f)))
            for f in dist.files or []
            if SHARED_OBJECT.search(f.name) and not str(f).startswith("..")
        ]
        if shared:
            files[name] = shared
    return files


def _modules(dist: metadata.Distribution) -> list[str]:
    """The distribution's top-level packages holding native code, then each of its extension modules."""
    tops: list[str] = []
    extensions: list[str] = []
    for f in dist.files or []:
        path = str(f)
        if path.startswith("..") or not SHARED_OBJECT.search(f.name):
            continue
        top = path.split("/")[0].split(".")[0]
        if top not in tops and not top.endswith("libs"):
            tops.append(top)
        suffix = next((s for s in machinery.EXTENSION_SUFFIXES if f.name.endswith(s)), None)
        dotted = path[: -len(suffix)].replace("/", ".") if suffix else ""
        if dotted and not f.name.startswith("lib") and "-" not in dotted and ".tests." not in dotted:
            extensions.append(dotted)
    return tops + extensions


def _import_orders() -> list[tuple[str, list[str]]]:
    dists = _runtime_distributions()
    native = sorted(_native_files())
    groups = {name: _modules(dists[name]) for name in native}
    orders = [("alphabetical", native), ("reversed", native[::-1])]
    orders += [
        (f"{first} first", [first, *(n for n in native if n != first)]) for first in FIRST if first in native
    ]
    return [(label, [module for name in order for module in groups[name]]) for label, order in orders]


def test_the_native_dependencies_are_found():
    native = _native_files()
    assert set(FIRST) <= set(native), sorted(native)


def test_every_native_dependency_loads_and_runs_in_any_order(tmp_path):
    def run(order: tuple[str, list[str]]) -> tuple[str, subprocess.CompletedProcess]:
        label, modules = order
        done = subprocess.run(
            [sys.executable, "-c", EXERCISE, *modules],
            capture_output=True,
            text=True,
            timeout=300,
            env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
            cwd=tmp_path,
        )
        return label, done

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, _import_orders()))
    failed = {label: (done.returncode, done.stderr[-400:]) for label, done in results if done.returncode != 0}
    assert not failed, failed
    assert all(done.stdout.strip().endswith("ok") for _, done in results)


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not shutil.which("readelf"), reason="ELF binaries"
)
def test_no_native_dependency_bundles_and_exports_its_own_cxx_runtime():
    bundled = []
    for name, paths in _native_files().items():
        for path in paths:
            symbols = subprocess.run(
                ["readelf", "-W", "--dyn-syms", str(path)], capture_output=True, text=True
            ).stdout
            # std::locale::classic(), defined (not imported) by the binary: a copy of libstdc++ lives inside
            # it.
            if any("_ZNSt6locale7classicEv" in line and " UND " not in line for line in symbols.splitlines()):
                bundled.append(f"{name}: {path.name}")
    assert not bundled, bundled
