// floed through the official openai npm client, the way users call it:
// chat (plain and streamed), completions and embeddings against a cold
// endpoint of the reference engine. Run by meson test; exits 77 (skip) only
// when the client is not installed (scripts/deps installs it).
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';

let OpenAI;
try {
  ({ default: OpenAI } = await import('openai'));
} catch {
  console.log('SKIP: the openai package is not installed (run scripts/deps)');
  process.exit(77);
}

const buildDir = process.env.FLOE_BUILD_DIR ?? 'build';

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

const dir = mkdtempSync(join(tmpdir(), 'floe-openai-'));
const [port, apiPort] = [await freePort(), await freePort()];
writeFileSync(join(dir, 'floe.yaml'), `
listen: 127.0.0.1:${port}
api_listen: 127.0.0.1:${apiPort}
data_dir: ${dir}/data
endpoints:
  - name: chat
    engine: sim
    model: acme/sim-chat
    args: ["--init-ms", "300", "--token-ms", "20", "--model", "acme/sim-chat"]
`);
const floed = spawn(join(buildDir, 'floed'), ['--config', join(dir, 'floe.yaml')], {
  stdio: ['ignore', 'ignore', 'pipe'],
});
let log = '';
floed.stderr.on('data', (d) => { log += d; });

async function waitHealthy() {
  for (let i = 0; i < 200; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${apiPort}/healthz`);
      if (r.ok) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('floed did not come up');
}

let failed = 0, passed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}\n  ${e.stack ?? e}`);
  }
}

try {
  await waitHealthy();
  const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0 });
  const messages = [{ role: 'user', content: 'Say something about queues' }];

  let whole;
  await check('chat completion on a cold endpoint (held, then answered)', async () => {
    const { data, response } = await client.chat.completions
      .create({ model: 'chat', messages, max_tokens: 12 })
      .withResponse();
    whole = data.choices[0].message.content;
    assert.ok(whole.length > 0);
    assert.equal(data.choices[0].finish_reason, 'length');
    assert.match(response.headers.get('server-timing'), /cold-start;dur=[0-9.]+;desc="fresh"/);
  });

  await check('streamed chat arrives in several chunks and equals the plain answer', async () => {
    const stream = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 12, stream: true });
    let text = '', chunks = 0;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      chunks++;
    }
    assert.ok(chunks >= 12, `only ${chunks} chunks`);
    assert.equal(text, whole);
  });

  await check('the model id routes too (acme/sim-chat)', async () => {
    const r = await client.chat.completions.create({ model: 'acme/sim-chat', messages, max_tokens: 12 });
    assert.equal(r.choices[0].message.content, whole);
  });

  await check('completions', async () => {
    const r = await client.completions.create({ model: 'chat', prompt: 'Once', max_tokens: 5 });
    assert.ok(r.choices[0].text.length > 0);
  });

  await check('embeddings', async () => {
    const r = await client.embeddings.create({ model: 'chat', input: ['a', 'b'] });
    assert.equal(r.data.length, 2);
    assert.ok(r.data[0].embedding.length > 0);
  });

  await check('unknown model is a 404 the client reports', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'nope', messages }),
      (e) => e.status === 404 && /not served/.test(e.message),
    );
  });
} finally {
  floed.kill('SIGTERM');
  const code = await new Promise((r) => floed.on('exit', (c) => r(c)));
  if (code !== 0) {
    failed++;
    console.log(`not ok - floed exited ${code}\n${log}`);
  }
  if (failed) console.log(log.split('\n').slice(-30).join('\n'));
  rmSync(dir, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
