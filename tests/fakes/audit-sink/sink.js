#!/usr/bin/env node
// A fake audit sink for chitty-agent's integration tests (see README.md).
//
// The agent streams audit events as NDJSON batches: POST <path> with
// Content-Type: application/x-ndjson and Authorization: Bearer <token>. Any
// 2xx answer acknowledges the whole batch; anything else makes it retry, so
// the same event may arrive more than once. The sink validates each batch,
// stores every event once by "id", and lets a test switch failure modes at
// run time through an admin API under /__sink/.
//
// Written independently of the agent: Node.js 20, standard library only.
//
// usage: node sink.js [--host 127.0.0.1] [--port N] [--port-file PATH] [--token T]
//                     [--path /ingest] [--store FILE] [--keep-alive-ms N]
//                     [--exit-with-stdin] [--quiet]
'use strict';

const fs = require('node:fs');
const http = require('node:http');
const zlib = require('node:zlib');

const MAX_BODY_BYTES = 64 * 1024 * 1024;
const MAX_LOG_ENTRIES = 10000;
const DEFAULT_SLOW_DELAY_MS = 1000;
const ADMIN_PREFIX = '/__sink/';

// mode -> what happens to an ingest request
//   accept            validate, store, 200
//   fail              500 (or `status`), nothing stored
//   hang              never answer; the socket stays open until the client gives up
//   slow              like accept, after delay_ms (default 1000)
//   reject            400 (or `status`), nothing stored
//   drop              destroy the socket without answering, nothing stored
//   drop-after-store  like accept, then destroy the socket instead of answering (a lost ack)
//   hang-after-store  like accept, then never answer (a lost ack, seen as a timeout)
const MODES = new Set(['accept', 'fail', 'hang', 'slow', 'reject', 'drop', 'drop-after-store', 'hang-after-store']);

