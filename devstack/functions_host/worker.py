"""The Python worker side of the host: drives Azure's own Python execution runtime (azure-functions-runtime,
the code that runs Python 3.13+ apps in Azure) with the language worker protocol messages the Functions host
sends over gRPC — worker init with the app directory (the runtime indexes the app), functions metadata,
function load, invocation and environment reload — and reads its answers. Whatever the runtime refuses
fails here with the runtime's own message."""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure_functions_runtime as runtime

from devstack.functions_host.rpc import load_protos

HOST_VERSION = "4.0.0-local"


class AppLoadError(Exception):
    """The runtime refused the app (import error, indexing error, a function it cannot load), or the app
    uses something the local host does not serve."""


class FunctionFailed(Exception):
    """The runtime answered an invocation with Failure: `str()` is the runtime's exception message
    ("TypeName: message"), `error_type` the TypeName, `details` its stack trace."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details
        self.error_type = message.split(":", 1)[0] if ":" in message else "FunctionFailed"


@dataclass(frozen=True)
class BindingSpec:
    """One binding as the runtime reported it (its function.json form, from raw_bindings)."""

    type: str
    name: str
    direction: str
    settings: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.settings.get(key, default)


@dataclass(frozen=True)
class FunctionSpec:
    """A function the runtime indexed and loaded: its id, its trigger and its other bindings."""

    name: str
    function_id: str
    trigger: BindingSpec
    bindings: tuple[BindingSpec, ...]

    @property
    def trigger_type(self) -> str:
        return self.trigger.type

    def bindings_of(self, binding_type: str, direction: str | None = None) -> list[BindingSpec]:
        return [
            b
            for b in self.bindings
            if b.type == binding_type and (direction is None or b.direction == direction)
        ]


@dataclass
class _Request:
    """What the runtime's handlers take: `request` (a StreamingMessage) and `properties` (protos, host)."""

    request: Any
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InvocationResult:
    """A successful invocation: the `$return` value and the output bindings set, as TypedData."""

    return_value: Any
    outputs: dict[str, Any]


class PythonWorker:
    """One app in this process, run by azure-functions-runtime. The runtime keeps its state in module
    globals, so a process runs one app, as a Python worker process does."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.protos = load_protos()
        self._host = host
        self.app_dir: Path | None = None

    def _message(self, **content: Any) -> _Request:
        message = self.protos.StreamingMessage(request_id=str(uuid.uuid4()), **content)
        return _Request(request=message, properties={"protos": self.protos, "host": self._host})

    def _check(self, result: Any, what: str) -> None:
        if result.status != self.protos.StatusResult.Success:
            raise AppLoadError(f"{what}: {result.exception.message or 'failed'}")

    async def start(self, app_dir: Path) -> list[FunctionSpec]:
        """Init the runtime on the app (it indexes it), read the functions metadata and load every
        function; AppLoadError carries the runtime's message when it refuses anything."""
        await self._init(app_dir)
        return await self._load_functions()

    async def start_placeholder(self, placeholder_dir: Path) -> None:
        """Init the runtime as a placeholder worker: on a directory with no app, so nothing is indexed
        until specialize()."""
        await self._init(placeholder_dir)

    async def specialize(self, app_dir: Path, environment: dict[str, str]) -> list[FunctionSpec]:
        """Specialize a placeholder worker as the Functions host does: the runtime replaces the process
        environment with `environment` and indexes the app; then every function is loaded."""
        self._use_app_dir(app_dir)
        reloaded = await runtime.function_environment_reload_request(
            self._message(
                function_environment_reload_request=self.protos.FunctionEnvironmentReloadRequest(
                    environment_variables=environment, function_app_directory=str(self.app_dir)
                )
            )
        )
        self._check(reloaded.result, "the Python runtime refused the environment reload")
        return await self._load_functions()

    def _use_app_dir(self, app_dir: Path) -> None:
        self.app_dir = Path(app_dir).resolve()
        if str(self.app_dir) not in sys.path:
            sys.path.insert(0, str(self.app_dir))

    async def _init(self, app_dir: Path) -> None:
        self._use_app_dir(app_dir)
        runtime.start_threadpool_executor()
        init = await runtime.worker_init_request(
            self._message(
                worker_init_request=self.protos.WorkerInitRequest(
                    host_version=HOST_VERSION,
                    function_app_directory=str(self.app_dir),
                    worker_directory=str(Path(runtime.__file__).parent),
                )
            )
        )
        self._check(init.result, "the Python runtime refused the app")

    async def _load_functions(self) -> list[FunctionSpec]:
        protos = self.protos
        metadata = await runtime.functions_metadata_request(
            self._message(
                functions_metadata_request=protos.FunctionsMetadataRequest(
                    function_app_directory=str(self.app_dir)
                )
            )
        )
        self._check(metadata.result, "the Python runtime could not list the app's functions")
        found = list(metadata.function_metadata_results)
        if not found:
            raise AppLoadError(f"the Python runtime found no functions in {self.app_dir}")
        specs = []
        for function in found:
            loaded = await runtime.function_load_request(
                self._message(
                    function_load_request=protos.FunctionLoadRequest(
                        function_id=function.function_id, metadata=function
                    )
                )
            )
            self._check(loaded.result, f"the Python runtime could not load function {function.name!r}")
            specs.append(_spec(function))
        return specs

    async def invoke(
        self,
        spec: FunctionSpec,
        inputs: dict[str, Any],
        *,
        trigger_metadata: dict[str, Any] | None = None,
    ) -> InvocationResult:
        """Invoke a loaded function with its input bindings (name -> TypedData); FunctionFailed when the
        runtime reports a failure (what the function raised, or a binding it could not convert)."""
        protos = self.protos
        request = protos.InvocationRequest(
            invocation_id=str(uuid.uuid4()),
            function_id=spec.function_id,
            input_data=[protos.ParameterBinding(name=name, data=data) for name, data in inputs.items()],
            trigger_metadata=trigger_metadata or {},
        )
        response = await runtime.invocation_request(self._message(invocation_request=request))
        if response.result.status != protos.StatusResult.Success:
            raise FunctionFailed(response.result.exception.message, response.result.exception.stack_trace)
        return_value = response.return_value if response.HasField("return_value") else None
        outputs = {binding.name: binding.data for binding in response.output_data}
        return InvocationResult(return_value=return_value, outputs=outputs)

    def stop(self) -> None:
        runtime.stop_threadpool_executor()



def _spec(function: Any) -> FunctionSpec:
    bindings = [_binding(raw) for raw in function.raw_bindings]
    triggers = [b for b in bindings if b.type.endswith("Trigger")]
    if len(triggers) != 1:
        raise AppLoadError(f"function {function.name!r} has {len(triggers)} triggers; it needs exactly one")
    trigger = triggers[0]
    return FunctionSpec(
        name=function.name,
        function_id=function.function_id,
        trigger=trigger,
        bindings=tuple(b for b in bindings if b is not trigger),
    )


def _binding(raw: str) -> BindingSpec:
    settings = json.loads(raw)
    return BindingSpec(
        type=settings.get("type", ""),
        name=settings.get("name", ""),
        direction=str(settings.get("direction", "IN")).upper(),
        settings=settings,
    )
