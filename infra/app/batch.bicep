// A new Batch account (Batch-service pool allocation) that accepts Microsoft Entra ID only: no shared key
// exists to leak. Used when no existing account is given.
param name string
param location string
param tags object = {}

resource account 'Microsoft.Batch/batchAccounts@2024-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    poolAllocationMode: 'BatchService'
    publicNetworkAccess: 'Enabled'
    allowedAuthenticationModes: ['AAD']
  }
}

output id string = account.id
