// Point the official npm `openai` client at Lifeline: only the endpoint and the key change.
//   LIFELINE_URL=http://127.0.0.1:8080 LIFELINE_KEY=... node examples/node/chat.mjs
// (npm install openai first; Node 20+.)
import { AzureOpenAI, OpenAI } from 'openai';

const endpoint = process.env.LIFELINE_URL ?? 'http://127.0.0.1:8080';
const apiKey = process.env.LIFELINE_KEY;
const model = process.env.LIFELINE_MODEL ?? 'gpt-4o';

// 1. Azure mode: the same client an application already uses for Azure OpenAI.
const azure = new AzureOpenAI({ endpoint, apiKey, apiVersion: '2024-10-21' });
const { data: completion, response } = await azure.chat.completions
  .create({ model, messages: [{ role: 'user', content: 'Say hello to the on-call engineer.' }], max_tokens: 16 })
  .withResponse();
console.log(`azure: ${completion.choices[0].message.content} [region ${response.headers.get('x-lifeline-region')}]`);

// 2. Streaming: events arrive as the region produces them.
const stream = await azure.chat.completions.create({
  model,
  messages: [{ role: 'user', content: 'Count to five.' }],
  stream: true,
  stream_options: { include_usage: true },
});
let text = '';
let usage;
for await (const chunk of stream) {
  text += chunk.choices[0]?.delta?.content ?? '';
  usage = chunk.usage ?? usage;
}
console.log(`stream: ${text} [${usage?.total_tokens} tokens]`);

// 3. Plain OpenAI mode: any OpenAI-compatible client with a base URL.
const openai = new OpenAI({ baseURL: `${endpoint}/v1`, apiKey });
const plain = await openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 });
console.log(`openai: ${plain.choices[0].message.content}`);
