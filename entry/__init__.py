"""What the triggers call: one intake entry per kind of request (pool request, access grant), the revoke and
pool-deletion starters, and the read views. Knows the Functions and durable client objects; no Batch SDK."""
