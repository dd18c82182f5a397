// Checks the Connect emulator against the official 1Password Connect JS SDK
// (@1password/connect 1.4.2): if the SDK is happy with the emulator, the
// emulator speaks Connect closely enough for chitty-agent's tests.
//
//   node --test tests/fakes/connect-emulator/sdk_test.js   (from any directory)
//
// The SDK is installed by scripts/install-deps.sh (npm ci in this directory).
'use strict';

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const HERE = __dirname;
const EMULATOR = path.join(HERE, 'emulator.js');
const CHITTYOS = path.join(HERE, 'fixtures', 'chittyos.json');
const SDK_PACKAGE = path.join(HERE, 'node_modules', '@1password', 'connect', 'package.json');
const ID_RE = /^[a-z0-9]{26}$/;

const INFRA = 'q7x2infrastructurevault01a';
const SERVICES = 'k3m9servicesvault000000001';
const INTEGRATIONS = 'w5n8integrationsvault00001';
const EMERGENCY = 'e2r4emergencyvault00000001';
const SERVICE_NAMES = ['ChittyID', 'ChittyAuth', 'ChittyChronicle', 'ChittyFinance', 'ChittyCases', 'ChittySync',
  'ChittyEvidence', 'ChittyContextual'];

let sdk = null;
let sdkProblem = null;
try {
  const version = JSON.parse(fs.readFileSync(SDK_PACKAGE, 'utf8')).version;
  if (version !== '1.4.2') throw new Error(`@1password/connect ${version} is installed, 1.4.2 is required`);
  sdk = require('@1password/connect');
} catch (e) {
  sdkProblem = `the official SDK is not installed in ${HERE}/node_modules (${e.message}); ` +
    'run scripts/install-deps.sh (or: npm ci --prefix tests/fakes/connect-emulator)';
}

// ---------------------------------------------------------------------------
// Emulator processes

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

const tempDirs = [];
function tempDir() {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'connect-emu-test-'));
  tempDirs.push(d);
  return d;
}
process.on('exit', () => {
  for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
});

