// Deployed in the Batch account's own resource group (new or existing): gives the app's identity
// Azure Batch Data Contributor on the account and reports its endpoint.
param accountName string
param principalId string

var batchDataContributor = '6aaa78f1-f7de-44ca-8722-c64a23943cae'

resource account 'Microsoft.Batch/batchAccounts@2024-07-01' existing = {
  name: accountName
}

resource dataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, batchDataContributor)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', batchDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// e.g. ACCOUNT.REGION.batch.azure.com (host name only; the cloud's own suffix).
output accountEndpoint string = account.properties.accountEndpoint
