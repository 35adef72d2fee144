"""Imports vLLM 0.33's pure-Python KV cache manager without torch.

The wheel is installed with --no-deps, so package __init__ files that pull in torch are skipped:
vllm packages load as bare namespaces over the real source directories, a few modules that touch
torch at import time are replaced by mocks, and any third-party module that is not installed
becomes a mock. Everything that decides block hashes, cache hits, eviction order and KV events
(BlockPool, FreeKVCacheBlockQueue, KVCacheManager, kv_cache_utils, kv_events, sha256_cbor) runs
as vLLM's own, unmodified code.
"""

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from unittest import mock

VLLM_DIR = os.path.join(
    os.path.dirname(os.path.dirname(importlib.util.find_spec("msgspec").origin)), "vllm"
)
# Modules whose import-time code needs torch or a platform; nothing the cache logic calls.
MOCKED = {
    "vllm.platforms",
    "vllm.utils.torch_utils",
    "vllm.utils.torch_version",
    "vllm.v1.request",
    "vllm.v1.metrics.perf",
}
WINDOWS_ONLY = {"_winapi", "winreg", "msvcrt", "nt", "_overlapped"}


class _MockModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        path = getattr(self, "__path__", None)
        if path:
            base = path[0]
            if os.path.isdir(os.path.join(base, name)) or os.path.isfile(
                os.path.join(base, name + ".py")
            ):
                return importlib.import_module(f"{self.__name__}.{name}")
        value = mock.MagicMock(name=f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


class _MockLoader(importlib.abc.Loader):
    def create_module(self, spec):
        module = _MockModule(spec.name)
        module.__path__ = list(spec.submodule_search_locations or [])
        return module

    def exec_module(self, module):
        pass


class _VllmPackages(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != "vllm" and not fullname.startswith("vllm."):
            return None
        if fullname in MOCKED:
            return importlib.machinery.ModuleSpec(fullname, _MockLoader(), is_package=True)
        directory = os.path.join(VLLM_DIR, *fullname.split(".")[1:])
        if os.path.isdir(directory):
            spec = importlib.machinery.ModuleSpec(fullname, _MockLoader(), is_package=True)
            spec.submodule_search_locations = [directory]
            return spec
        return None


class _MissingModules(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        top = fullname.split(".")[0]
        if top.startswith("_") or top in WINDOWS_ONLY:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MockLoader(), is_package=True)


sys.meta_path.insert(0, _VllmPackages())
sys.meta_path.append(_MissingModules())
