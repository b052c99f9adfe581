// The whole deployment `azd up` makes: a resource group with a Flex Consumption Function app (Python 3.13)
// running as a user-assigned managed identity, its storage (no shared keys), Application Insights on Log
// Analytics (no local auth), a Key Vault for PASSWORD_ENCRYPTION_KEY when password users are enabled, and a
// Batch account (created here, or an existing one given by its resource id), with the identity's roles.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; names the resource group and seeds the resource names.')
param environmentName string

@minLength(1)
@description('Region of every resource (one where Flex Consumption is offered).')
@metadata({ azd: { type: 'location' } })
param location string

@description('Object id of the person running azd (azd sets it); given, it may send requests to the request queue. Optional.')
param principalId string = ''

@description('Resource id of an existing Batch account to use; empty creates a new one (Microsoft Entra auth only).')
param batchAccountId string = ''

@secure()
@description('A Fernet key; set, password users are enabled and the key is kept in Key Vault. Empty disables them.')
param passwordEncryptionKey string = ''

@description('Cap on dedicated + spot nodes in one request (MAX_NODES_PER_REQUEST).')
param maxNodesPerRequest string = '100'
@description('Latest allowed user expiry from when a request arrives (MAX_ACCESS_DURATION, ISO 8601).')
param maxAccessDuration string = 'P7D'
@description('Expiry of a user that gives none (DEFAULT_ACCESS_DURATION).')
param defaultAccessDuration string = 'P1D'
@description('How long a run waits for idle nodes (PROVISION_DEADLINE).')
param provisionDeadline string = 'PT30M'
@description('FIRST/MAX backoff while waiting for nodes (IDLE_POLL_INTERVAL).')
param idlePollInterval string = 'PT5S/PT1M'
@description('NCRONTAB schedule of the expiry cleanup (CLEANUP_SCHEDULE).')
param cleanupSchedule string = '0 */5 * * * *'
@description('NCRONTAB schedule of reconcile: users for nodes that joined, records of vanished nodes (RECONCILE_SCHEDULE).')
param reconcileSchedule string = '0 */5 * * * *'
@description('Longest deleteAfter a pool request may ask for (MAX_POOL_LIFETIME, ISO 8601).')
param maxPoolLifetime string = 'P30D'
@description('SSH source prefixes for requests that name none (DEFAULT_SSH_SOURCE_PREFIXES); empty: such requests are rejected.')
param defaultSshSourcePrefixes string = ''
@allowed(['true', 'false'])
@description('Delete the pool when a request fails (DELETE_POOL_ON_FAILURE).')
param deletePoolOnFailure string = 'false'
@description('Most instances the Flex Consumption app scales out to.')
param maximumInstanceCount string = '40'

// The names the app defaults to (provisioning/settings.py); the template creates these queues and tables.
var requestQueueName = 'pool-requests'
var eventsQueueName = 'pool-events'
var connectionsTableName = 'sshconnections'
var requestsTableName = 'poolrequests'
var poolsTableName = 'managedpools'

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var functionAppName = 'func-${resourceToken}'
var deploymentContainerName = 'app-package-${resourceToken}'
var passwordUsersEnabled = !empty(passwordEncryptionKey)
var newBatchAccountName = 'ba${resourceToken}'
var newBatchAccountId = resourceId(subscription().subscriptionId, resourceGroupName, 'Microsoft.Batch/batchAccounts', newBatchAccountName)
var batchId = empty(batchAccountId) ? newBatchAccountId : batchAccountId
var batchIdParts = split(batchId, '/')
var resourceGroupName = 'rg-${environmentName}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: resourceGroupName
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-func-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    queueNames: [requestQueueName, eventsQueueName]
    tableNames: [connectionsTableName, requestsTableName, poolsTableName]
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module keyVault 'app/keyvault.bicep' = if (passwordUsersEnabled) {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv${resourceToken}'
    location: location
    tags: tags
    passwordEncryptionKey: passwordEncryptionKey
    readerPrincipalId: identity.outputs.principalId
  }
}

module newBatchAccount 'app/batch.bicep' = if (empty(batchAccountId)) {
  name: 'batch'
  scope: rg
  params: {
    name: newBatchAccountName
    location: location
    tags: tags
  }
}

// The Batch account may live in another resource group or subscription: its role is assigned there.
module batchAccess 'app/batch-access.bicep' = {
  name: 'batch-access-${resourceToken}'
  scope: resourceGroup(batchIdParts[2], batchIdParts[4])
  params: {
    accountName: last(batchIdParts)
    principalId: identity.outputs.principalId
  }
  dependsOn: [newBatchAccount]
}

module roles 'app/rbac.bicep' = {
  name: 'roles'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    principalId: identity.outputs.principalId
    deployerPrincipalId: principalId
  }
}

