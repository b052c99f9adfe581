"""HTTP test app: route parameters, methods, auth levels, response shapes, failures and app settings."""

import json
import os

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


def _json(payload: dict, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(payload), status_code=status, mimetype="application/json")


@app.route(route="pools/{poolId}/users/{user?}", methods=["GET", "POST"])
def pool_user(req: func.HttpRequest) -> func.HttpResponse:
    body = req.get_body().decode() if req.get_body() else None
    return _json(
        {
            "method": req.method,
            "route": dict(req.route_params),
            "params": dict(req.params),
            "body": body,
            "marker": req.headers.get("x-marker"),
            "url_path": req.url.split("?")[0].split(":", 2)[2].split("/", 1)[1],
        }
    )


@app.route(route="items/{id:int?}", methods=["GET"])
def items(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"id": req.route_params.get("id")})


@app.route(route="items/special", methods=["GET"])
def special_item(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"special": True})


@app.route(route="public", auth_level=func.AuthLevel.ANONYMOUS)
async def public(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("anyone may call this")


@app.route(route="admin-op", auth_level=func.AuthLevel.ADMIN)
def admin_op(req: func.HttpRequest) -> str:
    return "admin done"


@app.route(route="created", methods=["PUT"])
def created(req: func.HttpRequest) -> func.HttpResponse:
    payload = req.get_json()
    return func.HttpResponse(
        json.dumps({"received": payload}),
        status_code=201,
        headers={"X-Resource": "r-1", "Set-Cookie": "session=abc; Path=/"},
        mimetype="application/json",
    )


@app.route(route="boom")
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("internal detail that must not reach the client")


@app.route(route="settings")
def settings(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return _json(
        {
            "from_file": os.environ.get("HTTP_APP_FROM_FILE"),
            "overridden": os.environ.get("HTTP_APP_OVERRIDDEN"),
            "function_name": context.function_name,
            "has_invocation_id": bool(context.invocation_id),
        }
    )


@app.route(route="threads", methods=["GET"])
def threads(req: func.HttpRequest) -> func.HttpResponse:
    """Where a sync function runs: the runtime's own thread pool, and its size."""
    import threading

    import azure_functions_runtime

    pool = azure_functions_runtime.get_threadpool_executor()
    in_pool = threading.current_thread().name.startswith(pool._thread_name_prefix + "_")
    return _json({"max_workers": pool._max_workers, "in_runtime_pool": in_pool})


@app.function_name("renamed_function")
@app.route(route="nothing", methods=["DELETE"])
def returns_nothing(req: func.HttpRequest):
    return None


@app.route(route="a-dict", methods=["GET"])
def returns_a_dict(req: func.HttpRequest):
    return {"not": "an HttpResponse"}
