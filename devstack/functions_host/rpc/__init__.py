"""The language worker protocol messages the local host exchanges with azure-functions-runtime: compiles
`function_rpc.proto` with grpcio-tools (once, cached next to it until the .proto changes) and hands out the
generated module, which the runtime receives as its `protos`."""

from __future__ import annotations

import importlib.util
import os
import tempfile
import threading
from functools import cache
from pathlib import Path
from types import ModuleType

PROTO = Path(__file__).with_name("function_rpc.proto")
GENERATED_DIR = Path(__file__).with_name("_generated")
MODULE_NAME = "function_rpc_pb2"
_lock = threading.Lock()


class ProtoCompileError(RuntimeError):
    """protoc refused function_rpc.proto."""


@cache
def load_protos() -> ModuleType:
    """The generated message module (StreamingMessage, InvocationRequest, TypedData, RpcHttp, ...)."""
    with _lock:
        target = GENERATED_DIR / f"{MODULE_NAME}.py"
        if not target.exists() or target.stat().st_mtime < PROTO.stat().st_mtime:
            _compile(target)
        spec = importlib.util.spec_from_file_location(f"{__name__}._generated.{MODULE_NAME}", target)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


def _compile(target: Path) -> None:
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).with_name("_proto")
    target.parent.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as out:
        code = protoc.main(
            ["protoc", f"-I{PROTO.parent}", f"-I{well_known}", f"--python_out={out}", PROTO.name]
        )
        if code != 0:
            raise ProtoCompileError(f"protoc could not compile {PROTO.name} (exit code {code})")
        os.replace(Path(out) / f"{MODULE_NAME}.py", target)
