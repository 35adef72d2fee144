"""Imports vLLM's own pure-Python modules from the vllm wheel without torch, for every golden generator.

The wheel is installed with --no-deps (hack/vllm-env.sh), so package __init__ files that pull in
torch, pydantic or a GPU platform must not run. An import hook loads every vllm package as a bare
namespace over its real source directory (its __init__ is skipped, its submodules load normally),
replaces the few modules that touch torch at import time with mocks, and turns any third-party
module that is not installed into a mock. The code the generators call (sha256_cbor, the request
block hasher and extra keys, KVCacheManager, BlockPool, FreeKVCacheBlockQueue, the kv_events msgspec
structs and ZmqEventPublisher) runs as vLLM's own, unmodified code. Nothing of vLLM is copied here.

Import this module before any vllm import.
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
# Modules whose import-time code needs torch or a platform; nothing the generators call.
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


def vllm_version() -> str:
    from importlib.metadata import version

    return version("vllm")


# What the hashing and event code really runs on must be real: a mock here would make wrong goldens.
for required in ("cbor2", "msgspec", "xxhash"):
    if importlib.util.find_spec(required) is None:
        raise ImportError(f"{required} is not installed: run hack/vllm-env.sh to build the generator venv")

if not any(isinstance(f, _VllmPackages) for f in sys.meta_path):
    sys.meta_path.insert(0, _VllmPackages())
    sys.meta_path.append(_MissingModules())
