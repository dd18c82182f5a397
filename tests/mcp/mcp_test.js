// Drives `chittyctl mcp` (docs/mcp.md) with the official MCP TypeScript SDK
// client (@modelcontextprotocol/sdk 1.32.2) against real chitty-agent
// processes that serve two credentials from their environment (no 1Password
// account): the protocol handshake, the six tools and their schemas, policy
// refusals, revocation, release over MCP, an absent agent, and a battery of
// malformed JSON-RPC messages on a raw child. Every byte chittyctl writes to
// its standard output is recorded (each server runs behind a `tee`), and the
// last test checks that no credential value ever appeared in it, except the
// one retrieval from the agent configured with mcp_release = true.
//
//   CHITTY_AGENT_BIN=build/agent/chitty-agent CHITTYCTL_BIN=build/agent/chittyctl \
//     node --test tests/mcp/mcp_test.js
//
// (meson test mcp_sdk sets both.) The SDK is installed by
// scripts/install-deps.sh (npm ci in this directory).
'use strict';

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const HERE = __dirname;
const SDK_VERSION = '1.32.2';
const AGENT_BIN = process.env.CHITTY_AGENT_BIN;
const CHITTYCTL_BIN = process.env.CHITTYCTL_BIN;

const TOOL_NAMES = ['chitty_credential_retrieve', 'chitty_credential_provision', 'chitty_credential_validate',
  'chitty_credential_revoke', 'chitty_credential_audit', 'chitty_credential_health'];
const TOOL_PROPERTIES = {
  chitty_credential_retrieve: ['credential_type', 'ref', 'target', 'purpose', 'environment', 'session_context'],
  chitty_credential_provision: ['credential_type', 'purpose', 'environment', 'session_context'],
  chitty_credential_validate: ['credential_type', 'ref', 'purpose', 'session_context'],
  chitty_credential_revoke: ['ref', 'credential_type', 'service', 'all', 'reason', 'session_context'],
  chitty_credential_audit: ['service', 'since', 'limit', 'session_context'],
  chitty_credential_health: ['session_context'],
};
const TOOL_REQUIRED = {
  chitty_credential_provision: ['credential_type'],
  chitty_credential_revoke: ['reason'],
};
const READ_ONLY = ['chitty_credential_retrieve', 'chitty_credential_validate', 'chitty_credential_audit',
  'chitty_credential_health'];
const CHITTYID_REF = 'op://ChittyOS Services/ChittyID Service Token/service_token';
const OPENAI_REF = 'op://ChittyOS Integrations/OpenAI API/api_key';

// ---------------------------------------------------------------------------
// What the suite needs before it can run at all.

let Client = null;
let StdioClientTransport = null;
let SUPPORTED_PROTOCOL_VERSIONS = null;
let LATEST_PROTOCOL_VERSION = null;
const problems = [];
if (!AGENT_BIN || !fs.existsSync(AGENT_BIN)) {
  problems.push(`CHITTY_AGENT_BIN must name the chitty-agent binary (got ${JSON.stringify(AGENT_BIN)}); ` +
    'run the test with `meson test mcp_sdk`, or set it (e.g. build/agent/chitty-agent)');
}
if (!CHITTYCTL_BIN || !fs.existsSync(CHITTYCTL_BIN)) {
  problems.push(`CHITTYCTL_BIN must name the chittyctl binary (got ${JSON.stringify(CHITTYCTL_BIN)}); ` +
    'run the test with `meson test mcp_sdk`, or set it (e.g. build/agent/chittyctl)');
}
try {
  const pkg = path.join(HERE, 'node_modules', '@modelcontextprotocol', 'sdk', 'package.json');
  const version = JSON.parse(fs.readFileSync(pkg, 'utf8')).version;
  if (version !== SDK_VERSION) throw new Error(`@modelcontextprotocol/sdk ${version} is installed, ${SDK_VERSION} is required`);
  ({ Client } = require('@modelcontextprotocol/sdk/client/index.js'));
  ({ StdioClientTransport } = require('@modelcontextprotocol/sdk/client/stdio.js'));
  ({ SUPPORTED_PROTOCOL_VERSIONS, LATEST_PROTOCOL_VERSION } = require('@modelcontextprotocol/sdk/types.js'));
} catch (e) {
  problems.push(`the MCP SDK is not installed in ${HERE}/node_modules (${e.message}); ` +
    'run scripts/install-deps.sh (or: npm ci --prefix tests/mcp)');
}

