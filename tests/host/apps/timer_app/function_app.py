"""Timer test app: runOnStartup, a per-second NCRONTAB schedule, a schedule from an app setting, a TimeSpan
schedule and a monitored schedule that reports past-due runs."""

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import azure.functions as func

app = func.FunctionApp()


def _record(name: str, timer: func.TimerRequest) -> None:
    line = json.dumps({"at": datetime.now(UTC).isoformat(), "past_due": timer.past_due})
    with open(Path(os.environ["RECORD_DIR"]) / name, "a") as out:
        out.write(line + "\n")


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=True, use_monitor=False)
def on_startup(timer: func.TimerRequest) -> None:
    _record("on_startup", timer)


@app.timer_trigger(schedule="*/1 * * * * *", arg_name="timer")
def every_second(timer: func.TimerRequest) -> None:
    _record("every_second", timer)


@app.timer_trigger(schedule="%TIMER_APP_SCHEDULE%", arg_name="timer")
def from_setting(timer: func.TimerRequest) -> None:
    _record("from_setting", timer)


@app.timer_trigger(schedule="00:00:01", arg_name="timer")
def timespan(timer: func.TimerRequest) -> None:
    _record("timespan", timer)


@app.timer_trigger(schedule="*/2 * * * * *", arg_name="timer", use_monitor=True)
def monitored(timer: func.TimerRequest) -> None:
    _record("monitored", timer)