function errorBody(status, message) {
  return { status, message };
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

// Splits an NDJSON body. Returns { events: [{id, raw, obj}], lines } or
// { error } naming the first bad line (1-based, counting empty lines too).
function parseBatch(text) {
  const parts = text.split('\n');
  if (parts.length > 0 && parts[parts.length - 1] === '') parts.pop();  // the final newline
  const events = [];
  for (let i = 0; i < parts.length; i++) {
    const raw = parts[i].replace(/\r$/, '').trim();
    if (raw === '') continue;
    let obj;
    try {
      obj = JSON.parse(raw);
    } catch (e) {
      return { error: `line ${i + 1}: not valid JSON (${e.message})`, lines: events.length };
    }
    if (!isPlainObject(obj)) return { error: `line ${i + 1}: not a JSON object`, lines: events.length };
    if (typeof obj.id !== 'string' || obj.id === '') {
      return { error: `line ${i + 1}: "id" must be a non-empty string`, lines: events.length };
    }
    events.push({ id: obj.id, raw });
  }
  if (events.length === 0) return { error: 'empty batch: no NDJSON lines', lines: 0 };
  return { events, lines: events.length };
}

function countLines(text) {
  let n = 0;
  for (const l of text.split('\n')) if (l.trim() !== '') n++;
  return n;
}

class Sink {
  constructor(options = {}) {
    this.token = options.token === undefined ? null : options.token;
    this.path = options.path || '/ingest';
    this.storePath = options.store || null;
    this.quiet = options.quiet === true;
    this.storeFd = null;
    this.connections = 0;
    this.connectionIds = new WeakMap();
    this.hung = new Set();
    this.clear();
    if (this.storePath) this.loadStore();

    this.server = http.createServer((req, res) => this.onRequest(req, res));
    this.server.keepAliveTimeout = options.keepAliveMs === undefined ? 30000 : options.keepAliveMs;
    this.server.headersTimeout = Math.max(60000, this.server.keepAliveTimeout + 1000);
    this.server.requestTimeout = 0;  // a hung request must stay open as long as the client waits
    this.server.on('connection', (socket) => {
      this.connectionIds.set(socket, ++this.connections);
    });
    this.server.on('clientError', (err, socket) => {
      if (socket.writable && err.code !== 'ECONNRESET') {
        socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      } else {
        socket.destroy();
      }
    });
  }

  clear() {
    this.events = [];        // [{id, raw}] in arrival order
    this.ids = new Set();
    this.duplicates = 0;
    this.batches = 0;        // accepted ingest requests
    this.requests = 0;       // all ingest requests
    this.log = [];
    this.setMode({ mode: 'accept' });
  }

  setMode({ mode, delay_ms: delayMs, count, status }) {
    this.mode = {
      mode,
      delay_ms: delayMs === undefined ? (mode === 'slow' ? DEFAULT_SLOW_DELAY_MS : 0) : delayMs,
      count: count || 0,     // 0: until changed; else how many more ingest requests
      status: status === undefined ? (mode === 'reject' ? 400 : mode === 'fail' ? 500 : null) : status,
    };
  }

  // The mode for one ingest request; counts down a limited mode.
  takeMode() {
    const m = { ...this.mode };
    if (this.mode.count > 0) {
      this.mode.count--;
      if (this.mode.count === 0) this.setMode({ mode: 'accept' });
    }
    return m;
  }

  loadStore() {
    let text = '';
    try {
      text = fs.readFileSync(this.storePath, 'utf8');
    } catch (e) {
      if (e.code !== 'ENOENT') throw e;
    }
    const lines = text.split('\n');
    let bad = 0;
    for (let i = 0; i < lines.length; i++) {
      const raw = lines[i].trim();
      if (raw === '') continue;
      let obj;
      try {
        obj = JSON.parse(raw);
      } catch {
        obj = null;
      }
      if (!isPlainObject(obj) || typeof obj.id !== 'string' || obj.id === '') {
        bad++;
        continue;
      }
      if (this.ids.has(obj.id)) continue;
      this.ids.add(obj.id);
      this.events.push({ id: obj.id, raw });
    }
    if (bad > 0) process.stderr.write(`sink: ${this.storePath}: skipped ${bad} unreadable line(s)\n`);
    this.storeFd = fs.openSync(this.storePath, 'a', 0o600);
    // A torn last line (no newline): start the next write on a line of its own.
    if (text !== '' && !text.endsWith('\n')) fs.writeSync(this.storeFd, '\n');
    if (!this.quiet && this.events.length > 0) {
      process.stderr.write(`sink: loaded ${this.events.length} event(s) from ${this.storePath}\n`);
    }
  }

  listen(port, host) {
    return new Promise((resolve, reject) => {
      const onError = (e) => reject(e);
      this.server.once('error', onError);
      this.server.listen({ port, host }, () => {
        this.server.removeListener('error', onError);
        resolve(this.server.address().port);
      });
    });
  }

  close() {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
      for (const s of this.hung) s.destroy();
      if (this.storeFd !== null) {
        try { fs.closeSync(this.storeFd); } catch { /* already closed */ }
        this.storeFd = null;
      }
    });
  }

  onRequest(req, res) {
    const chunks = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) tooLarge = true;
      else chunks.push(c);
    });
    req.on('error', () => {});
    req.on('end', () => {
      try {
        this.dispatch(req, res, tooLarge ? null : Buffer.concat(chunks), size);
      } catch (e) {
        process.stderr.write(`sink: internal error: ${e && e.stack ? e.stack : e}\n`);
        if (!res.headersSent) this.send(res, 500, errorBody(500, 'internal sink error'));
      }
    });
  }

  send(res, status, body, extraHeaders = {}) {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    if (res.destroyed || res.writableEnded) return;
    res.writeHead(status, {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(text),
      ...extraHeaders,
    });
    res.end(text);
  }

  dispatch(req, res, body, size) {
    const url = req.url || '/';
    const q = url.indexOf('?');
    const path = q >= 0 ? url.slice(0, q) : url;
    if (path.startsWith(ADMIN_PREFIX) || path === '/__sink') {
      this.admin(req, res, path.slice(ADMIN_PREFIX.length), body);
      return;
    }
    this.ingest(req, res, path, body, size);
  }

  // ---- the ingest endpoint ------------------------------------------------

  authorizationOk(req) {
    if (this.token === null) return true;
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(req.headers.authorization || '');
    return m !== null && m[1] === this.token;
  }

  ingest(req, res, path, body, size) {
    const entry = {
      status: null,
      lines: 0,
      content_type: req.headers['content-type'] === undefined ? null : req.headers['content-type'],
      authorization_ok: this.authorizationOk(req),
      method: req.method,
      path,
      mode: null,
      bytes: size,
      connection: this.connectionIds.get(req.socket) || 0,
      accepted: 0,
      duplicates: 0,
      message: null,
    };
    this.requests++;
    this.log.push(entry);
    if (this.log.length > MAX_LOG_ENTRIES) this.log.shift();
    const reply = (status, json, headers) => {
      entry.status = status;
      if (json && json.message) entry.message = json.message;
      this.logLine(req, entry);
      this.send(res, status, json, headers);
    };

    if (path !== this.path) {
      reply(404, errorBody(404, `no such endpoint ${path} (the sink ingests at ${this.path})`));
      return;
    }
    if (req.method !== 'POST') {
      reply(405, errorBody(405, `${req.method} not allowed; POST NDJSON to ${this.path}`), { Allow: 'POST' });
      return;
    }

    let text = null;
    let decodeError = null;
    if (body !== null) {
      const encoding = (req.headers['content-encoding'] || 'identity').trim().toLowerCase();
      try {
        if (encoding === 'gzip' || encoding === 'x-gzip') body = zlib.gunzipSync(body);
        else if (encoding === 'deflate') body = zlib.inflateSync(body);
        else if (encoding !== 'identity') decodeError = `unsupported Content-Encoding "${encoding}"`;
      } catch (e) {
        decodeError = `cannot decode ${encoding} body: ${e.message}`;
      }
      if (decodeError === null) text = body.toString('utf8');
    }
    entry.lines = text === null ? 0 : countLines(text);

    const m = this.takeMode();
    entry.mode = m.mode;
    const act = () => {
      if (res.destroyed) {  // the client gave up while we waited
        entry.message = 'client went away';
        this.logLine(req, entry);
        return;
      }
      switch (m.mode) {
        case 'fail': reply(m.status, errorBody(m.status, 'sink failing')); return;
        case 'reject': reply(m.status, errorBody(m.status, 'sink rejecting')); return;
        case 'drop': this.drop(req, entry); return;
        case 'hang': this.hang(req, entry); return;
        default: break;
      }
      if (!entry.authorization_ok) {
        reply(401, errorBody(401, req.headers.authorization === undefined
          ? 'missing Authorization: Bearer token' : 'bad bearer token'), { 'WWW-Authenticate': 'Bearer' });
        return;
      }
      if (body === null) { reply(413, errorBody(413, `batch larger than ${MAX_BODY_BYTES} bytes`)); return; }
      if (decodeError !== null) { reply(415, errorBody(415, decodeError)); return; }
      const parsed = parseBatch(text);
      if (parsed.error) { reply(400, errorBody(400, parsed.error)); return; }
      let stored;
      try {
        stored = this.store(parsed.events);
      } catch (e) {
        reply(500, errorBody(500, `cannot write the store: ${e.message}`));
        return;
      }
      this.batches++;
      entry.accepted = stored.accepted;
      entry.duplicates = stored.duplicates;
      if (m.mode === 'drop-after-store') { this.drop(req, entry); return; }
      if (m.mode === 'hang-after-store') { this.hang(req, entry); return; }
      reply(200, { accepted: stored.accepted, duplicates: stored.duplicates });
    };
    if (m.mode !== 'hang' && m.delay_ms > 0) setTimeout(act, m.delay_ms);
    else act();
  }

  store(events) {
    const fresh = [];
    const seen = new Set();
    let duplicates = 0;
    for (const e of events) {
      if (this.ids.has(e.id) || seen.has(e.id)) {
        duplicates++;
        continue;
      }
      seen.add(e.id);
      fresh.push(e);
    }
    // On disk before in memory and before the 200: an acknowledged event
    // survives a SIGKILL of the sink.
    if (this.storeFd !== null && fresh.length > 0) {
      const buf = Buffer.from(fresh.map((e) => e.raw + '\n').join(''), 'utf8');
      let off = 0;
      while (off < buf.length) off += fs.writeSync(this.storeFd, buf, off, buf.length - off);
    }
    for (const e of fresh) {
      this.ids.add(e.id);
      this.events.push(e);
    }
    this.duplicates += duplicates;
    return { accepted: fresh.length, duplicates };
  }

  drop(req, entry) {
    entry.message = 'connection dropped without an answer';
    this.logLine(req, entry);
    req.socket.destroy();
  }

  hang(req, entry) {
    entry.message = 'hanging (no answer)';
    this.logLine(req, entry);
    const s = req.socket;
    this.hung.add(s);
    s.once('close', () => this.hung.delete(s));
  }

  logLine(req, entry) {
    if (this.quiet) return;
    const what = entry.status === null ? `no answer (${entry.mode})` : String(entry.status);
    process.stderr.write(`sink: ${req.method} ${entry.path} lines=${entry.lines} -> ${what}` +
      `${entry.accepted || entry.duplicates ? ` accepted=${entry.accepted} duplicates=${entry.duplicates}` : ''}` +
      `${entry.message && entry.status !== 200 ? ` (${entry.message})` : ''}\n`);
  }

  // ---- the admin API --------------------------------------------------------

  eventsJson() {
    return `{"events":[${this.events.map((e) => e.raw).join(',')}],"duplicates":${this.duplicates},` +
      `"batches":${this.batches},"requests":${this.requests}}`;
  }

  // One id a line; a backslash, CR or LF inside an id is written \\, \r, \n.
  idsText() {
    const escape = (c) => (c === '\\' ? '\\\\' : c === '\r' ? '\\r' : '\\n');
    return this.events.map((e) => `${e.id.replace(/[\\\r\n]/g, escape)}\n`).join('');
  }

  modeJson() {
    return { mode: this.mode.mode, delay_ms: this.mode.delay_ms, count: this.mode.count, status: this.mode.status };
  }

  admin(req, res, name, body) {
    const route = `${req.method} ${name}`;
    switch (route) {
      case 'GET events': this.send(res, 200, this.eventsJson()); return;
      case 'GET requests': this.send(res, 200, this.log); return;
      case 'GET ids': {
        const text = this.idsText();
        res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
        res.end(text);
        return;
      }
      case 'GET mode': this.send(res, 200, this.modeJson()); return;
      case 'POST mode': this.adminMode(res, body); return;
      case 'POST reset':
        this.clear();
        if (this.storeFd !== null) fs.ftruncateSync(this.storeFd, 0);
        if (!this.quiet) process.stderr.write('sink: reset\n');
        this.send(res, 200, { ok: true });
        return;
      default:
        break;
    }
    if (['events', 'ids', 'requests', 'mode', 'reset'].includes(name)) {
      const allow = name === 'mode' ? 'GET, POST' : name === 'reset' ? 'POST' : 'GET';
      this.send(res, 405, errorBody(405, `${req.method} not allowed on /__sink/${name}`), { Allow: allow });
    } else {
      this.send(res, 404, errorBody(404, `no admin endpoint /__sink/${name}`));
    }
  }

  adminMode(res, body) {
    let spec;
    try {
      spec = JSON.parse(body === null ? '' : body.toString('utf8'));
    } catch (e) {
      this.send(res, 400, errorBody(400, `mode: body is not JSON (${e.message})`));
      return;
    }
    const bad = (message) => this.send(res, 400, errorBody(400, `mode: ${message}`));
    if (!isPlainObject(spec)) { bad('body must be a JSON object'); return; }
    for (const k of Object.keys(spec)) {
      if (!['mode', 'delay_ms', 'count', 'status'].includes(k)) { bad(`unknown field "${k}"`); return; }
    }
    if (!MODES.has(spec.mode)) { bad(`"mode" must be one of ${[...MODES].join(', ')}`); return; }
    const intField = (k, lo, hi) => {
      const v = spec[k];
      if (v === undefined || v === null) return undefined;
      if (!Number.isInteger(v) || v < lo || v > hi) throw new Error(`"${k}" must be an integer in [${lo}, ${hi}]`);
      return v;
    };
    let delayMs, count, status;
    try {
      delayMs = intField('delay_ms', 0, 3600000);
      count = intField('count', 0, 1e9);
      status = intField('status', 300, 599);
    } catch (e) {
      bad(e.message);
      return;
    }
    if (status !== undefined && spec.mode !== 'fail' && spec.mode !== 'reject') {
      bad('"status" applies to the fail and reject modes only');
      return;
    }
    this.setMode({ mode: spec.mode, delay_ms: delayMs, count, status });
    if (!this.quiet) process.stderr.write(`sink: mode ${JSON.stringify(this.modeJson())}\n`);
    this.send(res, 200, this.modeJson());
  }
}