// ---------------------------------------------------------------------------
// Helpers

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// A timeout that does not keep the process alive once everything else is done.
const deadline = (ms) => new Promise((resolve) => setTimeout(resolve, ms).unref());
function randomHex(bytes) {
  const buf = Buffer.alloc(bytes);
  const fd = fs.openSync('/dev/urandom', 'r');
  try {
    assert.equal(fs.readSync(fd, buf, 0, bytes, null), bytes);
  } finally {
    fs.closeSync(fd);
  }
  return buf.toString('hex');
}

const tempDirs = [];
function tempDir(prefix) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(d, 0o700);
  tempDirs.push(d);
  return d;
}

const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

function exited(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function stopChild(child) {
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    const done = await Promise.race([exited(child).then(() => true), deadline(3000).then(() => false)]);
    if (!done) {
      child.kill('SIGKILL');
      await exited(child);
    }
  }
  children.delete(child);
}

// The [cache] section onwards of the packaged configuration: the ChittyOS
// catalog (openai_api_key from OPENAI_API_KEY, chittyid_service_token from
// CHITTY_ID_TOKEN, neon_database_url, ...).
function packagedCatalog() {
  const text = fs.readFileSync(path.join(HERE, '..', '..', 'packaging', 'agent.toml'), 'utf8');
  const at = text.search(/^\[cache\]/m);
  assert.ok(at >= 0, 'packaging/agent.toml has no [cache] section');
  return text.slice(at);
}

// Starts a chitty-agent serving two random values from its environment, with
// one [[service]] ("assistant") for this uid.
async function startAgent({ admin, mcpRelease, chittyidPrefix = 'chittyid-test-' }) {
  const dir = tempDir('chitty-mcp-test-');
  const sock = path.join(dir, 'agent.sock');
  const tokenFile = path.join(dir, 'emergency-token');
  fs.writeFileSync(tokenFile, randomHex(16), { mode: 0o600 });
  const config = path.join(dir, 'agent.toml');
  fs.writeFileSync(config, [
    '[agent]',
    `socket = ${JSON.stringify(sock)}`,
    `state_dir = ${JSON.stringify(path.join(dir, 'state'))}`,
    '',
    packagedCatalog(),
    '',
    '[[service]]',
    'name = "assistant"',
    `uid = ${process.getuid()}`,
    `admin = ${admin}`,
    `mcp_release = ${mcpRelease}`,
    'allow = ["type:openai_api_key", "type:chittyid_service_token"]',
    '',
    '[emergency]',
    `token_file = ${JSON.stringify(tokenFile)}`,
    '',
  ].join('\n'), { mode: 0o600 });
  const values = {
    openai: `sk-test-${randomHex(12)}`,
    chittyid: `${chittyidPrefix}${randomHex(12)}`,
  };
  const logFile = path.join(dir, 'agent.log');
  const logFd = fs.openSync(logFile, 'a', 0o600);
  // A minimal environment: no catalog variable but the two given here.
  const child = spawn(AGENT_BIN, ['--config', config], {
    stdio: ['ignore', 'ignore', logFd],
    env: { PATH: process.env.PATH || '/usr/bin:/bin', OPENAI_API_KEY: values.openai, CHITTY_ID_TOKEN: values.chittyid },
  });
  fs.closeSync(logFd);
  children.add(child);
  const log = () => fs.readFileSync(logFile, 'utf8');
  const readyBy = Date.now() + 10000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`chitty-agent exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${log()}`);
    }
    let ready = false;
    try {
      ready = fs.statSync(sock).isSocket() && /"msg":"ready"/.test(log());
    } catch {
      // not yet
    }
    if (ready) break;
    if (Date.now() > readyBy) {
      await stopChild(child);
      throw new Error(`chitty-agent did not become ready within 10 s:\n${log()}`);
    }
    await sleep(20);
  }
  return { dir, sock, tokenFile, values, log, stop: () => stopChild(child) };
}

// Everything chittyctl wrote to its standard output, per server; the leak
// check reads them all.
const maskedLogs = [];   // servers whose agent must never release a value
const releaseLogs = [];  // the server of the agent with mcp_release = true

