// Continuity traffic from the official npm openai client, for e2e/continuity (issue 12: gray failures on the
// default policy). The Go test starts simulated regions and `lifeline serve`, runs this script for DURATION_MS while
// it injects a fault and heals it, then reads RESULTS (one JSON line per request) and asserts on them together with
// its own openai-go traffic. The clients' retries are off: whatever survives the fault, the gateway made survive.
//   GATEWAY_URL  http://127.0.0.1:PORT          CLIENT_KEY  a client key of the gateway
//   DURATION_MS  how long to send               PAUSE_MS    pause between two requests of one worker
//   RESULTS      file to write the samples to   KINDS       comma-separated: chat, stream, embed (default all three)
//   PROMPTS      JSON array of prompts, taken in turn (default one short prompt)
//   STOP_FILE    the workers stop once this file exists (before DURATION_MS has passed)
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import { AzureOpenAI, OpenAI } from "openai";

const url = process.env.GATEWAY_URL;
const key = process.env.CLIENT_KEY;
const duration = Number(process.env.DURATION_MS ?? 10000);
const pause = Number(process.env.PAUSE_MS ?? 200);
const results = process.env.RESULTS;
const kinds = (process.env.KINDS ?? "chat,stream,embed").split(",");
const stopFile = process.env.STOP_FILE;
const prompts = JSON.parse(process.env.PROMPTS ?? '["Tell me about rivers"]');
assert.ok(url && key && results, "GATEWAY_URL, CLIENT_KEY and RESULTS must be set");

// Generous client timeouts: a stall on the default policy is only cut after policy.timeouts.stream_idle (60 s).
const clients = {
  "npm AzureOpenAI": new AzureOpenAI({ endpoint: url, apiKey: key, apiVersion: "2024-10-21", maxRetries: 0, timeout: 150000 }),
  "npm OpenAI /openai/v1": new OpenAI({ baseURL: `${url}/openai/v1`, apiKey: key, maxRetries: 0, timeout: 150000 }),
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function one(client, kind, p) {
  const prompt = prompts[p];
  const s = { kind, prompt: p, start: Date.now(), first: 0, end: 0, max_gap_ms: 0, region: "", hedged: false, name: "", err: "" };
  const mark = (now) => {
    const last = s.first ? s.last : s.start;
    s.max_gap_ms = Math.max(s.max_gap_ms, now - last);
    if (!s.first) s.first = now;
    s.last = now;
  };
  const headers = (h) => {
    s.region = h.get("x-lifeline-region") ?? "";
    s.hedged = h.get("x-lifeline-hedged") === "true";
    s.name = h.get("x-lifeline-name") ?? "";
  };
  const messages = [{ role: "user", content: prompt }];
  try {
    if (kind === "chat") {
      const { data, response } = await client.chat.completions.create({ model: "gpt-4o", messages, max_tokens: 24 }).withResponse();
      mark(Date.now());
      headers(response.headers);
      if (!data.choices[0]?.message?.content || !data.choices[0].finish_reason) throw new Error("incomplete answer");
    } else if (kind === "stream") {
      const { data: stream, response } = await client.chat.completions
        .create({ model: "gpt-4o", messages, max_tokens: 24, stream: true, stream_options: { include_usage: true } })
        .withResponse();
      headers(response.headers);
      let finished = false;
      let text = "";
      for await (const chunk of stream) {
        mark(Date.now());
        for (const c of chunk.choices ?? []) {
          text += c.delta?.content ?? "";
          if (c.finish_reason) finished = true;
        }
      }
      if (!finished || !text) throw new Error(`stream ended without a finish_reason (${text.length} characters)`);
    } else {
      const { data, response } = await client.embeddings.create({ model: "embed", input: prompt }).withResponse();
      mark(Date.now());
      headers(response.headers);
      if (!data.data[0]?.embedding?.length) throw new Error("empty embedding");
    }
  } catch (err) {
    s.err = `${err.status ?? ""} ${err.message ?? err}`.trim();
  }
  s.end = Date.now();
  if (s.first) s.max_gap_ms = Math.max(s.max_gap_ms, s.end - s.last);
  else s.max_gap_ms = s.end - s.start;
  delete s.last;
  return s;
}

test("continuity traffic", async () => {
  const samples = [];
  const deadline = Date.now() + duration;
  await Promise.all(
    Object.entries(clients).map(async ([name, client], w) => {
      for (let i = w; Date.now() < deadline && !(stopFile && existsSync(stopFile)); i++) {
        const s = await one(client, kinds[i % kinds.length], i % prompts.length);
        s.client = name;
        samples.push(s);
        await sleep(pause);
      }
    }),
  );
  writeFileSync(results, samples.map((s) => JSON.stringify(s)).join("\n") + "\n");
  assert.ok(samples.length > 0, "no request was sent");
});
