// The npm openai package's AzureOpenAI client talks to the Lifeline simulator unchanged (plain HTTP on loopback).
// Driven by sim/node_test.go through internal/nodetest with SIM_URL (a region's base URL) and SIM_KEY.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { AzureOpenAI, APIError } from 'openai';

const endpoint = process.env.SIM_URL;
const apiKey = process.env.SIM_KEY;
assert.ok(endpoint, 'SIM_URL must be set');
assert.ok(apiKey, 'SIM_KEY must be set');

const client = (opts = {}) => new AzureOpenAI({ endpoint, apiKey, apiVersion: '2024-10-21', maxRetries: 0, ...opts });

test('chat completion, non-streaming, with Azure fields and headers', async () => {
  const { data, response } = await client().chat.completions
    .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hello from node' }] })
    .withResponse();
  assert.match(data.id, /^chatcmpl-/);
  assert.equal(data.object, 'chat.completion');
  assert.equal(data.model, 'gpt-4o-2024-11-20');
  assert.ok(data.created > 0);
  assert.ok(data.system_fingerprint.startsWith('fp_'));
  assert.equal(data.choices.length, 1);
  const choice = data.choices[0];
  assert.equal(choice.message.role, 'assistant');
  assert.ok(choice.message.content.length > 0);
  assert.equal(choice.finish_reason, 'stop');
  assert.deepEqual(choice.content_filter_results.violence, { filtered: false, severity: 'safe' });
  assert.equal(data.prompt_filter_results[0].prompt_index, 0);
  assert.equal(data.prompt_filter_results[0].content_filter_results.hate.severity, 'safe');
  assert.ok(data.usage.prompt_tokens > 0);
  assert.equal(data.usage.total_tokens, data.usage.prompt_tokens + data.usage.completion_tokens);
  assert.equal(data.usage.completion_tokens_details.reasoning_tokens, 0);
  assert.equal(data.usage.prompt_tokens_details.cached_tokens, 0);
  assert.ok(response.headers.get('x-ms-region'));
  assert.ok(response.headers.get('apim-request-id'));
  assert.ok(response.headers.get('x-request-id'));
  assert.ok(Number(response.headers.get('x-ratelimit-remaining-requests')) >= 0);
  assert.ok(Number(response.headers.get('x-ratelimit-remaining-tokens')) >= 0);
});

test('chat completion, streaming, with include_usage', async () => {
  const stream = await client().chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'sim:tokens=7' }],
    stream: true,
    stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.deepEqual(chunks[0].choices, []);
  assert.equal(chunks[0].prompt_filter_results[0].content_filter_results.sexual.severity, 'safe');
  assert.equal(chunks[1].choices[0].delta.role, 'assistant');
  const text = chunks.flatMap((c) => c.choices.map((ch) => ch.delta?.content ?? '')).join('');
  assert.equal(text.trim().split(/\s+/).length, 7);
  const finish = chunks.find((c) => c.choices[0]?.finish_reason);
  assert.equal(finish.choices[0].finish_reason, 'stop');
  const last = chunks[chunks.length - 1];
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage.completion_tokens, 7);
  assert.equal(last.model, 'gpt-4o-mini-2024-07-18');
  assert.match(last.id, /^chatcmpl-/);
});

test('embeddings (the SDK asks for base64 and decodes it)', async () => {
  const res = await client().embeddings.create({ model: 'text-embedding-3-small', input: ['one', 'two'] });
  assert.equal(res.data.length, 2);
  assert.equal(res.data[0].embedding.length, 1536);
  assert.equal(res.data[1].index, 1);
  const norm = Math.sqrt(res.data[0].embedding.reduce((s, x) => s + x * x, 0));
  assert.ok(Math.abs(norm - 1) < 1e-3, `unit vector, norm ${norm}`);
  const again = await client().embeddings.create({ model: 'text-embedding-3-small', input: 'one' });
  assert.deepEqual(again.data[0].embedding, res.data[0].embedding, 'deterministic vectors');
});

test('errors: unknown deployment, content filter, bad key', async () => {
  await assert.rejects(
    client().chat.completions.create({ model: 'missing', messages: [{ role: 'user', content: 'x' }] }),
    (err) => err instanceof APIError && err.status === 404 && err.code === 'DeploymentNotFound',
  );
  await assert.rejects(
    client().chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'sim:content_filter' }] }),
    (err) => err instanceof APIError && err.status === 400 && err.code === 'content_filter' &&
      err.error.innererror.content_filter_result.violence.filtered === true,
  );
  await assert.rejects(
    client({ apiKey: 'wrong' }).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }),
    (err) => err instanceof APIError && err.status === 401,
  );
});

test('models list', async () => {
  const ids = [];
  for await (const m of client().models.list()) ids.push(m.id);
  assert.ok(ids.includes('gpt-4o-2024-11-20'), ids.join(','));
});

test('v1 surface with the plain OpenAI client (key as Bearer): chat and Responses, streaming', async () => {
  const v1 = new OpenAI({ baseURL: `${endpoint}/openai/v1/`, apiKey, maxRetries: 0 });
  const chat = await v1.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(chat.model, 'gpt-4o-2024-11-20');
  const resp = await v1.responses.create({ model: 'gpt-4o', input: 'sim:tokens=3' });
  assert.equal(resp.status, 'completed');
  assert.equal(resp.output_text.trim().split(/\s+/).length, 3);
  assert.equal(resp.usage.output_tokens, 3);
  const events = [];
  for await (const ev of await v1.responses.create({ model: 'gpt-4o', input: 'sim:tokens=2', stream: true })) events.push(ev.type);
  assert.equal(events[0], 'response.created');
  assert.equal(events.filter((t) => t === 'response.output_text.delta').length, 2);
  assert.equal(events[events.length - 1], 'response.completed');
});

test('Responses shapes: function calls, refusal, log probabilities, content filters; the stream helper accumulates the same', async () => {
  const v1 = new OpenAI({ baseURL: `${endpoint}/openai/v1/`, apiKey, maxRetries: 0 });
  const tools = [{ type: 'function', name: 'get_weather', parameters: { type: 'object', properties: {} } }];
  const calls = await v1.responses.create({ model: 'gpt-4o', input: 'sim:tool_calls=2 weather', tools });
  assert.deepEqual(calls.output.map((o) => o.type), ['function_call', 'function_call']);
  assert.ok(JSON.parse(calls.output[0].arguments).query.includes('weather'));
  assert.equal(calls.content_filters.length, 2);
  const refusal = await v1.responses.create({ model: 'gpt-4o', input: 'sim:refusal' });
  assert.equal(refusal.output[0].content[0].type, 'refusal');
  const lp = await v1.responses.create({ model: 'gpt-4o', input: 'sim:tokens=3', include: ['message.output_text.logprobs'], top_logprobs: 2 });
  assert.equal(lp.output[0].content[0].logprobs.length, 3);
  assert.equal(lp.output[0].content[0].logprobs[0].top_logprobs.length, 2);
  // The SDK's stream helper builds the response from the deltas: it must agree with the terminal event.
  for (const input of ['sim:tool_calls=2 weather', 'sim:refusal', 'sim:tokens=4']) {
    const stream = v1.responses.stream({ model: 'gpt-4o', input, tools, include: ['message.output_text.logprobs'] });
    let text = '';
    stream.on('response.output_text.delta', (ev) => { text += ev.delta; });
    const final = await stream.finalResponse();
    assert.equal(final.status, 'completed', input);
    assert.equal(text, final.output_text, input);
    assert.equal(final.output.length, input.includes('tool_calls') ? 2 : 1, input);
  }
});
