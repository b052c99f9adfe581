"""An app using bindings the local host does not serve: it must be refused at start, by name."""

import azure.functions as func

app = func.FunctionApp()


@app.route(route="rows")
@app.table_input(arg_name="rows", table_name="records", connection="AzureWebJobsStorage", partition_key="p")
def read_rows(req: func.HttpRequest, rows: str) -> func.HttpResponse:
    return func.HttpResponse(rows)


@app.blob_trigger(arg_name="blob", path="uploads/{name}", connection="AzureWebJobsStorage")
def on_upload(blob: func.InputStream) -> None:
    pass


@app.route(route="fine")
def fine(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("fine")