// Starts `node emulator.js`; resolves once it is listening.
async function startEmulator({ fixtures = CHITTYOS, fixturesJson, port = 0 } = {}) {
  const dir = tempDir();
  let file = fixtures;
  if (fixturesJson !== undefined) {
    file = path.join(dir, 'fixtures.json');
    fs.writeFileSync(file, JSON.stringify(fixturesJson));
  }
  const portFile = path.join(dir, 'port');
  const child = spawn(process.execPath,
    [EMULATOR, '--fixtures', file, '--port', String(port), '--port-file', portFile, '--exit-with-stdin'],
    { stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  let stderr = '';
  let stdout = '';
  child.stderr.on('data', (c) => { stderr += c; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => {
    children.delete(child);
    resolve({ code, signal });
  }));
  const listeningPort = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`emulator did not start within 10 s; stderr:\n${stderr}`)), 10000);
    child.stdout.on('data', (c) => {
      stdout += c;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)\n/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`emulator exited (code ${code}, signal ${signal}) before listening; stderr:\n${stderr}`));
    });
  });
  const url = `http://127.0.0.1:${listeningPort}`;
  return {
    child,
    port: listeningPort,
    url,
    portFile,
    exited,
    stderr: () => stderr,
    async admin(route, body) {
      const res = await fetch(`${url}/__emulator/${route}`, body === undefined ? {} : { method: 'POST', body: JSON.stringify(body) });
      const text = await res.text();
      if (!res.ok) throw new Error(`admin ${route}: ${res.status} ${text}`);
      return JSON.parse(text);
    },
    async requests() {
      return (await this.admin('requests')).requests;
    },
    client(token = 'good-token', extra = {}) {
      return sdk.OnePasswordConnect({ serverURL: url, token, keepAlive: true, ...extra });
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

// Raw HTTP for what the SDK hides (headers, exact bodies, odd queries).
async function raw(emu, urlPath, { token = 'good-token', method = 'GET', body } = {}) {
  const headers = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(emu.url + urlPath, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

// Runs `fn`, expecting a rejection; returns what it rejected with.
async function rejection(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail('expected a rejection');
  return undefined;
}

function errorBody(e) {
  // The SDK rejects with the parsed {status, message} body; keep only those keys.
  return { status: e.status, message: e.message };
}

if (sdkProblem) {
  test('the official @1password/connect SDK is installed', () => {
    assert.fail(sdkProblem);
  });
} else {
  after(async () => {
    for (const c of [...children]) c.kill('SIGKILL');
  });

  describe('read-only API against the ChittyOS fixtures', () => {
    let emu;
    let op;
    before(async () => {
      emu = await startEmulator();
      op = emu.client();
    });
    after(async () => {
      if (emu) await emu.stop();
    });

    test('the port file holds the listening port', () => {
      assert.equal(fs.readFileSync(emu.portFile, 'utf8'), `${emu.port}\n`);
    });

    test('listVaults returns the four vaults with realistic metadata', async () => {
      const vaults = await op.listVaults();
      assert.deepEqual(vaults.map((v) => v.name),
        ['ChittyOS Infrastructure', 'ChittyOS Services', 'ChittyOS Integrations', 'ChittyOS Emergency']);
      assert.deepEqual(vaults.map((v) => v.id), [INFRA, SERVICES, INTEGRATIONS, EMERGENCY]);
      assert.deepEqual(vaults.map((v) => v.items), [4, 8, 3, 0]);
      for (const v of vaults) {
        assert.equal(v.type, 'USER_CREATED');
        assert.equal(v.attributeVersion, 1);
        assert.equal(v.contentVersion, 1);
        assert.ok(v.createdAt instanceof Date && !Number.isNaN(v.createdAt.getTime()));
        assert.ok(v.createdAt.getTime() < Date.now());
      }
    });

    test('listVaultsByTitle is an exact, case-insensitive match', async () => {
      assert.deepEqual((await op.listVaultsByTitle('ChittyOS Services')).map((v) => v.id), [SERVICES]);
      assert.deepEqual((await op.listVaultsByTitle('chittyos SERVICES')).map((v) => v.id), [SERVICES]);
      assert.deepEqual(await op.listVaultsByTitle('ChittyOS'), []);
    });

    test('getVault by id and by title, getVaultById', async () => {
      const byId = await op.getVault(INTEGRATIONS);
      assert.equal(byId.name, 'ChittyOS Integrations');
      assert.equal(byId.items, 3);
      const byTitle = await op.getVault('ChittyOS Emergency');
      assert.equal(byTitle.id, EMERGENCY);
      assert.equal(byTitle.items, 0);
      const direct = await op.getVaultById(INFRA);
      assert.equal(direct.name, 'ChittyOS Infrastructure');
      assert.equal(direct.description, 'Shared infrastructure credentials (FAKE test data)');
    });

    test('unknown vaults: 404 from the server, client-side 404 for titles', async () => {
      const unknown = 'zzzzzzzzzzzzzzzzzzzzzzzzzz';
      assert.deepEqual(errorBody(await rejection(op.getVaultById(unknown))),
        { status: 404, message: `vault ${unknown} not found` });
      assert.deepEqual(errorBody(await rejection(op.getVault('No Such Vault'))),
        { status: 404, message: 'No Vaults found with title' });
      assert.deepEqual(errorBody(await rejection(op.listItems(unknown))),
        { status: 404, message: `vault ${unknown} not found` });
    });

    test('listItems returns summaries of every item', async () => {
      const items = await op.listItems(SERVICES);
      assert.deepEqual(items.map((i) => i.title), SERVICE_NAMES.map((s) => `${s} Service Token`));
      for (const i of items) {
        assert.match(i.id, ID_RE);
        assert.equal(i.vault.id, SERVICES);
        assert.equal(i.category, 'API_CREDENTIAL');
        assert.equal(i.version, 1);
        assert.ok(i.tags.includes('service'));
        assert.match(i.lastEditedBy, /^[A-Z0-9]{26}$/);
      }
      assert.deepEqual(await op.listItems(EMERGENCY), []);
      // On the wire: no fields, sections or files in summaries.
      const wire = await raw(emu, `/v1/vaults/${INFRA}/items`);
      assert.equal(wire.json.length, 4);
      for (const i of wire.json) {
        assert.equal(i.fields, undefined);
        assert.equal(i.sections, undefined);
        assert.equal(i.files, undefined);
        assert.match(i.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
      }
    });

    test('listItemsByTitle returns full items', async () => {
      const items = await op.listItemsByTitle(SERVICES, 'ChittyID Service Token');
      assert.equal(items.length, 1);
      assert.equal(items[0].title, 'ChittyID Service Token');
      assert.deepEqual(items[0].fields.map((f) => [f.id, f.label, f.type, f.value]),
        [['service_token', 'service_token', 'CONCEALED', 'fake-chittyid-service-token-0001']]);
      assert.deepEqual(await op.listItemsByTitle(SERVICES, 'ChittyID'), []);
    });

    test('listItemsByTitleContains matches substrings case-insensitively', async () => {
      const all = await op.listItemsByTitleContains(SERVICES, 'service token');
      assert.equal(all.length, 8);
      assert.ok(all.every((i) => i.fields[0].id === 'service_token'));
      const finance = await op.listItemsByTitleContains(SERVICES, 'Finance');
      assert.deepEqual(finance.map((i) => [i.title, i.fields[0].value]),
        [['ChittyFinance Service Token', 'fake-chittyfinance-service-token-0001']]);
      assert.deepEqual(await op.listItemsByTitleContains(SERVICES, 'nothing like this'), []);
    });

    test('getItem by id and by title, getItemById, getItemByTitle', async () => {
      const byTitle = await op.getItem(INFRA, 'Cloudflare API Credentials');
      assert.match(byTitle.id, ID_RE);
      assert.deepEqual(byTitle.fields.map((f) => [f.id, f.value]), [
        ['make_api_key', 'fake-cf-make-api-key-0000000000000001'],
        ['account_id', 'fake0000cf0account0000000000000001'],
        ['zone_id', 'fake0000cf0zone000000000000000001'],
      ]);
      const byId = await op.getItem(INFRA, byTitle.id);
      assert.equal(byId.title, 'Cloudflare API Credentials');
      assert.deepEqual(byId.fields, byTitle.fields);
      const direct = await op.getItemById(INFRA, byTitle.id);
      assert.equal(direct.version, 1);
      assert.deepEqual(direct.tags, ['chittyos', 'infrastructure', 'cloudflare']);
      const github = await op.getItemByTitle(INFRA, 'GitHub App');
      assert.equal(github.fields.find((f) => f.id === 'app_id').value, '100001');
      assert.match(github.fields.find((f) => f.id === 'private_key').value, /^-----BEGIN FAKE PRIVATE KEY-----\n/);
      const google = await op.getItemByTitle(INTEGRATIONS, 'Google Calendar');
      assert.deepEqual(google.fields.map((f) => f.label), ['access_token', 'client_id', 'client_secret', 'refresh_token']);
    });

    test('title lookups are case-insensitive', async () => {
      const neon = await op.getItemByTitle(INFRA, 'neon postgresql');
      assert.equal(neon.title, 'Neon PostgreSQL');
      assert.equal(neon.fields[0].id, 'database_url');
      assert.match(neon.fields[0].value, /^postgresql:\/\/fake_user:/);
      const openai = await op.getItem(INTEGRATIONS, 'OPENAI API');
      assert.deepEqual(openai.fields.map((f) => [f.id, f.value]),
        [['api_key', 'sk-fake-openai-api-key-0001'], ['org_id', 'org-fake0001']]);
    });

    test('an item with sections keeps fields attached to them', async () => {
      const item = await op.getItemByTitle(INFRA, 'Database Cluster');
      assert.equal(item.category, 'DATABASE');
      assert.deepEqual(item.sections.map((s) => [s.id, s.label]), [['primary_db', 'primary'], ['replica_db', 'replica']]);
      const shape = item.fields.map((f) => [f.label, f.section ? f.section.id : null, f.value]);
      assert.deepEqual(shape, [
        ['notes', null, 'FAKE cluster for tests: primary and replica'],
        ['password', 'primary_db', 'fake-primary-db-password-0001'],
        ['host', 'primary_db', 'primary.db.fake.invalid'],
        ['password', 'replica_db', 'fake-replica-db-password-0001'],
        ['host', 'replica_db', 'replica.db.fake.invalid'],
      ]);
    });

    test('unknown items: server 404 by id, client-side 404 by title', async () => {
      const unknown = '0123456789abcdefghijklmnop';
      assert.deepEqual(errorBody(await rejection(op.getItemById(SERVICES, unknown))),
        { status: 404, message: `item ${unknown} not found` });
      assert.deepEqual(errorBody(await rejection(op.getItem(SERVICES, unknown))),
        { status: 404, message: `item ${unknown} not found` });
      assert.deepEqual(errorBody(await rejection(op.getItemByTitle(SERVICES, 'ChittyNothing Service Token'))),
        { status: 404, message: 'No Items found with title' });
    });

    test('a bad token gets 401 Invalid bearer token', async () => {
      const bad = emu.client('not-a-token');
      assert.deepEqual(errorBody(await rejection(bad.listVaults())), { status: 401, message: 'Invalid bearer token' });
      assert.deepEqual(errorBody(await rejection(bad.getItem(SERVICES, 'ChittyID Service Token'))),
        { status: 401, message: 'Invalid bearer token' });
      const none = await raw(emu, '/v1/vaults', { token: null });
      assert.equal(none.status, 401);
      assert.deepEqual(none.json, { status: 401, message: 'Invalid bearer token' });
    });

    test('a scoped token sees its vault and gets 403 elsewhere', async () => {
      const scoped = emu.client('services-only-token');
      assert.deepEqual((await scoped.listVaults()).map((v) => v.name), ['ChittyOS Services']);
      assert.deepEqual(await scoped.listVaultsByTitle('ChittyOS Infrastructure'), []);
      const token = await scoped.getItem(SERVICES, 'ChittyAuth Service Token');
      assert.equal(token.fields[0].value, 'fake-chittyauth-service-token-0001');
      const forbidden = { status: 403, message: `vault ${INFRA} is not in scope` };
      assert.deepEqual(errorBody(await rejection(scoped.getVaultById(INFRA))), forbidden);
      assert.deepEqual(errorBody(await rejection(scoped.listItems(INFRA))), forbidden);
      assert.deepEqual(errorBody(await rejection(scoped.getItem(INFRA, 'Neon PostgreSQL'))), forbidden);
    });

    test('the request log shows what the SDK sent, over one kept-alive connection', async () => {
      await emu.admin('reset', {});
      const item = await op.getItemByTitle(INFRA, 'Neon PostgreSQL');
      await op.listVaults();
      const log = await emu.requests();
      assert.deepEqual(log.map((r) => [r.method, r.path, r.query, r.status, r.token]), [
        ['GET', `/v1/vaults/${INFRA}/items/`, 'filter=title%20eq%20%22Neon%20PostgreSQL%22', 200, 'good-token'],
        ['GET', `/v1/vaults/${INFRA}/items/${item.id}`, '', 200, 'good-token'],
        ['GET', '/v1/vaults/', '', 200, 'good-token'],
      ]);
      assert.equal(new Set(log.map((r) => r.connection)).size, 1);
      await emu.admin('reset', {});
      assert.deepEqual(await emu.requests(), []);
    });

    test('heartbeat, health and metrics need no token', async () => {
      const hb = await raw(emu, '/heartbeat', { token: null });
      assert.equal(hb.status, 200);
      assert.equal(hb.text, '.');
      assert.match(hb.headers.get('content-type'), /^text\/plain/);
      assert.equal(hb.headers.get('1password-connect-version'), '1.8.1');
      const health = await raw(emu, '/health/', { token: null });
      assert.equal(health.status, 200);
      assert.equal(health.json.name, '1Password Connect API');
      assert.equal(health.json.version, '1.8.1');
      assert.deepEqual(health.json.dependencies.map((d) => [d.service, d.status]), [['sync', 'ACTIVE'], ['sqlite', 'ACTIVE']]);
      const metrics = await raw(emu, '/metrics', { token: null });
      assert.equal(metrics.status, 200);
      assert.match(metrics.text, /^# HELP /m);
      assert.match(metrics.text, /^connect_emulator_requests_total\{status="200"\} \d+$/m);
    });

    test('every response has the version header; JSON errors mirror the status', async () => {
      const cases = [
        ['/v1/vaults', 200],
        ['/v1/vaults/', 200],
        [`/v1/vaults/${SERVICES}/`, 200],
        [`/v1/vaults/${SERVICES}/items/`, 200],
        ['/v1/vaults/nope', 404],
        ['/v1/nothing', 404],
        ['/nothing', 404],
        [`/v1/vaults/${SERVICES}/items/nope`, 404],
        [`/v1/vaults/${SERVICES}/items//`, 404],
      ];
      for (const [p, status] of cases) {
        const r = await raw(emu, p);
        assert.equal(r.status, status, p);
        assert.equal(r.headers.get('1password-connect-version'), '1.8.1', p);
        assert.equal(r.headers.get('content-type'), 'application/json', p);
        if (status !== 200) assert.deepEqual(Object.keys(r.json), ['status', 'message'], p);
        if (status !== 200) assert.equal(r.json.status, status, p);
      }
      assert.equal((await raw(emu, '/v1/vaults/nope')).json.message, 'vault nope not found');
      assert.equal((await raw(emu, `/v1/vaults/${SERVICES}/items/nope`)).json.message, 'item nope not found');
    });

    test('filters use form decoding, like Go net/url', async () => {
      const plus = await raw(emu, `/v1/vaults/${INFRA}/items?filter=title+eq+%22Neon+PostgreSQL%22`);
      assert.deepEqual(plus.json.map((i) => i.title), ['Neon PostgreSQL']);
      const vault = await raw(emu, '/v1/vaults?filter=name%20eq%20%22ChittyOS%20Emergency%22');
      assert.deepEqual(vault.json.map((v) => v.id), [EMERGENCY]);
      const tag = await raw(emu, `/v1/vaults/${INFRA}/items?filter=tag+eq+%22DATABASE%22`);
      assert.deepEqual(tag.json.map((i) => i.title), ['Neon PostgreSQL', 'Database Cluster']);
      // A bad percent escape drops the whole pair: no filter, every item.
      const badEscape = await raw(emu, `/v1/vaults/${INFRA}/items?filter=title+eq+%22100%%22`);
      assert.equal(badEscape.status, 200);
      assert.equal(badEscape.json.length, 4);
      // An empty filter is no filter.
      assert.equal((await raw(emu, `/v1/vaults/${INFRA}/items?filter=`)).json.length, 4);
    });

    test('malformed filters are 400 errors', async () => {
      const bad = [
        'title eq "unterminated',
        'title eq "Bob\'s"',
        "title eq 'single'",
        'colour eq "red"',
        'title sw "Chitty"',
        'title eq "a" and tag eq "b"',
        'title eq unquoted',
        'title',
      ];
      for (const f of bad) {
        const r = await raw(emu, `/v1/vaults/${SERVICES}/items?filter=${encodeURIComponent(f)}`);
        assert.equal(r.status, 400, f);
        assert.equal(r.json.status, 400, f);
        assert.match(r.json.message, /^Invalid filter/, f);
      }
      const vaultTag = await raw(emu, `/v1/vaults?filter=${encodeURIComponent('tag eq "x"')}`);
      assert.equal(vaultTag.status, 400);
      // The SDK does not escape '&' in titles: the server sees an unterminated quote.
      const op2 = emu.client();
      const e = await rejection(op2.getItemByTitle(SERVICES, 'Salt & Pepper'));
      assert.equal(e.status, 400);
      assert.match(e.message, /unterminated/);
    });
  });

  describe('writes, admin mutations and duplicates (own fixture file)', () => {
    let emu;
    let op;
    const VAULT = 'abcdefghijklmnopqrstuvwxyz';
    before(async () => {
      emu = await startEmulator({
        fixturesJson: {
          tokens: { 'rw-token': '*', 'ro-token': { vaults: '*', write: false } },
          vaults: [
            { name: 'Scratch', id: VAULT, items: [
              { title: 'Existing', category: 'PASSWORD', fields: [
                { id: 'password', label: 'password', purpose: 'PASSWORD', type: 'CONCEALED', value: 'Old-Secret-1' }] },
            ] },
            { name: 'Other', items: [] },
          ],
        },
      });
      op = emu.client('rw-token');
    });
    after(async () => {
      if (emu) await emu.stop();
    });

    test('create with ItemBuilder, update, delete', async () => {
      const built = new sdk.ItemBuilder()
        .setCategory(sdk.ItemCategory.Login)
        .setTitle('Created By SDK')
        .addTag('sdk')
        .addUrl({ href: 'https://example.invalid/login', primary: true })
        .addField({ label: 'username', value: 'alice', purpose: sdk.FieldPurpose.Username })
        .addField({ label: 'password', purpose: sdk.FieldPurpose.Password, type: sdk.FieldType.Concealed,
          generate: true, recipe: { length: 40, characterSets: ['LETTERS', 'DIGITS'] } })
        .addField({ label: 'api key', value: 'key-in-section', type: sdk.FieldType.Concealed, sectionName: 'Extra Stuff' })
        .build();
      const sectionId = built.sections[0].id;
      assert.match(sectionId, /^Section_[0-9a-f]{26}$/);

      const created = await op.createItem(VAULT, built);
      assert.match(created.id, ID_RE);
      assert.equal(created.title, 'Created By SDK');
      assert.equal(created.category, 'LOGIN');
      assert.equal(created.version, 1);
      assert.equal(created.vault.id, VAULT);
      assert.deepEqual(created.tags, ['sdk']);
      assert.deepEqual(created.urls.map((u) => [u.href, u.primary]), [['https://example.invalid/login', true]]);
      assert.deepEqual(created.sections.map((s) => [s.id, s.label]), [[sectionId, 'Extra Stuff']]);
      assert.ok(created.createdAt instanceof Date);
      const [user, pass, key] = created.fields;
      assert.equal(user.value, 'alice');
      assert.equal(user.purpose, 'USERNAME');
      assert.match(pass.value, /^[A-Za-z0-9]{40}$/);
      assert.ok(pass.entropy > 200);
      assert.equal(key.section.id, sectionId);
      assert.equal(key.value, 'key-in-section');
      for (const f of created.fields) assert.match(f.id, ID_RE);
      assert.equal((await op.getVaultById(VAULT)).items, 2);

      const fetched = await op.getItemById(VAULT, created.id);
      assert.deepEqual(fetched.fields, created.fields);

      fetched.title = 'Renamed By SDK';
      fetched.fields[0].value = 'bob';
      const updated = await op.updateItem(VAULT, fetched);
      assert.equal(updated.id, created.id);
      assert.equal(updated.version, 2);
      assert.equal(updated.title, 'Renamed By SDK');
      assert.equal(updated.fields[0].value, 'bob');
      assert.equal(updated.fields[1].value, pass.value);
      assert.equal(updated.createdAt.getTime(), created.createdAt.getTime());
      assert.ok(updated.updatedAt.getTime() >= created.updatedAt.getTime());
      assert.equal((await op.getItem(VAULT, 'renamed by sdk')).version, 2);

      await op.deleteItem(VAULT, created.id);
      assert.deepEqual(errorBody(await rejection(op.getItemById(VAULT, created.id))),
        { status: 404, message: `item ${created.id} not found` });
      assert.equal((await op.getVaultById(VAULT)).items, 1);

      const second = await op.createItem(VAULT, new sdk.ItemBuilder().setCategory('API_CREDENTIAL').setTitle('Delete Me').build());
      await op.deleteItem(VAULT, 'Delete Me');
      assert.deepEqual((await op.listItems(VAULT)).map((i) => i.title), ['Existing']);
      assert.equal((await raw(emu, `/v1/vaults/${VAULT}/items/${second.id}`, { token: 'rw-token' })).status, 404);

      const log = (await emu.requests()).filter((r) => r.method !== 'GET');
      assert.deepEqual(log.map((r) => [r.method, r.status]),
        [['POST', 200], ['PUT', 200], ['DELETE', 204], ['POST', 200], ['DELETE', 204]]);
      assert.equal(log[0].path, `/v1/vaults/${VAULT}/items/`);
    });

    test('invalid writes are 400, read-only tokens get 403', async () => {
      const noCategory = await raw(emu, `/v1/vaults/${VAULT}/items`, { token: 'rw-token', method: 'POST', body: { title: 'x' } });
      assert.deepEqual(noCategory.json, { status: 400, message: 'Invalid item category' });
      const notJson = await fetch(`${emu.url}/v1/vaults/${VAULT}/items/`, {
        method: 'POST', headers: { authorization: 'Bearer rw-token' }, body: '{nope',
      });
      assert.equal(notJson.status, 400);
      const ro = emu.client('ro-token');
      const item = new sdk.ItemBuilder().setCategory('PASSWORD').setTitle('Nope').build();
      assert.deepEqual(errorBody(await rejection(ro.createItem(VAULT, item))),
        { status: 403, message: `token does not have write access to vault ${VAULT}` });
      assert.equal((await ro.getItem(VAULT, 'Existing')).fields[0].value, 'Old-Secret-1');
    });

    test('PATCH edits fields by id', async () => {
      const existing = await op.getItemByTitle(VAULT, 'Existing');
      const r = await raw(emu, `/v1/vaults/${VAULT}/items/${existing.id}`, {
        token: 'rw-token', method: 'PATCH',
        body: [
          { op: 'replace', path: '/fields/password/value', value: 'Patched-Secret-2' },
          { op: 'add', path: '/fields', value: { label: 'extra', type: 'STRING', value: 'added' } },
          { op: 'add', path: '/tags/-', value: 'patched' },
          { op: 'replace', path: '/title', value: 'Existing' },
        ],
      });
      assert.equal(r.status, 200);
      assert.equal(r.json.version, existing.version + 1);
      assert.deepEqual(r.json.fields.map((f) => [f.label, f.value]), [['password', 'Patched-Secret-2'], ['extra', 'added']]);
      assert.deepEqual(r.json.tags, ['patched']);
      const badPath = await raw(emu, `/v1/vaults/${VAULT}/items/${existing.id}`, {
        token: 'rw-token', method: 'PATCH', body: [{ op: 'replace', path: '/fields/nope/value', value: 'x' }],
      });
      assert.equal(badPath.status, 400);
    });

    test('duplicate titles make the SDK refuse to pick one', async () => {
      const a = await emu.admin('items', { vault: 'Scratch', item: { title: 'Twin', fields: [{ id: 'v', label: 'v', value: 'one' }] } });
      const b = await emu.admin('items', { vault: VAULT, item: { title: 'Twin', fields: [{ id: 'v', label: 'v', value: 'two' }] } });
      assert.notEqual(a.id, b.id);
      assert.match(a.id, ID_RE);
      assert.deepEqual(errorBody(await rejection(op.getItemByTitle(VAULT, 'Twin'))), {
        status: 400, message: 'Found multiple Items with given title. Provide a more specific Item title',
      });
      assert.deepEqual(errorBody(await rejection(op.getItem(VAULT, 'twin'))), {
        status: 400, message: 'Found multiple Items with given title. Provide a more specific Item title',
      });
      const both = await op.listItemsByTitle(VAULT, 'Twin');
      assert.deepEqual(both.map((i) => i.fields[0].value).sort(), ['one', 'two']);
      assert.equal((await op.getItemById(VAULT, b.id)).fields[0].value, 'two');

      const dupVault = await emu.admin('vaults', { name: 'Other' });
      assert.match(dupVault.id, ID_RE);
      assert.deepEqual(errorBody(await rejection(op.getVault('Other'))), {
        status: 400, message: 'Found multiple Vaults with given title. Provide a more specific Vault title',
      });
      assert.equal((await op.getVault(dupVault.id)).name, 'Other');
    });

    test('recreate gives an item a new id; the old one answers 404', async () => {
      const before1 = await op.getItemByTitle(VAULT, 'Existing');
      const re = await emu.admin('recreate', { vault: 'Scratch', item: 'Existing' });
      assert.match(re.id, ID_RE);
      assert.notEqual(re.id, before1.id);
      assert.deepEqual(errorBody(await rejection(op.getItemById(VAULT, before1.id))),
        { status: 404, message: `item ${before1.id} not found` });
      const after1 = await op.getItemByTitle(VAULT, 'Existing');
      assert.equal(after1.id, re.id);
      assert.equal(after1.fields[0].value, before1.fields[0].value);
    });

    test('admin field changes a value and bumps the version', async () => {
      const item = await op.getItemByTitle(VAULT, 'Existing');
      const changed = await emu.admin('field', { vault: VAULT, item: item.id, field: 'password', value: 'Rotated-Secret-3' });
      assert.equal(changed.version, item.version + 1);
      const now = await op.getItemById(VAULT, item.id);
      assert.equal(now.fields[0].value, 'Rotated-Secret-3');
      assert.equal(now.version, item.version + 1);
      await assert.rejects(emu.admin('field', { vault: VAULT, item: item.id, field: 'nope', value: 'x' }), /404/);
      const cluster = await emu.admin('items', { vault: VAULT, item: {
        title: 'Cluster', sections: [{ id: 'a', label: 'primary' }, { id: 'b', label: 'replica' }],
        fields: [{ label: 'password', section: { id: 'a' }, value: 'p1' }, { label: 'password', section: { id: 'b' }, value: 'r1' }],
      } });
      const edited = await emu.admin('field', { vault: VAULT, item: cluster.id, section: 'replica', field: 'password', value: 'r2' });
      assert.deepEqual(edited.fields.map((f) => f.value), ['p1', 'r2']);
      await emu.admin('remove', { vault: VAULT, item: 'Cluster' });
      assert.equal((await rejection(op.getItemById(VAULT, cluster.id))).status, 404);
      await assert.rejects(emu.admin('items', { vault: 'No Such Vault', item: { title: 'x' } }), /404/);
    });

    test('tokens can be added and revoked at run time', async () => {
      await emu.admin('tokens', { token: 'late-token', vaults: ['Scratch'] });
      const late = emu.client('late-token');
      assert.deepEqual((await late.listVaults()).map((v) => v.id), [VAULT]);
      await emu.admin('tokens', { token: 'late-token', remove: true });
      assert.equal(errorBody(await rejection(late.listVaults())).status, 401);
    });
  });

  describe('faults', () => {
    let emu;
    let op;
    before(async () => {
      emu = await startEmulator();
      op = emu.client();
    });
    after(async () => {
      if (emu) await emu.stop();
    });

    test('error500, error503, rate_limit and unauthorized reach the SDK as {status, message}', async () => {
      const expected = {
        error500: { status: 500, message: 'Internal Server Error' },
        error503: { status: 503, message: 'Service Unavailable' },
        rate_limit: { status: 429, message: 'Too Many Requests' },
        unauthorized: { status: 401, message: 'Invalid bearer token' },
      };
      for (const [mode, body] of Object.entries(expected)) {
        await emu.admin('faults', { mode, count: 1 });
        assert.deepEqual(errorBody(await rejection(op.listVaults())), body, mode);
        assert.equal((await op.listVaults()).length, 4, `${mode} applies to one request only`);
      }
    });

    test('a fault without count lasts until cleared; path_prefix limits it', async () => {
      await emu.admin('faults', { mode: 'error503', path_prefix: '/v1/' });
      for (let i = 0; i < 3; i++) assert.equal(errorBody(await rejection(op.listVaults())).status, 503);
      const hb = await raw(emu, '/heartbeat', { token: null });
      assert.equal(hb.status, 200);
      await emu.admin('faults', { mode: 'none' });
      assert.equal((await op.listVaults()).length, 4);

      await emu.admin('faults', { mode: 'down', path_prefix: '/heartbeat' });
      await assert.rejects(fetch(`${emu.url}/heartbeat`));
      assert.equal((await op.getVault('ChittyOS Services')).id, SERVICES);
      await emu.admin('reset', {});
      assert.equal((await raw(emu, '/heartbeat', { token: null })).text, '.');
    });

    test('down drops the connection without an answer', async () => {
      await emu.admin('reset', {});
      await emu.admin('faults', { mode: 'down', count: 1 });
      const e = await rejection(op.listVaults());
      assert.equal(e.status, undefined);
      assert.ok(['ECONNRESET', 'ERR_BAD_RESPONSE', 'ECONNABORTED'].includes(e.code) || /socket hang up/.test(e.message), `${e.code} ${e.message}`);
      assert.equal((await op.listVaults()).length, 4);
      const log = await emu.requests();
      assert.deepEqual(log.map((r) => [r.status, r.fault]), [[0, 'down'], [200, undefined]]);
    });

    test('slow answers after delay_ms; a short SDK timeout gives up', async () => {
      await emu.admin('faults', { mode: 'slow', delay_ms: 300, count: 1 });
      const t0 = Date.now();
      assert.equal((await op.listVaults()).length, 4);
      assert.ok(Date.now() - t0 >= 290, `took ${Date.now() - t0} ms`);
      await emu.admin('faults', { mode: 'slow', delay_ms: 2000, count: 1 });
      const impatient = emu.client('good-token', { timeout: 200 });
      const e = await rejection(impatient.listVaults());
      assert.equal(e.code, 'ECONNABORTED');
    });

    test('garbage is a 200 that is not JSON', async () => {
      await emu.admin('faults', { mode: 'garbage', count: 1 });
      const r = await raw(emu, '/v1/vaults');
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('content-type'), 'application/json');
      assert.equal(r.json, undefined);
      // The SDK does not notice: it turns each character into an empty Vault.
      await emu.admin('faults', { mode: 'garbage', count: 1 });
      const vaults = await op.listVaults();
      assert.ok(vaults.length > 4);
      assert.ok(vaults.every((v) => v.id === undefined));
    });

    test('truncated promises more bytes than it sends', async () => {
      await emu.admin('faults', { mode: 'truncated', count: 1 });
      // The SDK rejects with axios' own error (not a {status, message} body).
      const e = await rejection(op.listVaults());
      assert.equal(e.name, 'AxiosError');
      assert.equal(e.code, 'ERR_BAD_RESPONSE');
      assert.match(e.message, /aborted/);
      await emu.admin('faults', { mode: 'truncated', count: 1 });
      await assert.rejects(async () => (await fetch(`${emu.url}/heartbeat`)).text());
      assert.equal((await op.listVaults()).length, 4);
    });

    test('bad fault requests are rejected', async () => {
      await assert.rejects(emu.admin('faults', { mode: 'explode' }), /400/);
      await assert.rejects(emu.admin('faults', { mode: 'slow', delay_ms: -1 }), /400/);
      await assert.rejects(emu.admin('faults', { mode: 'error500', count: 0 }), /400/);
    });
  });

  describe('files and one-time passwords (own fixture file)', () => {
    let emu;
    let op;
    const emulatorModule = require(EMULATOR);
    const OTP_URI = 'otpauth://totp/Test:alice?secret=JBSWY3DPEHPK3PXP&issuer=Test';
    before(async () => {
      emu = await startEmulator({
        fixturesJson: {
          tokens: { t: '*' },
          vaults: [{ name: 'Files', items: [{
            title: 'With Attachments', category: 'SECURE_NOTE',
            fields: [{ id: 'otp', label: 'one-time password', type: 'OTP', value: OTP_URI }],
            files: [{ name: 'config.txt', content: 'hello from a file\n' }, { name: 'key.bin', content_base64: 'AAEC/w==' }],
          }] }],
        },
      });
      op = emu.client('t');
    });
    after(async () => {
      if (emu) await emu.stop();
    });

    test('listFiles and getFileContent', async () => {
      const files = await op.listFiles('Files', 'With Attachments');
      assert.deepEqual(files.map((f) => [f.name, f.size]), [['config.txt', 18], ['key.bin', 4]]);
      const item = await op.getItemByTitle((await op.getVault('Files')).id, 'With Attachments');
      assert.equal(files[0].content_path, `/v1/vaults/${item.vault.id}/items/${item.id}/files/${files[0].id}/content`);
      assert.equal(await op.getFileContent('Files', 'With Attachments', files[0].id), 'hello from a file\n');
      const one = await op.getFileById('Files', 'With Attachments', files[1].id);
      assert.equal(one.name, 'key.bin');
      const inline = await raw(emu, `/v1/vaults/${item.vault.id}/items/${item.id}/files?inline_files=true`, { token: 't' });
      assert.deepEqual(inline.json.map((f) => f.content), [Buffer.from('hello from a file\n').toString('base64'), 'AAEC/w==']);
      const content = await fetch(`${emu.url}${files[1].content_path}`, { headers: { authorization: 'Bearer t' } });
      assert.equal(content.headers.get('content-disposition'), 'attachment; filename="key.bin"');
      assert.deepEqual([...new Uint8Array(await content.arrayBuffer())], [0, 1, 2, 255]);
    });

    test('getItemOTP returns the current TOTP code', async () => {
      const vault = await op.getVault('Files');
      const expected = new Set([emulatorModule.totpCode(OTP_URI, Date.now()), emulatorModule.totpCode(OTP_URI, Date.now() + 2000)]);
      const code = await op.getItemOTP(vault.id, 'With Attachments');
      assert.match(code, /^\d{6}$/);
      assert.ok(expected.has(code), `${code} not in ${[...expected]}`);
    });

    test('TOTP matches the RFC 6238 test vector', () => {
      const secret = Buffer.from('12345678901234567890').toString('hex');
      assert.equal(secret.length, 40);
      const uri = 'otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&digits=8';
      assert.equal(emulatorModule.totpCode(uri, 59 * 1000), '94287082');
      assert.equal(emulatorModule.totpCode(uri, 1111111109 * 1000), '07081804');
    });
  });

  describe('process lifecycle', () => {
    test('SIGTERM exits cleanly; --port N restarts on the same port right away', async () => {
      const first = await startEmulator();
      const op = first.client();
      assert.equal((await op.listVaults()).length, 4);
      const { port } = first;
      assert.deepEqual(await first.stop('SIGKILL'), { code: null, signal: 'SIGKILL' });
      await assert.rejects(op.listVaults());

      const second = await startEmulator({ port });
      assert.equal(second.port, port);
      assert.equal((await op.listVaults()).length, 4, 'the same client works against the restarted emulator');
      assert.deepEqual(await second.stop('SIGTERM'), { code: 0, signal: null });

      const third = await startEmulator({ port });
      assert.equal(third.port, port);
      assert.equal((await op.getItem(SERVICES, 'ChittySync Service Token')).fields[0].value, 'fake-chittysync-service-token-0001');
      assert.deepEqual(await third.stop('SIGINT'), { code: 0, signal: null });
    });

    test('bad fixtures or a busy port make it exit with a message', async () => {
      await assert.rejects(startEmulator({ fixturesJson: { vaults: [{ items: [] }] } }), /"name" is required/);
      await assert.rejects(startEmulator({ fixturesJson: { vaults: [{ name: 'a', id: 'x' }, { name: 'b', id: 'x' }] } }),
        /id x is already in use/);
      const holder = await startEmulator();
      await assert.rejects(startEmulator({ port: holder.port }), /EADDRINUSE/);
      await holder.stop();
    });

    test('the emulator exits when its stdin closes (the test process died)', async () => {
      const emu = await startEmulator();
      emu.child.stdin.end();
      assert.deepEqual(await emu.exited, { code: 0, signal: null });
    });
  });
}
