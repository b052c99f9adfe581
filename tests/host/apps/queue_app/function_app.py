"""Queue test app: a processed message with an output binding, retries to the poison queue, binary bodies,
and an HTTP function with a queue output."""

import json
import os
from pathlib import Path

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def _record(name: str, line: str) -> None:
    with open(Path(os.environ["RECORD_DIR"]) / name, "a") as out:
        out.write(line + "\n")


@app.queue_trigger(arg_name="msg", queue_name="%ECHO_QUEUE%", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="out", queue_name="hostq-echo-out", connection="AzureWebJobsStorage")
def echo(msg: func.QueueMessage, out: func.Out[str]) -> None:
    out.set(
        json.dumps(
            {
                "body": msg.get_body().decode(),
                "id": msg.id,
                "dequeue_count": msg.dequeue_count,
                "has_times": None not in (msg.insertion_time, msg.expiration_time),
                "has_pop_receipt": bool(msg.pop_receipt),
            }
        )
    )


@app.queue_trigger(arg_name="msg", queue_name="hostq-flaky", connection="AzureWebJobsStorage")
def always_fails(msg: func.QueueMessage) -> None:
    _record("flaky.log", f"{msg.get_body().decode()} {msg.dequeue_count}")
    raise ValueError("this function always fails")


@app.queue_trigger(arg_name="msg", queue_name="hostq-retry", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="out", queue_name="hostq-retry-out", connection="AzureWebJobsStorage")
def fails_once(msg: func.QueueMessage, out: func.Out[str]) -> None:
    if msg.dequeue_count == 1:
        raise ValueError("first attempt fails")
    out.set(f"done after {msg.dequeue_count} attempts")


@app.queue_trigger(arg_name="msg", queue_name="hostq-binary", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="out", queue_name="hostq-binary-out", connection="AzureWebJobsStorage")
async def binary(msg: func.QueueMessage, out: func.Out[str]) -> None:
    out.set(msg.get_body().hex())


@app.route(route="enqueue", methods=["POST"])
@app.queue_output(arg_name="out", queue_name="hostq-http-out", connection="AzureWebJobsStorage")
def enqueue(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
    out.set([req.get_body().decode(), "second"])
    return func.HttpResponse("queued", status_code=202)
