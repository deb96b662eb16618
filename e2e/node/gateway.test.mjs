// End-to-end test of `lifeline serve` with the official npm openai client: AzureOpenAI and OpenAI({ baseURL }),
// streaming and not. Driven by gateway/node_test.go, which starts simulated regions and the gateway, injects a
// fault, then runs this script once per scenario with:
//   GATEWAY_URL      http://127.0.0.1:PORT
//   CLIENT_KEY       a client key of the gateway
//   SCENARIO         ok (the answer must come from EXPECT_REGION, with no error) | cut (the stream must throw)
//   EXPECT_REGION    the region that must answer
// The clients' own retries are off: what survives an outage, the gateway made survive.
import { test } from "node:test";
import assert from "node:assert/strict";
import { AzureOpenAI, OpenAI } from "openai";

const url = process.env.GATEWAY_URL;
const key = process.env.CLIENT_KEY;
const scenario = process.env.SCENARIO ?? "ok";
const expectRegion = process.env.EXPECT_REGION ?? "eastus";
assert.ok(url && key, "GATEWAY_URL and CLIENT_KEY must be set");

const clients = {
  "AzureOpenAI": new AzureOpenAI({ endpoint: url, apiKey: key, apiVersion: "2024-10-21", maxRetries: 0, timeout: 20000 }),
  "OpenAI baseURL /openai/v1": new OpenAI({ baseURL: `${url}/openai/v1`, apiKey: key, maxRetries: 0, timeout: 20000 }),
  "OpenAI baseURL /v1": new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0, timeout: 20000 }),
};

const messages = [{ role: "user", content: "Say hello" }];

for (const [name, client] of Object.entries(clients)) {
  if (scenario === "ok") {
    test(`${name}: chat completion`, async () => {
      const { data, response } = await client.chat.completions.create({ model: "gpt-4o", messages }).withResponse();
      assert.ok(data.choices[0].message.content.length > 0, "empty answer");
      assert.ok(data.usage.total_tokens > 0, "no usage");
      assert.equal(response.headers.get("x-lifeline-region"), expectRegion);
      assert.ok(Number(response.headers.get("x-lifeline-attempts")) >= 1);
    });

    test(`${name}: streaming chat completion`, async () => {
      const { data: stream, response } = await client.chat.completions
        .create({ model: "gpt-4o", messages, stream: true, stream_options: { include_usage: true } })
        .withResponse();
      assert.equal(response.headers.get("x-lifeline-region"), expectRegion);
      let text = "";
      let chunks = 0;
      let usage = null;
      for await (const chunk of stream) {
        chunks++;
        text += chunk.choices[0]?.delta?.content ?? "";
        if (chunk.usage) usage = chunk.usage;
      }
      assert.ok(chunks > 2, `only ${chunks} chunks`);
      assert.ok(text.length > 0, "empty streamed answer");
      assert.ok(usage && usage.total_tokens > 0, "no usage chunk");
    });

    test(`${name}: responses API`, async () => {
      const { data, response } = await client.responses.create({ model: "gpt-4o", input: "Say hello" }).withResponse();
      assert.ok(data.output_text.length > 0, "empty output_text");
      assert.equal(response.headers.get("x-lifeline-region"), expectRegion);
    });

    test(`${name}: embeddings`, async () => {
      const r = await client.embeddings.create({ model: "embed", input: "hello" });
      assert.ok(r.data[0].embedding.length > 0);
    });

    test(`${name}: models list`, async () => {
      const ids = [];
      for await (const m of client.models.list()) ids.push(m.id);
      assert.deepEqual(ids.sort(), ["embed", "gpt-4o", "gpt-4o-mini"]);
    });

    test(`${name}: a wrong key is a 401 in the OpenAI error shape`, async () => {
      const bad = name === "AzureOpenAI"
        ? new AzureOpenAI({ endpoint: url, apiKey: "wrong", apiVersion: "2024-10-21", maxRetries: 0 })
        : new OpenAI({ baseURL: client.baseURL, apiKey: "wrong", maxRetries: 0 });
      await assert.rejects(bad.chat.completions.create({ model: "gpt-4o", messages }), (err) => {
        assert.equal(err.status, 401);
        assert.equal(err.code, "invalid_api_key");
        return true;
      });
    });

    test(`${name}: an unknown name is a 404`, async () => {
      await assert.rejects(client.chat.completions.create({ model: "gpt-unknown", messages }), (err) => {
        assert.equal(err.status, 404);
        return true;
      });
    });
  }

  if (scenario === "cut") {
    test(`${name}: a stream cut after its first events throws, it does not end cleanly`, async () => {
      const stream = await client.chat.completions.create({ model: "gpt-4o", messages, stream: true });
      let chunks = 0;
      await assert.rejects(
        (async () => {
          for await (const _ of stream) chunks++;
        })(),
        (err) => {
          assert.match(String(err.message ?? err), /stream|incomplete|broke/i);
          return true;
        },
      );
      assert.ok(chunks > 0, "the cut came before any chunk: not the scenario under test");
    });
  }
}
