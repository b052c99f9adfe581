// A walk through the Batch data plane with the JavaScript SDK (@azure/batch, pinned in package.json), a client
// this project did not write: supported images, create a pool with an SSH inbound NAT pool, get, list, resize,
// list nodes, create / replace / delete a node user, remote login settings, delete the pool.
//
// Configured like any Batch client, by environment: BATCH_ACCOUNT_URL, BATCH_ACCOUNT_NAME, BATCH_ACCOUNT_KEY,
// and WALK_POOL_ID, WALK_SSH_PUBLIC_KEY, WALK_FRONTEND_PORT (first port of the NAT pool's frontend range).
// It prints one JSON line per step on stdout. After the users exist it prints {"step": "users-ready", ...}
// with every node's SSH endpoint and waits for one line on stdin before it replaces and deletes them, so a
// caller can log in with the matching private key first. Exits non-zero on the first failure.
"use strict";

const readline = require("readline");
const { BatchServiceClient, BatchSharedKeyCredentials } = require("@azure/batch");

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const say = (step, detail = {}) => process.stdout.write(JSON.stringify({ step, ...detail }) + "\n");

async function until(what, check, timeoutMs = 120000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function allPages(first, next) {
  const items = [];
  let page = await first();
  items.push(...page);
  while (page.odatanextLink) {
    page = await next(page.odatanextLink);
    items.push(...page);
  }
  return items;
}

function readLine() {
  const input = readline.createInterface({ input: process.stdin });
  return new Promise((resolve) => input.once("line", (line) => {
    input.close();
    process.stdin.destroy(); // nothing more to read: let the process end when the walk does
    resolve(line);
  }));
}

async function walk() {
  const client = new BatchServiceClient(
    new BatchSharedKeyCredentials(env("BATCH_ACCOUNT_NAME"), env("BATCH_ACCOUNT_KEY")),
    env("BATCH_ACCOUNT_URL"),
  );
  const poolId = env("WALK_POOL_ID");
  const publicKey = env("WALK_SSH_PUBLIC_KEY");
  const frontend = Number(env("WALK_FRONTEND_PORT"));
  say("client", { apiVersion: client.apiVersion });

  const filter = "verificationType eq 'verified' and osType eq 'linux'";
  const images = await allPages(
    () => client.account.listSupportedImages({ accountListSupportedImagesOptions: { filter } }),
    (link) => client.account.listSupportedImagesNext(link),
  );
  const current = images.filter(
    (i) => i.nodeAgentSKUId.includes("ubuntu") && (!i.batchSupportEndOfLife || i.batchSupportEndOfLife > new Date()),
  );
  current.sort((a, b) => (a.nodeAgentSKUId < b.nodeAgentSKUId ? 1 : -1));
  const image = current[0];
  if (!image) throw new Error("no current verified Ubuntu image");
  say("supported-images", { count: images.length, chosen: image.nodeAgentSKUId });

  await client.pool.add({
    id: poolId,
    vmSize: "standard_d2s_v3",
    virtualMachineConfiguration: { imageReference: image.imageReference, nodeAgentSKUId: image.nodeAgentSKUId },
    targetDedicatedNodes: 1,
    startTask: { commandLine: "/bin/sh -c 'echo ready'", waitForSuccess: true, maxTaskRetryCount: 0 },
    networkConfiguration: {
      endpointConfiguration: {
        inboundNATPools: [
          {
            name: "ssh",
            protocol: "tcp",
            backendPort: 22,
            frontendPortRangeStart: frontend,
            frontendPortRangeEnd: frontend + 99,
            networkSecurityGroupRules: [{ priority: 150, access: "allow", sourceAddressPrefix: "*" }],
          },
        ],
      },
    },
  });
  say("create-pool", { poolId });

  const pool = await client.pool.get(poolId);
  say("get-pool", { state: pool.state, allocationState: pool.allocationState, vmSize: pool.vmSize });
  const listed = await allPages(
    () => client.pool.list({ poolListOptions: { filter: `id eq '${poolId}'` } }),
    (link) => client.pool.listNext(link),
  );
  if (listed.length !== 1 || listed[0].id !== poolId) throw new Error("list_pools does not show the pool");
  say("list-pools", { ids: listed.map((p) => p.id) });

  const idleNodes = (count) => until(`${count} idle nodes`, async () => {
    const nodes = await allPages(() => client.computeNode.list(poolId), (link) => client.computeNode.listNext(link));
    return nodes.length === count && nodes.every((n) => n.state === "idle") ? nodes : null;
  });
  await idleNodes(1);
  await until("the pool to be steady", async () => (await client.pool.get(poolId)).allocationState === "steady");
  await client.pool.resize(poolId, { targetDedicatedNodes: 2 });
  say("resize-pool", { targetDedicatedNodes: 2 });
  const nodes = await idleNodes(2);
  say("list-nodes", { states: nodes.map((n) => n.state), startTasks: nodes.map((n) => n.startTaskInfo.result) });

  const expiry = new Date(Date.now() + 60 * 60 * 1000);
  const endpoints = [];
  for (const node of nodes) {
    await client.computeNode.addUser(poolId, node.id, {
      name: "walker",
      isAdmin: false,
      expiryTime: expiry,
      sshPublicKey: publicKey,
    });
    const login = await client.computeNode.getRemoteLoginSettings(poolId, node.id);
    endpoints.push({ node: node.id, ip: login.remoteLoginIPAddress, port: login.remoteLoginPort });
  }
  say("users-ready", { user: "walker", endpoints });
  await readLine();

  for (const node of nodes) {
    await client.computeNode.updateUser(poolId, node.id, "walker", {
      expiryTime: new Date(Date.now() + 2 * 60 * 60 * 1000),
      sshPublicKey: publicKey,
    });
  }
  say("replace-user", { nodes: nodes.length });
  for (const node of nodes) {
    await client.computeNode.deleteUser(poolId, node.id, "walker");
  }
  say("delete-user", { nodes: nodes.length });

  await client.pool.deleteMethod(poolId);
  say("delete-pool", { poolId });
  await until("the pool to be gone", async () => !(await client.pool.exists(poolId)).body, 60000);
  say("pool-gone", { poolId });
}

walk().then(
  () => say("done"),
  (error) => {
    const code = error && error.body && error.body.code;
    say("failed", { message: String(error && error.message), status: error && error.statusCode, code });
    process.exitCode = 1;
  },
);
