"""Imports vLLM's own pure-Python hashing and kv_events modules from the vllm wheel without torch.

The wheel is installed with --no-deps, so importing `vllm` (whose __init__ pulls in torch) fails.
We register vLLM's package directories as bare namespace packages, so that their __init__ files do
not run, and put placeholders in sys.modules only for modules the hashing and event-encoding code
imports for type annotations or for unrelated code paths (configs, tensors, KV-cache specs). Every
function the golden generators call (sha256_cbor, init_none_hash, get_request_block_hasher,
generate_block_hash_extra_keys, to_event_extra_keys, hash_block_tokens, the msgspec event structs)
is vLLM's code, loaded from the installed wheel. Nothing of vLLM is copied here.
"""

import ast
import importlib
import importlib.util
import os
import sys
import types

_VLLM_DIR = os.path.dirname(importlib.util.find_spec("vllm").origin)

# Packages whose __init__ imports torch/pydantic; their submodules we need do not.
_NAMESPACE_PACKAGES = [
    "vllm",
    "vllm.utils",
    "vllm.v1",
    "vllm.v1.core",
    "vllm.distributed",
    "vllm.multimodal",
    "vllm.lora",
]

# vllm.config's __init__ needs pydantic; kv_cache_utils imports VllmConfig from it for annotations.
_PLACEHOLDER_PACKAGES = ["vllm.config"]


def _accept_anything(self, *args, **kwargs):
    self.args, self.kwargs = args, kwargs


class _Placeholder(types.ModuleType):
    """A module whose every attribute is an inert class: enough for imports used as annotations,
    and for the publisher's KVEventsConfig, which it only builds to report its settings."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        value = type(name, (), {"__module__": self.__name__, "__init__": _accept_anything})
        setattr(self, name, value)
        return value


# Imported by kv_cache_utils / kv_events but not on the hashing or encoding path.
_PLACEHOLDERS = [
    "vllm.config.kv_events",  # KVEventsConfig: publisher config only
    "vllm.v1.request",  # Request: annotation only; generators pass a request-shaped object
    "vllm.v1.kv_cache_interface",  # KV-cache specs: memory planning, not hashing
    "vllm.v1.kv_cache_spec_registry",
    "vllm.v1.utils",  # tensor_data: prompt-embeds hashing, which needs torch
    "vllm.utils.network_utils",  # helpers for binding tcp://*:0 (need psutil); we bind ipc://
]


def _load_function_from_source(module_name: str, relative_path: str, function_name: str):
    """Executes one top-level function of a vLLM source file whose module imports numpy/PIL.

    get_mm_features_in_window lives in vllm/multimodal/utils.py, whose other imports need numpy
    and PIL. The function itself only needs `bisect`, so we compile exactly its definition from
    the installed file rather than re-typing it.
    """
    path = os.path.join(_VLLM_DIR, relative_path)
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == function_name:
            # Annotations refer to names from the skipped imports; drop them, the body is kept.
            node.returns = None
            for arg in node.args.args + node.args.kwonlyargs:
                arg.annotation = None
            code = compile(ast.Module(body=[node], type_ignores=[]), path, "exec")
            namespace: dict = {"bisect": importlib.import_module("bisect")}
            exec(code, namespace)
            module = sys.modules.get(module_name) or _Placeholder(module_name)
            setattr(module, function_name, namespace[function_name])
            sys.modules[module_name] = module
            return namespace[function_name]
    raise LookupError(f"{function_name} not found in {path}")


def install() -> None:
    for name in _NAMESPACE_PACKAGES:
        if name in sys.modules:
            continue
        module = types.ModuleType(name)
        module.__path__ = [os.path.join(_VLLM_DIR, *name.split(".")[1:])]
        sys.modules[name] = module
    for name in _PLACEHOLDER_PACKAGES:
        module = _Placeholder(name)
        module.__path__ = [os.path.join(_VLLM_DIR, *name.split(".")[1:])]
        sys.modules.setdefault(name, module)
    for name in _PLACEHOLDERS:
        sys.modules.setdefault(name, _Placeholder(name))
    _load_function_from_source(
        "vllm.multimodal.utils", "multimodal/utils.py", "get_mm_features_in_window"
    )


def vllm_version() -> str:
    from importlib.metadata import version

    return version("vllm")


install()
