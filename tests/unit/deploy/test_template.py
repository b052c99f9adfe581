"""The azd template (azure.yaml + infra/): it parses, it sets every setting the app reads (or the docs say
why not), its roles are the built-in ones, its queues and tables are the app's, and it holds no secret."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from provisioning.settings import DEFAULTS
from tests.unit.deploy.template import (
    INFRA,
    ROOT,
    app_settings,
    bicep_files,
    connection_names,
    documented_rows,
    parse,
    settings_read_by_load_settings,
    settings_read_elsewhere,
    variables,
    walk,
)

# Azure built-in role definition ids (the same in every cloud), from Microsoft's "Azure built-in roles" list.
BUILT_IN_ROLES = {
    "Azure Batch Data Contributor": "6aaa78f1-f7de-44ca-8722-c64a23943cae",
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Storage Queue Data Message Sender": "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a",
}
# What the app's identity must hold (the list); the message sender role is the deploying person's.
APP_IDENTITY_ROLES = set(BUILT_IN_ROLES) - {"Storage Queue Data Message Sender"}
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_bicep_file_parses(path: Path):
    parsed = parse(path)
    assert parsed.get("resources") or parsed.get("modules"), f"{path} declares nothing"


def test_a_syntax_error_is_caught_by_the_parser(tmp_path):
    broken = tmp_path / "broken.bicep"
    broken.write_text("resource x 'Microsoft.Web/sites@2024-04-01' = {\n  name: 'a'\n", encoding="utf-8")
    with pytest.raises(Exception):  # noqa: B017 - lark raises its own error types
        parse(broken)


def test_every_module_the_template_uses_exists_and_modules_are_local():
    for path in bicep_files():
        for name, module in parse(path).get("modules", {}).items():
            target = module["detail"]["path"]
            assert module["type"] == "local", f"{path.name}:{name} uses a registry module: {target}"
            assert (path.parent / target).is_file(), f"{path.name}:{name} -> missing {target}"


def test_every_setting_the_app_reads_is_set_by_the_template_or_documented_as_defaulted():
    read = settings_read_by_load_settings() | settings_read_elsewhere()
    assert {"BATCH_ACCOUNT_URL", "CLEANUP_SCHEDULE", "REQUEST_QUEUE_NAME", "AZURE_CLIENT_ID"} <= read
    defaulted = documented_rows("### Left to their defaults in Azure")
    missing = sorted(read - set(app_settings()) - defaulted)
    assert not missing, f"read by the app, not set in infra/main.bicep nor documented as defaulted: {missing}"
    assert not (defaulted - read), "docs/settings.md lists as defaulted what the app never reads"


def test_every_setting_the_template_sets_is_read_by_the_app_or_documented():
    read = settings_read_by_load_settings() | settings_read_elsewhere()
    platform = documented_rows("### Set for the host and the runtime, not read by the app's code")
    unknown = sorted(set(app_settings()) - read - platform)
    assert not unknown, f"infra/main.bicep sets settings nobody reads (a typo?): {unknown}"


def test_the_bindings_connection_is_an_identity_based_group_in_the_template():
    settings = app_settings()
    for connection in connection_names():
        assert settings[f"{connection}__credential"] == "managedidentity"
        for key in ("clientId", "blobServiceUri", "queueServiceUri", "tableServiceUri"):
            assert f"{connection}__{key}" in settings
        assert connection not in settings, "no connection string: shared-key access is disabled"


def test_the_cleanup_schedule_binding_setting_always_exists():
    assert "CLEANUP_SCHEDULE" in settings_read_elsewhere()  # %CLEANUP_SCHEDULE% in the timer binding
    assert "CLEANUP_SCHEDULE" in app_settings()


def test_identity_and_telemetry_settings_have_the_shapes_functions_defines():
    settings = app_settings()
    assert settings["PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"] == "true"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == (
        "ClientId=${identity.outputs.clientId};Authorization=AAD"
    )
    assert settings["BATCH_AUTH_SCOPE"] == "${environment().batch}/.default"
    assert "PASSWORD_ENCRYPTION_KEY" in settings and settings["PASSWORD_ENCRYPTION_KEY"].startswith(
        "@Microsoft.KeyVault(SecretUri="
    )
    for name in ("FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "BATCH_ACCOUNT_KEY"):
        assert name not in settings, f"{name} must not be an app setting on Flex Consumption / in Azure"


def test_the_app_setting_parameters_default_to_the_apps_own_defaults():
    parameters = parse(INFRA / "main.bicep")["parameters"]
    by_setting = {
        "MAX_NODES_PER_REQUEST": "maxNodesPerRequest",
        "MAX_ACCESS_DURATION": "maxAccessDuration",
        "DEFAULT_ACCESS_DURATION": "defaultAccessDuration",
        "PROVISION_DEADLINE": "provisionDeadline",
        "IDLE_POLL_INTERVAL": "idlePollInterval",
        "CLEANUP_SCHEDULE": "cleanupSchedule",
        "DELETE_POOL_ON_FAILURE": "deletePoolOnFailure",
    }
    azd_parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    for setting, parameter in by_setting.items():
        assert parameters[parameter]["default"] == DEFAULTS[setting], setting
        assert app_settings()[setting] == parameter
        assert azd_parameters[parameter]["value"] == f"${{{setting}={DEFAULTS[setting]}}}", setting


def test_the_queues_and_tables_created_are_the_apps_defaults():
    main = variables(INFRA / "main.bicep")
    assert main["requestQueueName"] == DEFAULTS["REQUEST_QUEUE_NAME"]
    assert main["eventsQueueName"] == DEFAULTS["EVENTS_QUEUE_NAME"]
    assert main["connectionsTableName"] == DEFAULTS["CONNECTIONS_TABLE_NAME"]
    assert main["requestsTableName"] == DEFAULTS["REQUESTS_TABLE_NAME"]
    assert main["poolsTableName"] == DEFAULTS["POOLS_TABLE_NAME"]
    settings = app_settings()
    for setting, variable in [
        ("REQUEST_QUEUE_NAME", "requestQueueName"),
        ("EVENTS_QUEUE_NAME", "eventsQueueName"),
        ("CONNECTIONS_TABLE_NAME", "connectionsTableName"),
        ("REQUESTS_TABLE_NAME", "requestsTableName"),
        ("POOLS_TABLE_NAME", "poolsTableName"),
    ]:
        assert settings[setting] == variable
    storage = parse(INFRA / "main.bicep")["modules"]["storage"]["config"]["params"]
    assert storage["queueNames"] == ["requestQueueName", "eventsQueueName"]
    assert storage["tableNames"] == ["connectionsTableName", "requestsTableName", "poolsTableName"]
    resources = parse(INFRA / "app" / "storage.bicep")["resources"]
    assert resources["queues"]["type"] == "Microsoft.Storage/storageAccounts/queueServices/queues"
    assert resources["tables"]["type"] == "Microsoft.Storage/storageAccounts/tableServices/tables"


def _role_name(variable: str) -> str:
    """`storageBlobDataOwner` -> `storage blob data owner`."""
    return re.sub(r"(?<!^)([A-Z])", r" \1", variable).lower()


def role_variables() -> dict[str, str]:
    """Every template variable holding a GUID: variable name -> id."""
    found = {}
    for path in bicep_files():
        for name, value in variables(path).items():
            if isinstance(value, str) and GUID.match(value):
                found[name] = value
    return found


def test_role_definition_ids_are_the_built_in_ones_for_the_roles_they_are_named_after():
    by_name = {name.lower(): role_id for name, role_id in BUILT_IN_ROLES.items()}
    roles = role_variables()
    assert roles, "no role definition ids found"
    for variable, role_id in roles.items():
        name = _role_name(variable)
        name = "azure " + name if name.startswith("batch") else name
        assert by_name.get(name) == role_id, f"{variable} = {role_id} is not the built-in id of '{name}'"
    named = {_role_name(v).removeprefix("azure ") for v in roles}
    for role in APP_IDENTITY_ROLES:
        assert role.lower().removeprefix("azure ") in named, f"no assignment of {role}"


def test_every_role_assignment_uses_a_built_in_role_variable_and_is_scoped_to_one_resource():
    roles = role_variables()
    assigned = set()
    for path in bicep_files():
        for name, resource in parse(path).get("resources", {}).items():
            if resource["type"] != "Microsoft.Authorization/roleAssignments":
                continue
            config = resource["config"]
            loop = config.get("loop_type")
            body = config if "properties" in config else config["config"]
            role = body["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
            candidates = loop["detail"]["array_name"] if loop else [role]
            assert all(c in roles for c in candidates), f"{path.name}:{name} uses {candidates}"
            assert body.get("scope"), f"{path.name}:{name} must be scoped to a resource, not the group"
            assigned.update(candidates)
    assert {_role_name(v) for v in assigned} >= {_role_name(v) for v in roles if "sender" not in v.lower()}


SECRET_PATTERNS = [
    re.compile(r"AccountKey\s*=", re.I),
    re.compile(r"SharedAccessSignature|[?&]sig=", re.I),
    re.compile(r"InstrumentationKey\s*=", re.I),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\b[A-Za-z0-9_-]{43}=(?![A-Za-z0-9])"),  # a Fernet key
    re.compile(r"\b[A-Za-z0-9+/]{80,}={0,2}"),  # a storage / Batch shared key
]


def template_files() -> list[Path]:
    return [*bicep_files(), INFRA / "main.parameters.json", ROOT / "azure.yaml"]


@pytest.mark.parametrize("path", template_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_secret_value_is_a_literal_in_the_template(path: Path):
    text = path.read_text(encoding="utf-8")
    for pattern in SECRET_PATTERNS:
        assert not pattern.search(text), f"{path.name}: looks like a secret ({pattern.pattern})"


def test_secure_parameters_have_no_default_and_are_never_output():
    for path in bicep_files():
        parsed = parse(path)
        secure = {
            name
            for name, parameter in parsed.get("parameters", {}).items()
            if any(d.get("type") == "secure" for d in parameter.get("decorators", []) if isinstance(d, dict))
        }
        for name in secure:
            default = parsed["parameters"][name].get("default")
            assert default in (None, ""), f"{path.name}: {name} has a default"
        for output in parsed.get("outputs", {}).values():
            strings = [node for node in walk(output) if isinstance(node, str)]
            assert not any(s == name or f"{{{name}}}" in s for s in strings for name in secure), path.name
    assert "passwordEncryptionKey" in {
        name
        for name, p in parse(INFRA / "main.bicep")["parameters"].items()
        if any(isinstance(d, dict) and d.get("type") == "secure" for d in p.get("decorators", []))
    }


def test_storage_refuses_shared_keys_and_app_insights_refuses_local_auth():
    storage = parse(INFRA / "app" / "storage.bicep")["resources"]["account"]["config"]["properties"]
    assert storage["allowSharedKeyAccess"] is False
    assert storage["allowBlobPublicAccess"] is False
    insights = parse(INFRA / "app" / "monitoring.bicep")["resources"]["applicationInsights"]["config"]
    assert insights["properties"]["DisableLocalAuth"] is True
    assert insights["properties"]["WorkspaceResourceId"]
    batch = parse(INFRA / "app" / "batch.bicep")["resources"]["account"]["config"]["properties"]
    assert batch["allowedAuthenticationModes"] == ["AAD"]


def test_the_function_app_is_flex_consumption_python_313_with_the_user_assigned_identity():
    resources = parse(INFRA / "app" / "functionapp.bicep")["resources"]
    plan = resources["plan"]["config"]
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    site = resources["site"]["config"]
    assert site["identity"]["type"] == "UserAssigned"
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"]["name"] == "python"
    assert config["deployment"]["storage"]["type"] == "blobContainer"
    assert config["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
    assert site["properties"]["keyVaultReferenceIdentity"] == "identityId"
    module = parse(INFRA / "main.bicep")["modules"]["functionApp"]["config"]["params"]
    assert module["pythonVersion"] == "3.13"


def test_outputs_tell_the_url_and_how_to_get_a_function_key():
    outputs = parse(INFRA / "main.bicep")["outputs"]
    assert "FUNCTION_APP_URL" in outputs
    assert "az functionapp keys list" in outputs["FUNCTION_KEY_COMMAND"]["value"]


def test_azure_yaml_deploys_the_repository_root_as_a_python_function_app():
    text = (ROOT / "azure.yaml").read_text(encoding="utf-8")
    assert re.search(r"^\s+project: \.$", text, re.M)
    assert re.search(r"^\s+language: python$", text, re.M)
    assert re.search(r"^\s+host: function$", text, re.M)
    assert re.search(r"^\s+path: infra$", text, re.M)
    tags = parse(INFRA / "app" / "functionapp.bicep")["resources"]["site"]["config"]["tags"]
    assert "api" in json.dumps(tags)  # azd finds the app by its azd-service-name tag
