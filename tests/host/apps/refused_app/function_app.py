"""An app Azure's Python runtime refuses: an activity whose bound parameter is annotated with a subscripted
generic. The host must not start it, and must say why with the runtime's own message."""

from typing import Any

import azure.durable_functions as df

app = df.DFApp()


@app.activity_trigger(input_name="payload")
def annotated_activity(payload: dict[str, Any]) -> dict:
    return payload
