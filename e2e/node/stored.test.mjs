// End-to-end test of stored objects and Realtime through `lifeline serve` with the official npm openai client
// (AzureOpenAI and OpenAI with a base URL, and its Realtime WebSocket client, OpenAIRealtimeWS over the `ws`
// package). Driven by gateway/node_test.go, which starts simulated regions (eastus preferred, westus) and the gateway
// on HTTPS (the Realtime client always uses wss://; NODE_EXTRA_CA_CERTS trusts the test certificate), with:
//   GATEWAY_URL   https://127.0.0.1:PORT      CLIENT_KEY   a client key of the gateway
//   ADMIN_URL     the admin listener          ADMIN_KEY    its key
//   CONTROL_URL   the simulator's fault API (POST /regions/{name}/fault)
//   SCENARIO      healthy (eastus serves) | primary-down (eastus down before any request: westus serves)
// The clients' own retries are off: what survives an outage, the gateway made survive.
import { test } from "node:test";
import assert from "node:assert/strict";
import { AzureOpenAI, OpenAI, toFile } from "openai";
import { OpenAIRealtimeWS } from "openai/realtime/ws";

const url = process.env.GATEWAY_URL;
const key = process.env.CLIENT_KEY;
const scenario = process.env.SCENARIO ?? "healthy";
const home = scenario === "primary-down" ? "westus" : "eastus";
assert.ok(url && key && process.env.ADMIN_URL && process.env.CONTROL_URL, "GATEWAY_URL, CLIENT_KEY, ADMIN_URL and CONTROL_URL must be set");

const azure = new AzureOpenAI({ endpoint: url, apiKey: key, apiVersion: "2025-04-01-preview", maxRetries: 0, timeout: 20000 });
const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0, timeout: 20000 });

async function admin(path) {
  const r = await fetch(process.env.ADMIN_URL + path, { method: "POST", headers: { Authorization: `Bearer ${process.env.ADMIN_KEY}` } });
  assert.equal(r.status, 200, `admin ${path}`);
}

async function fault(region, body) {
  const r = await fetch(`${process.env.CONTROL_URL}/regions/${region}/fault`, { method: "POST", body: JSON.stringify(body) });
  assert.equal(r.status, 200, `fault ${region} ${JSON.stringify(body)}`);
}

for (const [name, client] of Object.entries({ AzureOpenAI: azure, "OpenAI baseURL /v1": openai })) {
  test(`${name}: a stored response is retrieved, chained, listed and deleted in its region`, async () => {
    const { data: first, response } = await client.responses.create({ model: "gpt-4o", input: "My name is Ada." }).withResponse();
    assert.equal(response.headers.get("x-lifeline-region"), home);
    const got = await client.responses.retrieve(first.id);
    assert.equal(got.id, first.id);
    const items = await client.responses.inputItems.list(first.id);
    assert.equal(items.data.length, 1);
    const second = await client.responses.create({ model: "gpt-4o", input: "What is my name?", previous_response_id: first.id });
    assert.ok(second.usage.input_tokens > first.usage.input_tokens, "the first turn is not in the follow-up's context");

    if (scenario === "healthy") {
      // The response's region is disabled between turns: 503 naming the response and eastus, never westus.
      await admin("/admin/regions/eastus/disable");
      try {
        await assert.rejects(client.responses.create({ model: "gpt-4o", input: "And again?", previous_response_id: second.id }), (err) => {
          assert.equal(err.status, 503);
          assert.match(err.message, new RegExp(`response ${second.id} is stored in region eastus`));
          return true;
        });
      } finally {
        await admin("/admin/regions/eastus/enable");
      }
    }
    await client.responses.delete(first.id);
    await assert.rejects(client.responses.retrieve(first.id), (err) => err.status === 404);
  });

  test(`${name}: a file and the batch made from it stay in one region`, async () => {
    const line = JSON.stringify({ custom_id: "1", method: "POST", url: "/chat/completions", body: { model: "gpt-4o", messages: [{ role: "user", content: "hi" }] } });
    const { data: file, response } = await client.files.create({ file: await toFile(Buffer.from(line + "\n"), "batch.jsonl"), purpose: "batch" }).withResponse();
    assert.equal(response.headers.get("x-lifeline-region"), home);
    const { data: batch, response: r2 } = await client.batches
      .create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" })
      .withResponse();
    assert.equal(r2.headers.get("x-lifeline-region"), home);
    assert.equal((await client.batches.retrieve(batch.id)).input_file_id, file.id);
    const list = await client.files.list();
    assert.ok(list.data.some((f) => f.id === file.id), "the uploaded file is not in the merged list");
  });
}

// openSession opens a Realtime session and resolves once session.created arrived, with the region that serves it.
function openSession(rt) {
  return new Promise((resolve, reject) => {
    let region = null;
    rt.socket.on("upgrade", (res) => (region = res.headers["x-lifeline-region"]));
    rt.socket.on("unexpected-response", (_req, res) => reject(new Error(`handshake answered ${res.statusCode}`)));
    rt.socket.on("error", (err) => reject(err));
    rt.on("session.created", () => resolve(region));
    rt.on("error", (err) => reject(err));
  });
}

// respond sends one user turn and collects the text deltas until response.done.
function respond(rt, say, deltaType) {
  return new Promise((resolve, reject) => {
    let text = "";
    rt.on(deltaType, (ev) => (text += ev.delta));
    rt.on("response.done", () => resolve(text));
    rt.on("error", reject);
    rt.send({ type: "conversation.item.create", item: { type: "message", role: "user", content: [{ type: "input_text", text: say }] } });
    rt.send({ type: "response.create", response: { modalities: ["text"], output_modalities: ["text"] } });
  });
}

test("Realtime: AzureOpenAI (preview events) and OpenAI (GA events) sessions through the gateway", { timeout: 20000 }, async () => {
  for (const [open, delta] of [
    [() => OpenAIRealtimeWS.azure(azure, { deploymentName: "realtime" }), "response.text.delta"],
    [async () => new OpenAIRealtimeWS({ model: "realtime" }, openai), "response.output_text.delta"],
  ]) {
    const rt = await open(); // one at a time: a socket made early would see session.created before its listener
    const region = await openSession(rt);
    assert.equal(region, home);
    const text = await respond(rt, "Hello there", delta);
    assert.match(text, /Hello there/);
    assert.match(text, home === "eastus" ? /East US/ : /West US/);
    rt.close();
  }
});

test("Realtime: the region failing mid-session closes the socket with 1011 naming it", { timeout: 20000 }, async () => {
  const rt = new OpenAIRealtimeWS({ model: "realtime" }, openai);
  const region = await openSession(rt);
  assert.equal(region, home);
  const closed = new Promise((resolve) => rt.socket.on("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  rt.on("error", () => {}); // the close is what is checked
  await fault(home, { mode: "down" });
  try {
    const { code, reason } = await closed;
    assert.equal(code, 1011);
    assert.match(reason, new RegExp(home));
  } finally {
    if (scenario === "healthy") await fault(home, { mode: "clear" });
  }
});