// An SDK client connected to `chittyctl --socket SOCK mcp [...]`, run behind
// `tee` so that its raw standard output is recorded in `logFile`.
async function connect({ sock, tokenFile = null, logs = maskedLogs, name = 'chitty-mcp-test' }) {
  const logDir = tempDir('chitty-mcp-log-');
  const logFile = path.join(logDir, 'stdout.log');
  fs.writeFileSync(logFile, '', { mode: 0o600 });
  logs.push(logFile);
  const args = ['--socket', sock, 'mcp'];
  if (tokenFile) args.push('--emergency-token-file', tokenFile);
  const transport = new StdioClientTransport({
    command: 'sh',
    args: ['-c', 'log="$1"; shift; "$@" | tee -a "$log"', 'sh', logFile, CHITTYCTL_BIN, ...args],
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr.on('data', (chunk) => {
    stderr += chunk.toString();
  });
  const client = new Client({ name, version: '1.0.0' }, { capabilities: {} });
  await client.connect(transport);
  return {
    client,
    logFile,
    stderr: () => stderr,
    close: () => client.close(),
    call: (tool, args) => client.callTool({ name: tool, arguments: args }),
  };
}

// Asserts a successful tool result and returns its structured content.
function ok(result, what) {
  assert.equal(result.isError, false, `${what}: expected success, got ${JSON.stringify(result)}`);
  assert.ok(result.structuredContent && typeof result.structuredContent === 'object', `${what}: no structuredContent`);
  const text = result.content.at(-1);
  assert.equal(text.type, 'text');
  assert.deepEqual(JSON.parse(text.text), result.structuredContent,
    `${what}: the text content is not the structured content`);
  return result.structuredContent;
}

// Asserts a tool error with `code` and returns its message.
function toolError(result, code, what) {
  assert.equal(result.isError, true, `${what}: expected isError, got ${JSON.stringify(result)}`);
  const err = result.structuredContent && result.structuredContent.error;
  assert.ok(err, `${what}: no structuredContent.error in ${JSON.stringify(result)}`);
  assert.equal(err.code, code, `${what}: ${JSON.stringify(err)}`);
  assert.equal(typeof err.message, 'string');
  assert.ok(err.message.length > 0);
  assert.equal(result.content[0].type, 'text');
  assert.equal(result.content[0].text, `${err.code}: ${err.message}`);
  return err.message;
}

// Ways a value could appear in text without appearing verbatim: JSON- and
// \u-escaped, base64 / base64url / hex at each alignment, and every
// 12-character window of its random part.
function leakForms(value, randomPart) {
  const forms = new Set([value, JSON.stringify(value).slice(1, -1)]);
  forms.add([...value].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join(''));
  forms.add(Buffer.from(value).toString('hex'));
  for (let k = 0; k < 3; k++) {
    for (const enc of ['base64', 'base64url']) {
      const b = Buffer.from(value.slice(k)).toString(enc);
      forms.add(b.slice(0, b.length - 4));  // the tail depends on what follows
    }
  }
  for (let i = 0; i + 12 <= randomPart.length; i++) forms.add(randomPart.slice(i, i + 12));
  return [...forms];
}

function findLeaks(text, values) {
  const found = [];
  for (const [name, value] of Object.entries(values)) {
    const randomPart = value.slice(value.lastIndexOf('-') + 1);
    for (const form of leakForms(value, randomPart)) {
      if (text.includes(form)) found.push(`${name} as ${JSON.stringify(form)}`);
    }
  }
  return found;
}

function countOccurrences(text, needle) {
  let n = 0;
  for (let at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, at + 1)) n++;
  return n;
}

// A `chittyctl mcp` child driven line by line, without the SDK.
function rawServer(args, logFile) {
  const child = spawn(CHITTYCTL_BIN, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH || '/usr/bin:/bin', HOME: process.env.HOME || '/' },
  });
  children.add(child);
  const queue = [];
  const waiters = [];
  let buffered = '';
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr += chunk.toString();
  });
  child.stdout.on('data', (chunk) => {
    fs.appendFileSync(logFile, chunk);
    buffered += chunk.toString();
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const waiter = waiters.shift();
      if (waiter) waiter(line);
      else queue.push(line);
    }
  });
  const exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    child,
    stderr: () => stderr,
    exit,
    pending: () => queue.length + (buffered.length > 0 ? 1 : 0),
    send(message) {
      child.stdin.write((typeof message === 'string' ? message : JSON.stringify(message)) + '\n');
    },
    // The next line chittyctl writes, parsed (it must be JSON).
    async next(what, ms = 5000) {
      const line = queue.length > 0 ? queue.shift() : await Promise.race([
        new Promise((resolve) => waiters.push(resolve)),
        deadline(ms).then(() => {
          throw new Error(`${what}: no answer within ${ms} ms (stderr: ${stderr})`);
        }),
      ]);
      let parsed;
      assert.doesNotThrow(() => {
        parsed = JSON.parse(line);
      }, `${what}: the answer is not JSON: ${line.slice(0, 200)}`);
      assert.equal(parsed.jsonrpc, '2.0', `${what}: ${line.slice(0, 200)}`);
      return parsed;
    },
  };
}