// Every setting the app reads, set here or deliberately left to its documented default (docs/settings.md):
// APP_BASE_URL defaults to https://$WEBSITE_HOSTNAME (set by the platform); BATCH_ACCOUNT_KEY stays unset so
// Batch is reached with the managed identity; FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION are
// not app settings on Flex Consumption (functionAppConfig.runtime holds them).
var appSettings = concat(
  [
    // Storage for the host, the durable task hub, the queues and tables: identity-based, user-assigned.
    {
      name: 'AzureWebJobsStorage__credential'
      value: 'managedidentity'
    }
    {
      name: 'AzureWebJobsStorage__clientId'
      value: identity.outputs.clientId
    }
    {
      name: 'AzureWebJobsStorage__blobServiceUri'
      value: storage.outputs.blobEndpoint
    }
    {
      name: 'AzureWebJobsStorage__queueServiceUri'
      value: storage.outputs.queueEndpoint
    }
    {
      name: 'AzureWebJobsStorage__tableServiceUri'
      value: storage.outputs.tableEndpoint
    }
    // Batch: Microsoft Entra ID with the same identity; the token scope of this cloud.
    {
      name: 'AZURE_CLIENT_ID'
      value: identity.outputs.clientId
    }
    {
      name: 'BATCH_ACCOUNT_URL'
      value: 'https://${batchAccess.outputs.accountEndpoint}'
    }
    {
      name: 'BATCH_ACCOUNT_NAME'
      value: last(batchIdParts)
    }
    {
      name: 'BATCH_AUTH_SCOPE'
      value: '${environment().batch}/.default'
    }
    // Telemetry: the runtime configures the Azure Monitor OpenTelemetry distro; Entra auth (local auth off).
    {
      name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
      value: monitoring.outputs.connectionString
    }
    {
      name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
      value: 'ClientId=${identity.outputs.clientId};Authorization=AAD'
    }
    {
      name: 'PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY'
      value: 'true'
    }
    // The app's own settings.
    {
      name: 'REQUEST_QUEUE_NAME'
      value: requestQueueName
    }
    {
      name: 'EVENTS_QUEUE_NAME'
      value: eventsQueueName
    }
    {
      name: 'CONNECTIONS_TABLE_NAME'
      value: connectionsTableName
    }
    {
      name: 'REQUESTS_TABLE_NAME'
      value: requestsTableName
    }
    {
      name: 'POOLS_TABLE_NAME'
      value: poolsTableName
    }
    {
      name: 'MAX_NODES_PER_REQUEST'
      value: maxNodesPerRequest
    }
    {
      name: 'MAX_ACCESS_DURATION'
      value: maxAccessDuration
    }
    {
      name: 'DEFAULT_ACCESS_DURATION'
      value: defaultAccessDuration
    }
    {
      name: 'PROVISION_DEADLINE'
      value: provisionDeadline
    }
    {
      name: 'IDLE_POLL_INTERVAL'
      value: idlePollInterval
    }
    {
      name: 'CLEANUP_SCHEDULE'
      value: cleanupSchedule
    }
    {
      name: 'RECONCILE_SCHEDULE'
      value: reconcileSchedule
    }
    {
      name: 'MAX_POOL_LIFETIME'
      value: maxPoolLifetime
    }
    {
      name: 'DEFAULT_SSH_SOURCE_PREFIXES'
      value: defaultSshSourcePrefixes
    }
    {
      name: 'DELETE_POOL_ON_FAILURE'
      value: deletePoolOnFailure
    }
  ],
  passwordUsersEnabled ? [{ name: 'PASSWORD_ENCRYPTION_KEY', value: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.secretUri})' }] : []
)

module functionApp 'app/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    deploymentContainerUrl: '${storage.outputs.blobEndpoint}${deploymentContainerName}'
    pythonVersion: '3.13'
    maximumInstanceCount: int(maximumInstanceCount)
    appSettings: appSettings
  }
  dependsOn: [roles, batchAccess, keyVault]
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output FUNCTION_APP_URL string = functionApp.outputs.url
output FUNCTION_KEY_COMMAND string = 'az functionapp keys list --resource-group ${rg.name} --name ${functionApp.outputs.name} --query functionKeys.default --output tsv'
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output REQUEST_QUEUE_URL string = '${storage.outputs.queueEndpoint}${requestQueueName}'
output EVENTS_QUEUE_URL string = '${storage.outputs.queueEndpoint}${eventsQueueName}'
output BATCH_ACCOUNT_RESOURCE_ID string = batchId
output BATCH_ACCOUNT_URL string = 'https://${batchAccess.outputs.accountEndpoint}'
output MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output LOG_ANALYTICS_WORKSPACE_ID string = monitoring.outputs.workspaceCustomerId
output PASSWORD_USERS_ENABLED bool = passwordUsersEnabled