// ---------------------------------------------------------------------------
// Command line

function usage(message) {
  process.stderr.write(`sink: ${message}\n` +
    'usage: node sink.js [--host 127.0.0.1] [--port N] [--port-file PATH] [--token T]\n' +
    '                    [--path /ingest] [--store FILE] [--keep-alive-ms N]\n' +
    '                    [--exit-with-stdin] [--quiet]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 0, portFile: null, token: undefined, path: '/ingest', store: null,
    keepAliveMs: 30000, exitWithStdin: false, quiet: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const name = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    const value = () => {
      if (a.startsWith('--') && eq > 0) return a.slice(eq + 1);
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    const integer = (text, what) => {
      if (!/^\d+$/.test(text)) usage(`${what} must be a non-negative integer, not "${text}"`);
      return Number(text);
    };
    switch (name) {
      case '--host': opts.host = value(); break;
      case '--port':
        opts.port = integer(value(), '--port');
        if (opts.port > 65535) usage('--port must be at most 65535');
        break;
      case '--port-file': opts.portFile = value(); break;
      case '--token': opts.token = value(); break;
      case '--path':
        opts.path = value();
        if (!opts.path.startsWith('/') || opts.path.startsWith(ADMIN_PREFIX)) {
          usage(`--path must start with "/" and not with ${ADMIN_PREFIX}`);
        }
        break;
      case '--store': opts.store = value(); break;
      case '--keep-alive-ms': opts.keepAliveMs = integer(value(), '--keep-alive-ms'); break;
      case '--exit-with-stdin': opts.exitWithStdin = true; break;
      case '--quiet': opts.quiet = true; break;
      case '--help': case '-h': usage('help'); break;
      default: usage(`unknown argument "${a}"`);
    }
  }
  return opts;
}

function writeFileAtomic(path, text) {
  const tmp = `${path}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text, { mode: 0o600 });
  fs.renameSync(tmp, path);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  let sink;
  try {
    sink = new Sink({ token: opts.token, path: opts.path, store: opts.store, keepAliveMs: opts.keepAliveMs,
      quiet: opts.quiet });
  } catch (e) {
    process.stderr.write(`sink: cannot use the store ${opts.store}: ${e.message}\n`);
    process.exit(2);
  }
  let port;
  try {
    port = await sink.listen(opts.port, opts.host);
  } catch (e) {
    process.stderr.write(`sink: cannot listen on ${opts.host}:${opts.port}: ${e.code || e.message}\n`);
    process.exit(3);
  }
  let stopping = false;
  const stop = (why) => {
    if (stopping) return;
    stopping = true;
    if (!opts.quiet) process.stderr.write(`sink: stopping (${why})\n`);
    setTimeout(() => process.exit(0), 2000).unref();
    sink.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (opts.exitWithStdin) {
    process.stdin.on('end', () => stop('stdin closed'));
    process.stdin.on('close', () => stop('stdin closed'));
    process.stdin.on('error', () => stop('stdin error'));
    process.stdin.resume();
  }
  const hostForUrl = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  if (opts.portFile) writeFileAtomic(opts.portFile, `${port}\n`);
  process.stdout.write(`listening on http://${hostForUrl}:${port}\n`);
}

if (require.main === module) main();

module.exports = { Sink, parseBatch, MODES };