function assertRpcError(msg, code, id, what) {
  assert.ok(msg.error, `${what}: expected an error, got ${JSON.stringify(msg).slice(0, 300)}`);
  assert.equal(msg.result, undefined, what);
  assert.equal(msg.error.code, code, `${what}: ${JSON.stringify(msg.error)}`);
  assert.equal(typeof msg.error.message, 'string', what);
  assert.ok('id' in msg, `${what}: no id`);
  assert.equal(msg.id, id, `${what}: id`);
}

// ---------------------------------------------------------------------------
// The suite

if (problems.length > 0) {
  test('mcp_sdk prerequisites', () => {
    assert.fail(problems.join('\n'));
  });
} else {
  describe('chittyctl mcp', () => {
    let agent = null;    // admin, mcp_release = false
    let release = null;  // not admin, mcp_release = true
    let mcp = null;      // SDK client of chittyctl mcp with the emergency token, on `agent`

    before(async () => {
      [agent, release] = await Promise.all([
        startAgent({ admin: true, mcpRelease: false }),
        // Its second value needs escaping in JSON: quote, backslash, tab,
        // non-ASCII, U+2028.
        startAgent({ admin: false, mcpRelease: true, chittyidPrefix: 'chittyid-"q\\b\tz\u00e9\u2028-' }),
      ]);
      mcp = await connect({ sock: agent.sock, tokenFile: agent.tokenFile });
    });

    after(async () => {
      if (mcp) await mcp.close();
      for (const a of [agent, release]) {
        if (a) await a.stop();
      }
      for (const c of [...children]) await stopChild(c);
      for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
    });

    test('initialize: server chittyctl, a protocol version the SDK speaks, tools capability', () => {
      const info = mcp.client.getServerVersion();
      assert.equal(info.name, 'chittyctl');
      assert.equal(typeof info.version, 'string');
      assert.ok(info.version.length > 0);
      assert.ok(mcp.client.getServerCapabilities().tools, 'no tools capability');
      assert.equal(typeof mcp.client.getInstructions(), 'string');
      // The initialize answer, as chittyctl wrote it (the first line it wrote).
      const first = JSON.parse(fs.readFileSync(mcp.logFile, 'utf8').split('\n')[0]);
      assert.equal(first.id, 0);
      assert.ok(SUPPORTED_PROTOCOL_VERSIONS.includes(first.result.protocolVersion), first.result.protocolVersion);
      assert.equal(first.result.protocolVersion, LATEST_PROTOCOL_VERSION, 'the SDK asked for its newest version');
    });

    test('tools/list: exactly the six tools, strict object schemas and annotations', async () => {
      const { tools } = await mcp.client.listTools();
      assert.deepEqual(tools.map((t) => t.name).sort(), [...TOOL_NAMES].sort());
      for (const t of tools) {
        assert.equal(typeof t.description, 'string', t.name);
        assert.ok(t.description.length > 0, t.name);
        const s = t.inputSchema;
        assert.equal(s.type, 'object', t.name);
        assert.equal(s.additionalProperties, false, t.name);
        assert.deepEqual(Object.keys(s.properties).sort(), [...TOOL_PROPERTIES[t.name]].sort(), t.name);
        for (const [p, spec] of Object.entries(s.properties)) {
          assert.ok(['string', 'boolean', 'integer', 'object'].includes(spec.type), `${t.name}.${p}: ${spec.type}`);
        }
        assert.deepEqual(s.required ?? [], TOOL_REQUIRED[t.name] ?? [], `${t.name}: required`);
        const a = t.annotations;
        assert.ok(a, `${t.name}: no annotations`);
        for (const hint of ['readOnlyHint', 'destructiveHint', 'idempotentHint', 'openWorldHint']) {
          assert.equal(typeof a[hint], 'boolean', `${t.name}.${hint}`);
        }
        assert.equal(a.readOnlyHint, READ_ONLY.includes(t.name), `${t.name}.readOnlyHint`);
        assert.equal(a.destructiveHint, t.name === 'chitty_credential_revoke', `${t.name}.destructiveHint`);
      }
      const audit = tools.find((t) => t.name === 'chitty_credential_audit');
      assert.equal(audit.inputSchema.properties.limit.type, 'integer');
      assert.equal(audit.inputSchema.properties.limit.minimum, 1);
      assert.equal(audit.inputSchema.properties.limit.maximum, 100);
      assert.equal(tools.find((t) => t.name === 'chitty_credential_revoke').inputSchema.properties.all.type, 'boolean');
    });

    test('retrieve of an allowed type: masked, not released, with risk and cache metadata', async () => {
      const s = ok(await mcp.call('chitty_credential_retrieve', {
        credential_type: 'openai_api_key',
        purpose: 'api-call',
        environment: 'development',
        session_context: { session_id: 'test-session', client: 'mcp_test.js' },
      }), 'retrieve openai_api_key');
      const c = s.credential;
      assert.equal(c.value_released, false);
      assert.equal(c.value, undefined);
      assert.equal(typeof c.masked_value, 'string');
      assert.ok(c.masked_value.startsWith('…'), c.masked_value);
      assert.ok(c.masked_value.endsWith(agent.values.openai.slice(-4)), c.masked_value);
      assert.ok(c.masked_value.length < agent.values.openai.length / 2, c.masked_value);
      assert.equal(c.ref, OPENAI_REF);
      assert.equal(c.source, 'env');
      assert.ok(!Number.isNaN(Date.parse(c.fetched_at)), c.fetched_at);
      assert.ok(!Number.isNaN(Date.parse(c.expires_at)), c.expires_at);
      const m = s.metadata;
      assert.equal(typeof m.risk_score, 'number');
      assert.equal(typeof m.risk_level, 'string');
      assert.equal(m.decision, 'allow');
      assert.ok(['hit', 'miss', 'stale'].includes(m.cache), m.cache);
      assert.equal(m.mode, 'normal');
      assert.equal(typeof m.request_id, 'string');
    });

    test('retrieve of a type the policy does not grant: forbidden', async () => {
      const r = await mcp.call('chitty_credential_retrieve', { credential_type: 'neon_database_url' });
      toolError(r, 'forbidden', 'retrieve neon_database_url');
    });

    test('retrieve by reference of an allowed credential', async () => {
      const s = ok(await mcp.call('chitty_credential_retrieve', { ref: CHITTYID_REF }), 'retrieve by ref');
      assert.equal(s.credential.ref, CHITTYID_REF);
      assert.equal(s.credential.value_released, false);
      assert.ok(s.credential.masked_value.startsWith('…'));
      assert.ok(s.credential.masked_value.endsWith(agent.values.chittyid.slice(-4)), s.credential.masked_value);
    });

    test('validate: active', async () => {
      const s = ok(await mcp.call('chitty_credential_validate', { credential_type: 'openai_api_key' }), 'validate');
      assert.equal(s.status, 'active');
      assert.equal(s.valid, true);
      const byRef = ok(await mcp.call('chitty_credential_validate', { ref: CHITTYID_REF }), 'validate by ref');
      assert.equal(byRef.status, 'active');
    });

    test('provision: masked', async () => {
      const s = ok(await mcp.call('chitty_credential_provision', { credential_type: 'openai_api_key' }), 'provision');
      assert.equal(s.credential.value_released, false);
      assert.ok(s.credential.masked_value.startsWith('…'));
      assert.ok(s.credential.masked_value.endsWith(agent.values.openai.slice(-4)));
      assert.ok(s.metadata && typeof s.metadata.risk_score === 'number');
    });

    test('health: healthy', async () => {
      const s = ok(await mcp.call('chitty_credential_health', {}), 'health');
      assert.equal(s.status, 'healthy');
      assert.equal(s.mode, 'normal');
      const again = ok(await mcp.call('chitty_credential_health'), 'health without arguments');
      assert.equal(again.status, 'healthy');
    });

    test('audit (admin): events of the MCP channel', async () => {
      const s = ok(await mcp.call('chitty_credential_audit', { limit: 100 }), 'audit');
      assert.ok(Array.isArray(s.events), JSON.stringify(s).slice(0, 300));
      assert.ok(s.events.length > 0);
      assert.ok(s.events.length <= 100);
      const mcpEvents = s.events.filter((e) => e.channel === 'mcp');
      assert.ok(mcpEvents.some((e) => e.action === 'retrieve' && e.decision === 'allow' &&
        e.credential_type === 'openai_api_key'), 'no allowed MCP retrieval of openai_api_key');
      assert.ok(mcpEvents.some((e) => e.action === 'retrieve' && e.decision === 'deny' && e.code === 'forbidden'),
        'no refused MCP retrieval');
      const few = ok(await mcp.call('chitty_credential_audit', { limit: 2, service: 'assistant', since: '1h' }),
        'audit with filters');
      assert.ok(few.events.length <= 2 && few.events.length > 0, JSON.stringify(few).slice(0, 300));
      for (const e of few.events) assert.equal(e.service, 'assistant');
    });

    test('tool arguments the schema refuses: invalid_arguments', async () => {
      const cases = [
        ['chitty_credential_retrieve', { credential_type: 'openai_api_key', bogus: 1 }],
        ['chitty_credential_retrieve', { credential_type: 7 }],
        ['chitty_credential_retrieve', { credential_type: 'openai_api_key', ref: OPENAI_REF }],
        ['chitty_credential_retrieve', {}],
        ['chitty_credential_retrieve', { ref: 'https://example.com/x' }],
        ['chitty_credential_retrieve', { credential_type: 'openai_api_key', session_context: 'x' }],
        ['chitty_credential_provision', {}],
        ['chitty_credential_validate', { credential_type: 'openai_api_key', environment: 'production' }],
        ['chitty_credential_revoke', { credential_type: 'openai_api_key' }],
        ['chitty_credential_revoke', { credential_type: 'openai_api_key', service: 'assistant', reason: 'x' }],
        ['chitty_credential_revoke', { all: 'yes', reason: 'x' }],
        ['chitty_credential_audit', { limit: 0 }],
        ['chitty_credential_audit', { limit: 101 }],
        ['chitty_credential_audit', { limit: 2.5 }],
        ['chitty_credential_audit', { since: 'yesterday-ish' }],
        ['chitty_credential_health', { verbose: true }],
      ];
      for (const [tool, args] of cases) {
        toolError(await mcp.call(tool, args), 'invalid_arguments', `${tool} ${JSON.stringify(args)}`);
      }
      // None of them revoked anything.
      const s = ok(await mcp.call('chitty_credential_validate', { credential_type: 'openai_api_key' }), 'validate');
      assert.equal(s.status, 'active');
    });

    test('no agent: agent_unreachable, and the server keeps answering', async () => {
      const missing = path.join(tempDir('chitty-mcp-nosock-'), 'no-such.sock');
      const c = await connect({ sock: missing, tokenFile: agent.tokenFile });
      try {
        toolError(await c.call('chitty_credential_health', {}), 'agent_unreachable', 'health without agent');
        toolError(await c.call('chitty_credential_retrieve', { credential_type: 'openai_api_key' }),
          'agent_unreachable', 'retrieve without agent');
        assert.deepEqual(await c.client.ping(), {});
        const { tools } = await c.client.listTools();
        assert.equal(tools.length, 6);
        toolError(await c.call('chitty_credential_validate', { credential_type: 'openai_api_key' }),
          'agent_unreachable', 'validate without agent');
      } finally {
        await c.close();
      }
    });

    test('revoke without an emergency token: revocation_disabled', async () => {
      const c = await connect({ sock: agent.sock });
      try {
        toolError(await c.call('chitty_credential_revoke', { credential_type: 'openai_api_key', reason: 'test' }),
          'revocation_disabled', 'revoke without token');
        const s = ok(await c.call('chitty_credential_validate', { credential_type: 'openai_api_key' }), 'validate');
        assert.equal(s.status, 'active');
      } finally {
        await c.close();
      }
    });

    test('malformed JSON-RPC: each answered with the right error; the server reads on and exits 0 at EOF',
      async () => {
        const logDir = tempDir('chitty-mcp-log-');
        const logFile = path.join(logDir, 'raw.log');
        fs.writeFileSync(logFile, '', { mode: 0o600 });
        maskedLogs.push(logFile);
        const s = rawServer(['--socket', agent.sock, 'mcp', '--emergency-token-file', agent.tokenFile], logFile);

        s.send({ jsonrpc: '2.0', id: 1, method: 'initialize',
          params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
        let m = await s.next('initialize 2024-11-05');
        assert.equal(m.id, 1);
        assert.equal(m.result.protocolVersion, '2024-11-05');
        assert.equal(m.result.serverInfo.name, 'chittyctl');
        s.send({ jsonrpc: '2.0', method: 'notifications/initialized' });

        s.send({ jsonrpc: '2.0', id: 'again', method: 'initialize',
          params: { protocolVersion: '1999-01-01', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
        m = await s.next('initialize with an unknown version');
        assert.equal(m.id, 'again');
        assert.equal(m.result.protocolVersion, '2025-11-25');

        s.send('{"jsonrpc":"2.0","id":2,"method":"ping"');
        assertRpcError(await s.next('bad JSON'), -32700, null, 'bad JSON');
        s.send('[]');
        assertRpcError(await s.next('empty batch'), -32600, null, 'empty batch');
        s.send([{ jsonrpc: '2.0', id: 3, method: 'ping' }, { jsonrpc: '2.0', id: 4, method: 'ping' }]);
        assertRpcError(await s.next('batch'), -32600, null, 'batch');
        s.send('42');
        assertRpcError(await s.next('a number'), -32600, null, 'a number');
        s.send({ id: 5, method: 'ping' });
        assertRpcError(await s.next('missing jsonrpc'), -32600, 5, 'missing jsonrpc');
        s.send({ jsonrpc: '1.0', id: 6, method: 'ping' });
        assertRpcError(await s.next('jsonrpc 1.0'), -32600, 6, 'jsonrpc 1.0');
        s.send({ jsonrpc: '2.0', id: 1.5, method: 'ping' });
        assertRpcError(await s.next('fractional id'), -32600, null, 'fractional id');
        s.send({ jsonrpc: '2.0', id: { a: 1 }, method: 'ping' });
        assertRpcError(await s.next('object id'), -32600, null, 'object id');
        s.send({ jsonrpc: '2.0', id: null, method: 'ping' });
        assertRpcError(await s.next('null id'), -32600, null, 'null id');
        s.send({ jsonrpc: '2.0', id: 7, method: 42 });
        assertRpcError(await s.next('method not a string'), -32600, 7, 'method not a string');
        s.send({ jsonrpc: '2.0', id: 8, method: 'resources/list' });
        assertRpcError(await s.next('unknown method'), -32601, 8, 'unknown method');
        s.send({ jsonrpc: '2.0', id: 'str-9', method: 'no/such/method', params: {} });
        assertRpcError(await s.next('unknown method, string id'), -32601, 'str-9', 'unknown method, string id');
        s.send({ jsonrpc: '2.0', id: 10, method: 'tools/call', params: 'x' });
        assertRpcError(await s.next('params a string'), -32602, 10, 'params a string');
        s.send({ jsonrpc: '2.0', id: 11, method: 'tools/call', params: { name: 'no_such_tool', arguments: {} } });
        assertRpcError(await s.next('unknown tool'), -32602, 11, 'unknown tool');
        s.send({ jsonrpc: '2.0', id: 12, method: 'tools/call', params: { arguments: {} } });
        assertRpcError(await s.next('tool name missing'), -32602, 12, 'tool name missing');
        s.send({ jsonrpc: '2.0', id: 13, method: 'tools/call' });
        assertRpcError(await s.next('tools/call without params'), -32602, 13, 'tools/call without params');
        s.send({ jsonrpc: '2.0', id: 14, method: 'tools/call',
          params: { name: 'chitty_credential_health', arguments: ['x'] } });
        assertRpcError(await s.next('arguments an array'), -32602, 14, 'arguments an array');

        s.send({ jsonrpc: '2.0', id: 15, method: 'tools/call',
          params: { name: 'chitty_credential_retrieve', arguments: { credential_type: 'openai_api_key', colour: 'red' } } });
        m = await s.next('unknown argument');
        assert.equal(m.id, 15);
        assert.equal(m.error, undefined);
        assert.equal(m.result.isError, true);
        assert.equal(m.result.structuredContent.error.code, 'invalid_arguments');
        assert.match(m.result.content[0].text, /^invalid_arguments: .*colour/);

        // A response to a request the server never sent, and a notification:
        // no answer to either; the next line is the ping's.
        s.send({ jsonrpc: '2.0', id: 99, result: {} });
        s.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1 } });
        s.send({ jsonrpc: '2.0', id: 16, method: 'ping' });
        m = await s.next('ping after a response and a notification');
        assert.equal(m.id, 16);
        assert.deepEqual(m.result, {});

        // 2 MiB in one line: dropped unread, -32600 with id null.
        const pad = 'a'.repeat(2 * 1024 * 1024);
        s.send(`{"jsonrpc":"2.0","id":17,"method":"ping","params":{"pad":"${pad}"}}`);
        assertRpcError(await s.next('2 MiB line', 10000), -32600, null, '2 MiB line');

        // Blank lines and CRLF are tolerated.
        s.send('');
        s.send('{"jsonrpc":"2.0","id":18,"method":"ping"}\r');
        m = await s.next('ping with CRLF');
        assert.equal(m.id, 18);
        assert.deepEqual(m.result, {});

        s.send({ jsonrpc: '2.0', id: 19, method: 'tools/list' });
        m = await s.next('tools/list');
        assert.equal(m.id, 19);
        assert.equal(m.result.tools.length, 6);

        s.send({ jsonrpc: '2.0', id: 20, method: 'ping' });
        m = await s.next('final ping');
        assert.equal(m.id, 20);
        assert.deepEqual(m.result, {});

        s.child.stdin.end();
        const { code, signal } = await Promise.race([
          s.exit,
          deadline(5000).then(() => ({ code: 'timeout', signal: null })),
        ]);
        assert.equal(signal, null, `chittyctl mcp was killed (${signal})`);
        assert.equal(code, 0, `chittyctl mcp did not exit 0 at end of input (stderr: ${s.stderr()})`);
        await sleep(50);
        assert.equal(s.pending(), 0, 'chittyctl wrote lines nobody asked for');
        children.delete(s.child);
      });

    test('revoke with the emergency token; the credential is then refused as revoked', async () => {
      const s = ok(await mcp.call('chitty_credential_revoke', {
        credential_type: 'openai_api_key',
        reason: 'test',
        session_context: { session_id: 'test-session' },
      }), 'revoke');
      assert.ok(s && typeof s === 'object');
      toolError(await mcp.call('chitty_credential_retrieve', { credential_type: 'openai_api_key' }),
        'revoked', 'retrieve after revoke');
      toolError(await mcp.call('chitty_credential_provision', { credential_type: 'openai_api_key' }),
        'revoked', 'provision after revoke');
      const v = ok(await mcp.call('chitty_credential_validate', { credential_type: 'openai_api_key' }),
        'validate after revoke');
      assert.equal(v.status, 'revoked');
      // Other credentials are untouched.
      const other = ok(await mcp.call('chitty_credential_retrieve', { credential_type: 'chittyid_service_token' }),
        'retrieve chittyid_service_token after revoking openai_api_key');
      assert.equal(other.credential.value_released, false);
      // The revocation is in the audit trail, with the reason given.
      const audit = ok(await mcp.call('chitty_credential_audit', { limit: 100 }), 'audit after revoke');
      assert.ok(audit.events.some((e) => JSON.stringify(e).includes('via MCP: test')),
        'the revocation and its reason are not in the audit trail');
    });

    test('mcp_release = true: retrieve releases the value as the first text content', async () => {
      const c = await connect({ sock: release.sock, tokenFile: release.tokenFile, logs: releaseLogs });
      try {
        const r = await c.call('chitty_credential_retrieve', { credential_type: 'openai_api_key' });
        assert.equal(r.isError, false, JSON.stringify(r).slice(0, 300));
        assert.equal(r.content.length, 2);
        assert.equal(r.content[0].type, 'text');
        assert.equal(r.content[0].text, release.values.openai);
        assert.equal(r.content[1].type, 'text');
        assert.deepEqual(JSON.parse(r.content[1].text), r.structuredContent);
        const cred = r.structuredContent.credential;
        assert.equal(cred.value_released, true);
        assert.ok(cred.masked_value.endsWith(release.values.openai.slice(-4)));
        assert.ok(!JSON.stringify(r.structuredContent).includes(release.values.openai),
          'the value is in the structured content too');
        // A value that needs escaping arrives exactly as it is.
        const tricky = await c.call('chitty_credential_retrieve', { credential_type: 'chittyid_service_token' });
        assert.equal(tricky.isError, false, JSON.stringify(tricky).slice(0, 300));
        assert.equal(tricky.content[0].text, release.values.chittyid);
        assert.equal(tricky.structuredContent.credential.value_released, true);
        // A non-admin service may not read the audit trail.
        toolError(await c.call('chitty_credential_audit', {}), 'forbidden', 'audit as a non-admin service');
      } finally {
        await c.close();
      }
    });

    test('no credential value ever appears in what chittyctl wrote (except the one released)', async () => {
      await mcp.close();
      mcp = null;
      assert.ok(maskedLogs.length >= 4, `only ${maskedLogs.length} logs`);
      const all = { ...Object.fromEntries(Object.entries(agent.values).map(([k, v]) => [`agent.${k}`, v])),
        ...Object.fromEntries(Object.entries(release.values).map(([k, v]) => [`release.${k}`, v])) };
      let bytes = 0;
      for (const f of maskedLogs) {
        const text = fs.readFileSync(f, 'utf8');
        bytes += text.length;
        assert.deepEqual(findLeaks(text, all), [], `a value appeared in ${f}`);
      }
      assert.ok(bytes > 10000, `the recorded output is suspiciously small (${bytes} bytes)`);
      // The main server's record holds the retrievals (masked values)...
      const main = fs.readFileSync(maskedLogs[0], 'utf8');
      assert.ok(main.includes(`"masked_value":"…${agent.values.openai.slice(-4)}"`));
      // ...and the release server's record holds its value exactly once.
      assert.equal(releaseLogs.length, 1);
      const rel = fs.readFileSync(releaseLogs[0], 'utf8');
      assert.equal(countOccurrences(rel, release.values.openai), 1);
      const chittyidRandom = release.values.chittyid.slice(release.values.chittyid.lastIndexOf('-') + 1);
      assert.equal(countOccurrences(rel, chittyidRandom), 1);
      assert.deepEqual(findLeaks(rel, agent.values), []);
    });
  });
}
