#!/usr/bin/env node
// A 1Password Connect server emulator for chitty-agent's tests.
//
// It serves the Connect REST API (/v1/vaults..., /heartbeat, /health,
// /metrics) from a JSON fixture file held in memory, and a test-only admin
// API under /__emulator/ to inject faults, mutate items and read the request
// log. Only Node's standard library is used. See README.md for the fixture
// format and the admin API; connect-api.md (shared research) for the
// behaviour being reproduced.
//
//   node emulator.js --fixtures FILE [--host 127.0.0.1] [--port N]
//                    [--port-file PATH] [--keep-alive-ms N] [--exit-with-stdin] [--quiet]
//                    [--tls-cert PEM --tls-key PEM]   (serve https instead of http)
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');

const CONNECT_VERSION = '1.8.1';
const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const USER_ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const ID_LENGTH = 26;
const MAX_BODY_BYTES = 16 * 1024 * 1024;
const MAX_LOG_ENTRIES = 100000;

const CATEGORIES = new Set([
  'LOGIN', 'PASSWORD', 'API_CREDENTIAL', 'SERVER', 'DATABASE', 'CREDIT_CARD', 'MEMBERSHIP', 'PASSPORT',
  'SOFTWARE_LICENSE', 'OUTDOOR_LICENSE', 'SECURE_NOTE', 'WIRELESS_ROUTER', 'BANK_ACCOUNT', 'DRIVER_LICENSE',
  'IDENTITY', 'REWARD_PROGRAM', 'DOCUMENT', 'EMAIL_ACCOUNT', 'SOCIAL_SECURITY_NUMBER', 'MEDICAL_RECORD',
  'SSH_KEY', 'CUSTOM',
]);
const VAULT_TYPES = new Set(['USER_CREATED', 'PERSONAL', 'EVERYONE', 'TRANSFER']);
const FAULT_MODES = new Set([
  'none', 'down', 'slow', 'error500', 'error503', 'rate_limit', 'garbage', 'truncated', 'unauthorized',
]);
const CHARACTER_SETS = {
  LETTERS: 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ',
  DIGITS: '0123456789',
  SYMBOLS: '!#$%&()*+,-./:;<=>?@[]^_{|}~',
};
const BUILTIN_LABELS = { USERNAME: 'username', PASSWORD: 'password', NOTES: 'notesPlain' };

// ---------------------------------------------------------------------------
// Small helpers

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function randomString(alphabet, length) {
  let s = '';
  for (let i = 0; i < length; i++) s += alphabet[crypto.randomInt(alphabet.length)];
  return s;
}

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function iso(ms) {
  return new Date(ms).toISOString();  // RFC 3339, UTC, "Z", millisecond precision
}

function validTimestamp(v) {
  return typeof v === 'string' && !Number.isNaN(Date.parse(v));
}

function lower(s) {
  return String(s).toLowerCase();
}

// Form decoding as Go's net/url does it: '+' is a space, percent escapes are
// decoded, and a pair with a bad escape (or a ';') is dropped entirely.
function parseQuery(raw) {
  const params = new Map();
  if (!raw) return params;
  for (const part of raw.split('&')) {
    if (part === '' || part.includes(';')) continue;
    const eq = part.indexOf('=');
    const rawKey = eq >= 0 ? part.slice(0, eq) : part;
    const rawValue = eq >= 0 ? part.slice(eq + 1) : '';
    let key;
    let value;
    try {
      key = decodeURIComponent(rawKey.replace(/\+/g, ' '));
      value = decodeURIComponent(rawValue.replace(/\+/g, ' '));
    } catch {
      continue;
    }
    if (!params.has(key)) params.set(key, value);
  }
  return params;
}

// `<attr> <op> "<value>"`, e.g. `title eq "Neon PostgreSQL"`. Returns
// {attr, op, value} with attr and op lowercased; throws a 400 ApiError.
function parseFilter(text, attributes) {
  const bad = (why) => new ApiError(400, `Invalid filter "${text}": ${why}`);
  if (text.includes("'")) throw bad('unexpected single quote');
  const m = /^\s*([A-Za-z][A-Za-z0-9_.]*)\s+([A-Za-z]+)\s+(.*)$/s.exec(text);
  if (!m) throw bad('expected <attribute> <operator> "<value>"');
  const attr = lower(m[1]);
  const op = lower(m[2]);
  const rest = m[3];
  if (!attributes.includes(attr)) throw bad(`unknown attribute "${m[1]}"`);
  if (op !== 'eq' && op !== 'co') throw bad(`unsupported operator "${m[2]}"`);
  if (!rest.startsWith('"')) throw bad('the value must be a double-quoted string');
  const close = rest.indexOf('"', 1);
  if (close < 0) throw bad('unterminated string');
  if (rest.slice(close + 1).trim() !== '') throw bad(`unexpected text after the value: "${rest.slice(close + 1)}"`);
  return { attr, op, value: rest.slice(1, close) };
}

function matches(op, actual, wanted) {
  const a = lower(actual);
  const w = lower(wanted);
  return op === 'eq' ? a === w : a.includes(w);
}

function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const clean = text.toUpperCase().replace(/[\s=-]/g, '');
  let bits = 0;
  let acc = 0;
  const out = [];
  for (const ch of clean) {
    const v = alphabet.indexOf(ch);
    if (v < 0) return null;
    acc = (acc << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

// RFC 6238 code for an OTP field's value (an otpauth:// URI or a bare base32
// secret); undefined when the value cannot be used.
function totpCode(value, nowMs = Date.now()) {
  if (typeof value !== 'string' || value === '') return undefined;
  let secret = value;
  let digits = 6;
  let period = 30;
  let algorithm = 'sha1';
  if (/^otpauth:\/\//i.test(value)) {
    let u;
    try {
      u = new URL(value);
    } catch {
      return undefined;
    }
    secret = u.searchParams.get('secret') || '';
    digits = Number.parseInt(u.searchParams.get('digits') || '6', 10) || 6;
    period = Number.parseInt(u.searchParams.get('period') || '30', 10) || 30;
    algorithm = lower(u.searchParams.get('algorithm') || 'SHA1');
  }
  const key = base32Decode(secret);
  if (!key || key.length === 0 || !['sha1', 'sha256', 'sha512'].includes(algorithm)) return undefined;
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(nowMs / 1000 / period)));
  const h = crypto.createHmac(algorithm, key).update(counter).digest();
  const off = h[h.length - 1] & 0x0f;
  const code = (h.readUInt32BE(off) & 0x7fffffff) % 10 ** digits;
  return String(code).padStart(digits, '0');
}

function generateValue(recipe) {
  const r = recipe === undefined || recipe === null ? {} : recipe;
  if (!isObject(r)) throw new ApiError(400, 'Invalid recipe');
  const length = r.length === undefined ? 32 : r.length;
  if (!Number.isInteger(length) || length < 1 || length > 64) {
    throw new ApiError(400, 'Invalid recipe: length must be between 1 and 64');
  }
  let sets = r.characterSets;
  if (sets === undefined || sets === null || (Array.isArray(sets) && sets.length === 0)) {
    sets = Object.keys(CHARACTER_SETS);
  }
  if (!Array.isArray(sets) || sets.some((s) => !(s in CHARACTER_SETS)) || new Set(sets).size !== sets.length) {
    throw new ApiError(400, 'Invalid recipe: characterSets must be unique values of LETTERS, DIGITS, SYMBOLS');
  }
  const exclude = typeof r.excludeCharacters === 'string' ? r.excludeCharacters : '';
  const pool = [...new Set(sets.map((s) => CHARACTER_SETS[s]).join(''))].filter((c) => !exclude.includes(c));
  if (pool.length === 0) throw new ApiError(400, 'Invalid recipe: no characters left to generate from');
  let value = '';
  for (let i = 0; i < length; i++) value += pool[crypto.randomInt(pool.length)];
  return { value, entropy: Math.round(length * Math.log2(pool.length) * 100) / 100 };
}

function estimateEntropy(value) {
  let pool = 0;
  if (/[a-z]/.test(value)) pool += 26;
  if (/[A-Z]/.test(value)) pool += 26;
  if (/[0-9]/.test(value)) pool += 10;
  if (/[^A-Za-z0-9]/.test(value)) pool += 32;
  if (pool === 0) return 0;
  return Math.round(value.length * Math.log2(pool) * 100) / 100;
}

// ---------------------------------------------------------------------------
// The store: vaults, items, tokens.

class Store {
  constructor(fixtures) {
    if (!isObject(fixtures)) throw new Error('fixtures: the top level must be a JSON object');
    this.usedIds = new Set();
    this.userId = typeof fixtures.user_id === 'string' ? fixtures.user_id : randomString(USER_ID_ALPHABET, ID_LENGTH);
    this.maxInlineBytes = (Number.isFinite(fixtures.max_inline_file_kb) ? fixtures.max_inline_file_kb : 100) * 1024;
    this.clock = Date.now() - 90 * 24 * 3600 * 1000;  // fixture items look 90 days old
    this.tokens = new Map();
    const tokens = fixtures.tokens === undefined ? {} : fixtures.tokens;
    if (!isObject(tokens)) throw new Error('fixtures: "tokens" must be an object');
    for (const [name, spec] of Object.entries(tokens)) this.setToken(name, spec);
    this.vaults = [];
    const vaults = fixtures.vaults === undefined ? [] : fixtures.vaults;
    if (!Array.isArray(vaults)) throw new Error('fixtures: "vaults" must be an array');
    for (const v of vaults) this.addVault(v, true);
  }

  newId() {
    for (;;) {
      const id = randomString(ID_ALPHABET, ID_LENGTH);
      if (!this.usedIds.has(id)) {
        this.usedIds.add(id);
        return id;
      }
    }
  }

  claimId(id, what) {
    if (typeof id !== 'string' || id === '') throw new ApiError(400, `${what}: "id" must be a non-empty string`);
    if (this.usedIds.has(id)) throw new ApiError(400, `${what}: id ${id} is already in use`);
    this.usedIds.add(id);
    return id;
  }

  // A timestamp for fixture data: monotonically increasing, in the past.
  fixtureTime() {
    this.clock += 61 * 1000;
    return iso(this.clock);
  }

  setToken(name, spec) {
    let s = spec;
    if (s === '*' || Array.isArray(s)) s = { vaults: s };
    if (!isObject(s)) throw new ApiError(400, `token ${name}: expected {"vaults": "*" | [names or ids]}`);
    const vaults = s.vaults === undefined ? '*' : s.vaults;
    if (vaults !== '*' && !(Array.isArray(vaults) && vaults.every((v) => typeof v === 'string'))) {
      throw new ApiError(400, `token ${name}: "vaults" must be "*" or an array of vault names or ids`);
    }
    this.tokens.set(name, { vaults, write: s.write !== false });
  }

  inScope(token, vault) {
    if (token.vaults === '*') return true;
    return token.vaults.some((v) => v === vault.id || lower(v) === lower(vault.name));
  }

  addVault(spec, fromFixture) {
    if (!isObject(spec)) throw new ApiError(400, 'vault: expected an object');
    if (typeof spec.name !== 'string' || spec.name === '') throw new ApiError(400, 'vault: "name" is required');
    const type = spec.type === undefined ? 'USER_CREATED' : spec.type;
    if (!VAULT_TYPES.has(type)) throw new ApiError(400, `vault ${spec.name}: invalid type "${type}"`);
    const created = validTimestamp(spec.createdAt) ? spec.createdAt : fromFixture ? this.fixtureTime() : iso(Date.now());
    const vault = {
      id: spec.id === undefined ? this.newId() : this.claimId(spec.id, `vault ${spec.name}`),
      name: spec.name,
      description: typeof spec.description === 'string' ? spec.description : '',
      attributeVersion: Number.isInteger(spec.attributeVersion) ? spec.attributeVersion : 1,
      contentVersion: Number.isInteger(spec.contentVersion) ? spec.contentVersion : 1,
      type,
      createdAt: created,
      updatedAt: validTimestamp(spec.updatedAt) ? spec.updatedAt : created,
      items: [],
    };
    this.vaults.push(vault);
    const items = spec.items === undefined ? [] : spec.items;
    if (!Array.isArray(items)) throw new ApiError(400, `vault ${spec.name}: "items" must be an array`);
    for (const it of items) this.addItem(vault, it, { fromFixture });
    return vault;
  }

  vaultById(id) {
    return this.vaults.find((v) => v.id === id);
  }

  // By id, else by name (first match, exact then case-insensitive).
  findVault(query) {
    if (typeof query !== 'string') throw new ApiError(400, '"vault" must be a vault name or id');
    const v = this.vaultById(query) || this.vaults.find((x) => x.name === query) ||
      this.vaults.find((x) => lower(x.name) === lower(query));
    if (!v) throw new ApiError(404, `vault ${query} not found`);
    return v;
  }

  findItem(vault, query) {
    if (typeof query !== 'string') throw new ApiError(400, '"item" must be an item title or id');
    const it = vault.items.find((x) => x.id === query) || vault.items.find((x) => x.title === query) ||
      vault.items.find((x) => lower(x.title) === lower(query));
    if (!it) throw new ApiError(404, `item ${query} not found`);
    return it;
  }

  touchVault(vault) {
    vault.contentVersion += 1;
    vault.updatedAt = iso(Date.now());
  }

  // Builds the stored form of an item from client or fixture JSON.
  // opts: {fromFixture, viaApi, previous (the item being replaced)}.
  buildItem(vault, spec, opts) {
    if (!isObject(spec)) throw new ApiError(400, 'Invalid item: expected a JSON object');
    const previous = opts.previous;
    let category = spec.category;
    if (category === undefined && (opts.fromFixture || !opts.viaApi)) category = 'API_CREDENTIAL';
    if (typeof category !== 'string' || !CATEGORIES.has(category)) throw new ApiError(400, 'Invalid item category');
    if (opts.viaApi && !previous && category === 'DOCUMENT') {
      throw new ApiError(400, 'Creating items of category DOCUMENT is not supported');
    }
    if (opts.viaApi && !previous && category === 'CUSTOM') {
      throw new ApiError(400, 'Creating items of category CUSTOM is not supported');
    }
    if (spec.title !== undefined && typeof spec.title !== 'string') throw new ApiError(400, 'Invalid item: "title" must be a string');
    const tags = spec.tags === undefined || spec.tags === null ? [] : spec.tags;
    if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string')) {
      throw new ApiError(400, 'Invalid item: "tags" must be an array of strings');
    }
    const urls = spec.urls === undefined || spec.urls === null ? [] : spec.urls;
    if (!Array.isArray(urls) || urls.some((u) => !isObject(u) || typeof u.href !== 'string')) {
      throw new ApiError(400, 'Invalid item: "urls" must be an array of {"href": ...}');
    }
    const sections = spec.sections === undefined || spec.sections === null ? [] : spec.sections;
    if (!Array.isArray(sections)) throw new ApiError(400, 'Invalid item: "sections" must be an array');
    const fields = spec.fields === undefined || spec.fields === null ? [] : spec.fields;
    if (!Array.isArray(fields)) throw new ApiError(400, 'Invalid item: "fields" must be an array');

    const now = iso(Date.now());
    const fixtureLike = opts.fromFixture;
    let createdAt;
    let updatedAt;
    let version;
    if (previous) {
      createdAt = previous.createdAt;
      updatedAt = now;
      version = previous.version + 1;
    } else if (fixtureLike) {
      createdAt = validTimestamp(spec.createdAt) ? spec.createdAt : this.fixtureTime();
      updatedAt = validTimestamp(spec.updatedAt) ? spec.updatedAt : createdAt;
      version = Number.isInteger(spec.version) && spec.version > 0 ? spec.version : 1;
    } else {
      createdAt = now;
      updatedAt = now;
      version = 1;
    }
    let id;
    if (previous) id = previous.id;
    else if (!opts.viaApi && spec.id !== undefined) id = this.claimId(spec.id, `item ${spec.title}`);
    else id = this.newId();

    const item = {
      id,
      title: spec.title === undefined ? '' : spec.title,
      category,
      urls: urls.map((u) => {
        const o = { href: u.href };
        if (typeof u.label === 'string') o.label = u.label;
        if (u.primary === true) o.primary = true;
        return o;
      }),
      favorite: spec.favorite === true,
      tags: [...tags],
      version,
      state: !opts.viaApi && (spec.state === 'ARCHIVED' || spec.state === 'DELETED') ? spec.state : undefined,
      createdAt,
      updatedAt,
      lastEditedBy: !opts.viaApi && typeof spec.lastEditedBy === 'string' ? spec.lastEditedBy : this.userId,
      sections: sections.map((s) => {
        if (!isObject(s)) throw new ApiError(400, 'Invalid item: each section must be an object');
        const o = { id: typeof s.id === 'string' && s.id !== '' ? s.id : this.newId() };
        if (typeof s.label === 'string') o.label = s.label;
        return o;
      }),
      fields: fields.map((f) => this.buildField(f)),
      files: [],
    };
    if (previous) {
      item.files = previous.files;  // files cannot be changed through Connect
    } else if (!opts.viaApi && spec.files !== undefined) {
      if (!Array.isArray(spec.files)) throw new ApiError(400, 'Invalid item: "files" must be an array');
      item.files = spec.files.map((f) => this.buildFile(f));
    }
    return item;
  }

  buildField(f) {
    if (!isObject(f)) throw new ApiError(400, 'Invalid item: each field must be an object');
    let type = f.type === undefined || f.type === null || f.type === '' ? 'STRING' : String(f.type).toUpperCase();
    if (type === 'TOTP') type = 'OTP';
    const purpose = typeof f.purpose === 'string' ? f.purpose : '';
    const out = { id: typeof f.id === 'string' && f.id !== '' ? f.id : this.newId(), type };
    if (purpose !== '') out.purpose = purpose;
    if (typeof f.label === 'string') out.label = f.label;
    else if (BUILTIN_LABELS[purpose]) out.label = BUILTIN_LABELS[purpose];
    if (f.section !== undefined && f.section !== null) {
      const sid = typeof f.section === 'string' ? f.section : isObject(f.section) ? f.section.id : undefined;
      if (typeof sid !== 'string' || sid === '') throw new ApiError(400, 'Invalid item: field section must be {"id": ...}');
      out.section = { id: sid };
    }
    if (f.generate === true) {
      const g = generateValue(f.recipe);
      out.value = g.value;
      out.entropy = g.entropy;
    } else if (f.value !== undefined && f.value !== null) {
      out.value = typeof f.value === 'string' ? f.value : String(f.value);
      if (purpose === 'PASSWORD') out.entropy = estimateEntropy(out.value);
    }
    return out;
  }

  buildFile(f) {
    if (!isObject(f) || typeof f.name !== 'string') throw new ApiError(400, 'Invalid item: each file needs a "name"');
    let content;
    if (typeof f.content_base64 === 'string') content = Buffer.from(f.content_base64, 'base64');
    else content = Buffer.from(typeof f.content === 'string' ? f.content : '', 'utf8');
    const out = { id: typeof f.id === 'string' && f.id !== '' ? this.claimId(f.id, 'file') : this.newId(), name: f.name, content };
    if (f.section !== undefined) {
      const sid = typeof f.section === 'string' ? f.section : isObject(f.section) ? f.section.id : undefined;
      if (typeof sid === 'string') out.section = { id: sid };
    }
    return out;
  }

  addItem(vault, spec, opts) {
    const item = this.buildItem(vault, spec, opts);
    vault.items.push(item);
    if (!opts.fromFixture) this.touchVault(vault);
    return item;
  }

  replaceItem(vault, previous, spec, viaApi) {
    const item = this.buildItem(vault, spec, { viaApi, previous });
    vault.items[vault.items.indexOf(previous)] = item;
    this.touchVault(vault);
    return item;
  }

  deleteItem(vault, item) {
    vault.items.splice(vault.items.indexOf(item), 1);
    this.touchVault(vault);
  }

  // JSON views ---------------------------------------------------------------

  vaultJson(v) {
    return {
      id: v.id, name: v.name, description: v.description, attributeVersion: v.attributeVersion,
      contentVersion: v.contentVersion, items: v.items.filter((i) => !i.state).length, type: v.type,
      createdAt: v.createdAt, updatedAt: v.updatedAt,
    };
  }

  itemSummaryJson(vault, it) {
    const o = { id: it.id, title: it.title, vault: { id: vault.id }, category: it.category };
    if (it.urls.length) o.urls = it.urls.map((u) => ({ ...u }));
    o.favorite = it.favorite;
    if (it.tags.length) o.tags = [...it.tags];
    o.version = it.version;
    if (it.state) o.state = it.state;
    o.createdAt = it.createdAt;
    o.updatedAt = it.updatedAt;
    o.lastEditedBy = it.lastEditedBy;
    return o;
  }

  fileJson(vault, it, f, inline) {
    const o = {
      id: f.id, name: f.name, size: f.content.length,
      content_path: `/v1/vaults/${vault.id}/items/${it.id}/files/${f.id}/content`,
    };
    if (f.section) o.section = { ...f.section };
    if (inline) {
      if (f.content.length > this.maxInlineBytes) {
        throw new ApiError(413, `File is too large to inline in request. Use the /v1/vaults/${vault.id}/items/${it.id}/files/${f.id}/content endpoint instead.`);
      }
      o.content = f.content.toString('base64');
    }
    return o;
  }

  fullItemJson(vault, it) {
    const o = this.itemSummaryJson(vault, it);
    if (it.sections.length) o.sections = it.sections.map((s) => ({ ...s }));
    o.fields = it.fields.map((f) => {
      const c = { ...f };
      if (f.section) c.section = { ...f.section };
      if (f.type === 'OTP') {
        const code = totpCode(f.value);
        if (code !== undefined) c.totp = code;
      }
      return c;
    });
    if (it.files.length) o.files = it.files.map((f) => this.fileJson(vault, it, f, false));
    return o;
  }

  // The item as input JSON (for PATCH).
  itemInputJson(vault, it) {
    const o = this.fullItemJson(vault, it);
    delete o.files;
    for (const f of o.fields) delete f.totp;
    return o;
  }
}

// ---------------------------------------------------------------------------
// PATCH (RFC 6902 subset as Connect implements it: fields and sections are
// addressed by id, everything else by JSON pointer).

function unescapePointer(token) {
  return token.replace(/~1/g, '/').replace(/~0/g, '~');
}

function applyPatch(doc, ops) {
  if (!Array.isArray(ops)) throw new ApiError(400, 'Invalid patch: expected a JSON array of operations');
  let root = doc;
  for (const op of ops) {
    if (!isObject(op) || typeof op.path !== 'string' || !['add', 'remove', 'replace'].includes(op.op)) {
      throw new ApiError(400, 'Invalid patch operation: expected {"op": "add"|"remove"|"replace", "path": ...}');
    }
    const bad = () => new ApiError(400, `Invalid patch path "${op.path}"`);
    if (op.op !== 'remove' && !('value' in op)) throw new ApiError(400, `Invalid patch operation on "${op.path}": missing value`);
    if (op.path === '' || op.path === '/') {
      if (op.op === 'remove' || !isObject(op.value)) throw bad();
      root = { ...op.value, id: doc.id };
      continue;
    }
    if (!op.path.startsWith('/')) throw bad();
    const tokens = op.path.slice(1).split('/').map(unescapePointer);
    let parent = root;
    for (let i = 0; i < tokens.length - 1; i++) {
      const t = tokens[i];
      let next;
      if (Array.isArray(parent)) {
        next = i === 1 && (tokens[0] === 'fields' || tokens[0] === 'sections')
          ? parent.find((x) => isObject(x) && x.id === t)
          : parent[Number(t)];
      } else if (isObject(parent)) {
        if (parent[t] === undefined && (t === 'fields' || t === 'sections' || t === 'tags' || t === 'urls') && i === 0) parent[t] = [];
        next = parent[t];
      }
      if (next === undefined || next === null || typeof next !== 'object') throw bad();
      parent = next;
    }
    const last = tokens[tokens.length - 1];
    const byId = tokens.length === 2 && (tokens[0] === 'fields' || tokens[0] === 'sections');
    if (Array.isArray(parent)) {
      let index;
      if (byId) {
        index = parent.findIndex((x) => isObject(x) && x.id === last);
        if (index < 0) {
          if (op.op !== 'add' || !isObject(op.value)) throw bad();
          parent.push({ ...op.value, id: last });
          continue;
        }
        if (op.op === 'remove') parent.splice(index, 1);
        else if (!isObject(op.value)) throw bad();
        else parent[index] = { ...op.value, id: last };
        continue;
      }
      if (last === '-' && op.op === 'add') {
        parent.push(op.value);
        continue;
      }
      if (!/^\d+$/.test(last)) throw bad();
      index = Number(last);
      if (op.op === 'add') {
        if (index > parent.length) throw bad();
        parent.splice(index, 0, op.value);
      } else {
        if (index >= parent.length) throw bad();
        if (op.op === 'remove') parent.splice(index, 1);
        else parent[index] = op.value;
      }
    } else if (isObject(parent)) {
      if (tokens.length === 1 && (last === 'id' || last === 'vault')) throw bad();
      if (op.op === 'add' && tokens.length === 1 && (last === 'fields' || last === 'sections') && Array.isArray(root[last]) && isObject(op.value)) {
        root[last].push(op.value);  // `add` to /fields appends a field
        continue;
      }
      if (op.op !== 'add' && !(last in parent)) throw bad();
      if (op.op === 'remove') delete parent[last];
      else parent[last] = op.value;
    } else {
      throw bad();
    }
  }
  return root;
}

// ---------------------------------------------------------------------------
// HTTP

function response(status, body, headers = {}) {
  return { status, headers, body: Buffer.isBuffer(body) ? body : Buffer.from(body === undefined ? '' : body, 'utf8') };
}

function jsonResponse(status, value, headers = {}) {
  return response(status, JSON.stringify(value), { 'Content-Type': 'application/json', ...headers });
}

function errorResponse(status, message) {
  return jsonResponse(status, { status, message });
}

const STATUS_MESSAGES = { 405: 'Method Not Allowed', 413: 'Payload Too Large', 429: 'Too Many Requests', 500: 'Internal Server Error', 503: 'Service Unavailable' };

class Emulator {
  constructor(store, options = {}) {
    this.store = store;
    this.quiet = options.quiet === true;
    this.faults = [];
    this.log = [];
    this.counts = new Map();
    this.connections = 0;
    this.started = Date.now();
    this.connectionIds = new WeakMap();
    const handler = (req, res) => this.onRequest(req, res);
    this.server = options.tls ? https.createServer(options.tls, handler) : http.createServer(handler);
    this.server.keepAliveTimeout = options.keepAliveMs === undefined ? 30000 : options.keepAliveMs;
    this.server.headersTimeout = Math.max(60000, this.server.keepAliveTimeout + 1000);
    this.server.on(options.tls ? 'secureConnection' : 'connection', (socket) => {
      this.connectionIds.set(socket, ++this.connections);
    });
    this.server.on('clientError', (err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      else socket.destroy();
    });
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
        this.dispatch(req, res, tooLarge ? null : Buffer.concat(chunks));
      } catch (e) {
        process.stderr.write(`emulator: internal error: ${e && e.stack ? e.stack : e}\n`);
        if (!res.headersSent) this.send(req, res, errorResponse(500, 'internal emulator error'), null);
      }
    });
  }

  dispatch(req, res, body) {
    const url = req.url || '/';
    const q = url.indexOf('?');
    const rawPath = q >= 0 ? url.slice(0, q) : url;
    const rawQuery = q >= 0 ? url.slice(q + 1) : '';
    if (rawPath === '/__emulator' || rawPath.startsWith('/__emulator/')) {
      const r = body === null ? errorResponse(413, 'request body too large') : this.admin(req.method, rawPath, body);
      this.send(req, res, r, null);
      return;
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization || '');
    const entry = {
      method: req.method, path: rawPath, query: rawQuery, status: null,
      token: m ? m[1] : null, connection: this.connectionIds.get(req.socket) || 0,
    };
    this.log.push(entry);
    if (this.log.length > MAX_LOG_ENTRIES) this.log.shift();

    const fault = this.takeFault(rawPath);
    if (fault) entry.fault = fault.mode;
    const proceed = () => {
      if (req.socket.destroyed) {
        entry.status = 0;
        entry.aborted = true;
        return;
      }
      if (fault && fault.mode !== 'slow') {
        this.applyFault(req, res, fault, entry, () => this.handle(req, rawPath, rawQuery, body, m ? m[1] : null));
        return;
      }
      const r = body === null ? errorResponse(413, 'request body too large') : this.handle(req, rawPath, rawQuery, body, m ? m[1] : null);
      this.send(req, res, r, entry);
    };
    if (fault && fault.delay_ms > 0) setTimeout(proceed, fault.delay_ms);
    else proceed();
  }

  takeFault(rawPath) {
    for (let i = 0; i < this.faults.length; i++) {
      const f = this.faults[i];
      if (!rawPath.startsWith(f.path_prefix)) continue;
      if (f.mode === 'unauthorized' && !(rawPath === '/v1' || rawPath.startsWith('/v1/'))) continue;
      if (f.remaining !== null) {
        f.remaining -= 1;
        if (f.remaining <= 0) this.faults.splice(i, 1);
      }
      return f;
    }
    return null;
  }

  applyFault(req, res, fault, entry, normal) {
    switch (fault.mode) {
      case 'down':
        entry.status = 0;
        this.note(req, 0, entry);
        req.socket.destroy();
        return;
      case 'error500':
        this.send(req, res, errorResponse(500, 'Internal Server Error'), entry);
        return;
      case 'error503':
        this.send(req, res, errorResponse(503, 'Service Unavailable'), entry);
        return;
      case 'rate_limit':
        this.send(req, res, errorResponse(429, 'Too Many Requests'), entry);
        return;
      case 'unauthorized':
        this.send(req, res, errorResponse(401, 'Invalid bearer token'), entry);
        return;
      case 'garbage':
        this.send(req, res, response(200, '<html><body>502 Bad Gateway</body></html> this is not JSON {', { 'Content-Type': 'application/json' }), entry);
        return;
      case 'truncated': {
        let r = normal();
        if (r.body.length === 0) r = jsonResponse(200, { status: 200, message: 'truncated response' });
        const sent = r.body.subarray(0, Math.ceil(r.body.length / 2));
        const headers = { '1Password-Connect-Version': CONNECT_VERSION, ...r.headers, 'Content-Length': String(r.body.length + 64) };
        entry.status = r.status;
        this.note(req, r.status, entry);
        res.writeHead(r.status, headers);
        res.write(sent, () => res.socket && res.socket.end());
        return;
      }
      default:
        this.send(req, res, normal(), entry);
    }
  }

  note(req, status, entry) {
    this.counts.set(status, (this.counts.get(status) || 0) + 1);
    if (!this.quiet) {
      process.stderr.write(`emulator: ${req.method} ${req.url} -> ${status || 'dropped'}${entry && entry.fault ? ` (fault ${entry.fault})` : ''}\n`);
    }
  }

  send(req, res, r, entry) {
    if (entry) {
      entry.status = r.status;
      this.note(req, r.status, entry);
    }
    const headers = { '1Password-Connect-Version': CONNECT_VERSION, ...r.headers };
    if (r.status !== 204 && r.status !== 304) headers['Content-Length'] = String(r.body.length);
    if (res.destroyed) return;
    res.writeHead(r.status, headers);
    res.end(r.status === 204 ? undefined : r.body);
  }

  // The Connect API -----------------------------------------------------------

  handle(req, rawPath, rawQuery, body, tokenName) {
    try {
      return this.route(req, rawPath, rawQuery, body, tokenName);
    } catch (e) {
      if (e instanceof ApiError) return errorResponse(e.status, e.message);
      throw e;
    }
  }

  route(req, rawPath, rawQuery, body, tokenName) {
    let path = rawPath;
    if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const seg = path.split('/').slice(1).map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    });
    const allow = (...methods) => {
      if (!methods.includes(method)) throw new ApiError(405, STATUS_MESSAGES[405]);
    };

    if (seg.length === 1 && seg[0] === 'heartbeat') {
      allow('GET');
      return response(200, '.', { 'Content-Type': 'text/plain' });
    }
    if (seg.length === 1 && seg[0] === 'health') {
      allow('GET');
      return jsonResponse(200, {
        name: '1Password Connect API',
        version: CONNECT_VERSION,
        dependencies: [
          { service: 'sync', status: 'ACTIVE' },
          { service: 'sqlite', status: 'ACTIVE', message: 'Connected to ./1password.sqlite' },
        ],
      });
    }
    if (seg.length === 1 && seg[0] === 'metrics') {
      allow('GET');
      return response(200, this.metrics(), { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
    }
    if (seg[0] !== 'v1') throw new ApiError(404, `route ${rawPath} not found`);

    const token = tokenName === null ? undefined : this.store.tokens.get(tokenName);
    if (!token) throw new ApiError(401, 'Invalid bearer token');
    const params = parseQuery(rawQuery);
    const store = this.store;
    const n = seg.length;

    if (n === 2 && seg[1] === 'activity') {
      allow('GET');
      return jsonResponse(200, [], { 'Content-Range': '0-0/0' });
    }
    if (seg[1] !== 'vaults' || n > 8) throw new ApiError(404, `route ${rawPath} not found`);
    if (n === 2) {
      allow('GET');
      let vaults = store.vaults.filter((v) => store.inScope(token, v));
      const filter = params.get('filter');
      if (filter) {
        const f = parseFilter(filter, ['name', 'title']);
        vaults = vaults.filter((v) => matches(f.op, v.name, f.value));
      }
      return jsonResponse(200, vaults.map((v) => store.vaultJson(v)));
    }

    const vault = store.vaultById(seg[2]);
    if (!vault) throw new ApiError(404, `vault ${seg[2]} not found`);
    if (!store.inScope(token, vault)) throw new ApiError(403, `vault ${vault.id} is not in scope`);
    const requireWrite = () => {
      if (!token.write) throw new ApiError(403, `token does not have write access to vault ${vault.id}`);
    };
    if (n === 3) {
      allow('GET');
      return jsonResponse(200, store.vaultJson(vault));
    }
    if (seg[3] !== 'items') throw new ApiError(404, `route ${rawPath} not found`);
    const parseBody = () => {
      try {
        return JSON.parse(body.toString('utf8'));
      } catch (e) {
        throw new ApiError(400, `Invalid request body: ${e.message}`);
      }
    };

    // /v1/vaults/{v}/items
    if (n === 4) {
      if (method === 'POST') {
        requireWrite();
        const item = store.addItem(vault, parseBody(), { viaApi: true });
        return jsonResponse(200, store.fullItemJson(vault, item));
      }
      allow('GET');
      let items = vault.items.filter((i) => !i.state);
      const filter = params.get('filter');
      if (filter) {
        const f = parseFilter(filter, ['title', 'tag']);
        items = items.filter((i) => (f.attr === 'title'
          ? matches(f.op, i.title, f.value)
          : i.tags.some((t) => matches(f.op, t, f.value))));
      }
      return jsonResponse(200, items.map((i) => store.itemSummaryJson(vault, i)));
    }

    // /v1/vaults/{v}/items/{i}[/files[/{f}[/content]]]
    const item = vault.items.find((i) => i.id === seg[4] && !i.state);
    if (!item) throw new ApiError(404, `item ${seg[4]} not found`);
    if (n === 5) {
      if (method === 'GET') return jsonResponse(200, store.fullItemJson(vault, item));
      if (method === 'PUT') {
        requireWrite();
        const spec = parseBody();
        if (isObject(spec) && spec.id !== undefined && spec.id !== item.id) {
          throw new ApiError(400, `item ID ${spec.id} in the body does not match ${item.id} in the path`);
        }
        const updated = store.replaceItem(vault, item, spec, true);
        return jsonResponse(200, store.fullItemJson(vault, updated));
      }
      if (method === 'PATCH') {
        requireWrite();
        const patched = applyPatch(store.itemInputJson(vault, item), parseBody());
        const updated = store.replaceItem(vault, item, patched, true);
        return jsonResponse(200, store.fullItemJson(vault, updated));
      }
      if (method === 'DELETE') {
        requireWrite();
        store.deleteItem(vault, item);
        return response(204, '');
      }
      throw new ApiError(405, STATUS_MESSAGES[405]);
    }
    if (seg[5] !== 'files' || (n === 8 && seg[7] !== 'content') || n > 8) {
      throw new ApiError(404, `route ${rawPath} not found`);
    }
    allow('GET');
    const inline = lower(params.get('inline_files') || '') === 'true';
    if (n === 6) return jsonResponse(200, item.files.map((f) => store.fileJson(vault, item, f, inline)));
    const file = item.files.find((f) => f.id === seg[6]);
    if (!file) throw new ApiError(404, `file ${seg[6]} not found`);
    if (n === 7) return jsonResponse(200, store.fileJson(vault, item, file, inline));
    const safeName = file.name.replace(/["\\\r\n]/g, '_');
    return response(200, file.content, {
      'Content-Type': 'application/octet-stream',
      'Content-Disposition': `attachment; filename="${safeName}"`,
    });
  }

  // The admin API ---------------------------------------------------------------

  admin(method, rawPath, body) {
    try {
      return this.adminRoute(method, rawPath, body);
    } catch (e) {
      if (e instanceof ApiError) return errorResponse(e.status, e.message);
      throw e;
    }
  }

  adminRoute(method, rawPath, body) {
    let path = rawPath.slice('/__emulator'.length);
    if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
    const store = this.store;
    const json = () => {
      if (body.length === 0) return {};
      let v;
      try {
        v = JSON.parse(body.toString('utf8'));
      } catch (e) {
        throw new ApiError(400, `Invalid JSON: ${e.message}`);
      }
      if (!isObject(v)) throw new ApiError(400, 'expected a JSON object');
      return v;
    };
    const want = (m) => {
      if (method !== m) throw new ApiError(405, `${path}: use ${m}`);
    };
    switch (path) {
      case '/requests':
        want('GET');
        return jsonResponse(200, { requests: this.log });
      case '/reset':
        want('POST');
        this.log = [];
        this.faults = [];
        return jsonResponse(200, { ok: true });
      case '/faults': {
        if (method === 'GET') return jsonResponse(200, { faults: this.faults });
        want('POST');
        const b = json();
        if (!FAULT_MODES.has(b.mode)) {
          throw new ApiError(400, `"mode" must be one of ${[...FAULT_MODES].join(', ')}`);
        }
        if (b.mode === 'none') {
          this.faults = [];
          return jsonResponse(200, { faults: this.faults });
        }
        const delay = b.delay_ms === undefined ? (b.mode === 'slow' ? 1000 : 0) : b.delay_ms;
        if (!Number.isInteger(delay) || delay < 0) throw new ApiError(400, '"delay_ms" must be a non-negative integer');
        if (b.count !== undefined && b.count !== null && (!Number.isInteger(b.count) || b.count < 1)) {
          throw new ApiError(400, '"count" must be a positive integer');
        }
        if (b.path_prefix !== undefined && typeof b.path_prefix !== 'string') {
          throw new ApiError(400, '"path_prefix" must be a string');
        }
        const fault = {
          mode: b.mode,
          delay_ms: delay,
          remaining: b.count === undefined || b.count === null ? null : b.count,
          path_prefix: b.path_prefix === undefined ? '' : b.path_prefix,
        };
        if (b.add === true) this.faults.push(fault);
        else this.faults = [fault];
        return jsonResponse(200, { faults: this.faults });
      }
      case '/vaults': {
        if (method === 'GET') return jsonResponse(200, store.vaults.map((v) => store.vaultJson(v)));
        want('POST');
        const vault = store.addVault(json(), false);
        return jsonResponse(200, store.vaultJson(vault));
      }
      case '/items': {
        want('POST');
        const b = json();
        const vault = store.findVault(b.vault);
        const item = store.addItem(vault, b.item, { fromFixture: false, viaApi: false });
        return jsonResponse(200, store.fullItemJson(vault, item));
      }
      case '/recreate': {
        want('POST');
        const b = json();
        const vault = store.findVault(b.vault);
        const item = store.findItem(vault, b.item);
        const now = iso(Date.now());
        item.id = store.newId();
        item.version = 1;
        item.createdAt = now;
        item.updatedAt = now;
        store.touchVault(vault);
        return jsonResponse(200, store.fullItemJson(vault, item));
      }
      case '/field': {
        want('POST');
        const b = json();
        const vault = store.findVault(b.vault);
        const item = store.findItem(vault, b.item);
        if (typeof b.field !== 'string') throw new ApiError(400, '"field" must be a field label or id');
        if (typeof b.value !== 'string') throw new ApiError(400, '"value" must be a string');
        let candidates = item.fields;
        if (b.section !== undefined) {
          if (typeof b.section !== 'string') throw new ApiError(400, '"section" must be a section label or id');
          const section = item.sections.find((x) => x.id === b.section) ||
            item.sections.find((x) => typeof x.label === 'string' && lower(x.label) === lower(b.section));
          if (!section) throw new ApiError(404, `section ${b.section} not found`);
          candidates = item.fields.filter((f) => f.section && f.section.id === section.id);
        }
        const field = candidates.find((f) => f.id === b.field) || candidates.find((f) => f.label === b.field) ||
          candidates.find((f) => typeof f.label === 'string' && lower(f.label) === lower(b.field));
        if (!field) throw new ApiError(404, `field ${b.field} not found`);
        field.value = b.value;
        if (field.entropy !== undefined) field.entropy = estimateEntropy(b.value);
        item.version += 1;
        item.updatedAt = iso(Date.now());
        store.touchVault(vault);
        return jsonResponse(200, store.fullItemJson(vault, item));
      }
      case '/remove': {
        want('POST');
        const b = json();
        const vault = store.findVault(b.vault);
        const item = store.findItem(vault, b.item);
        store.deleteItem(vault, item);
        return jsonResponse(200, { removed: item.id });
      }
      case '/tokens': {
        want('POST');
        const b = json();
        if (typeof b.token !== 'string' || b.token === '') throw new ApiError(400, '"token" must be a non-empty string');
        if (b.remove === true) store.tokens.delete(b.token);
        else store.setToken(b.token, { vaults: b.vaults, write: b.write });
        return jsonResponse(200, { tokens: [...store.tokens.keys()] });
      }
      case '/state':
        want('GET');
        return jsonResponse(200, {
          vaults: store.vaults.map((v) => ({
            ...store.vaultJson(v),
            items_full: v.items.map((i) => store.fullItemJson(v, i)),
          })),
          tokens: Object.fromEntries(store.tokens),
          faults: this.faults,
        });
      default:
        throw new ApiError(404, `admin route ${rawPath} not found`);
    }
  }

  metrics() {
    const lines = [
      '# HELP connect_emulator_requests_total Connect API requests answered, by HTTP status.',
      '# TYPE connect_emulator_requests_total counter',
    ];
    for (const [status, count] of [...this.counts.entries()].sort((a, b) => a[0] - b[0])) {
      lines.push(`connect_emulator_requests_total{status="${status}"} ${count}`);
    }
    lines.push('# HELP connect_emulator_items Items held, by vault.');
    lines.push('# TYPE connect_emulator_items gauge');
    for (const v of this.store.vaults) {
      lines.push(`connect_emulator_items{vault="${v.id}"} ${v.items.length}`);
    }
    lines.push('# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.');
    lines.push('# TYPE process_start_time_seconds gauge');
    lines.push(`process_start_time_seconds ${Math.floor(this.started / 1000)}`);
    return lines.join('\n') + '\n';
  }
}

// ---------------------------------------------------------------------------
// Command line

function usage(message) {
  process.stderr.write(`emulator: ${message}\n` +
    'usage: node emulator.js --fixtures FILE [--host 127.0.0.1] [--port N] [--port-file PATH]\n' +
    '                        [--keep-alive-ms N] [--exit-with-stdin] [--quiet]\n' +
    '                        [--tls-cert PEM --tls-key PEM]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 0, portFile: null, fixtures: null, keepAliveMs: 30000, exitWithStdin: false, quiet: false,
    tlsCert: null, tlsKey: null };
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
      case '--fixtures': opts.fixtures = value(); break;
      case '--host': opts.host = value(); break;
      case '--port':
        opts.port = integer(value(), '--port');
        if (opts.port > 65535) usage('--port must be at most 65535');
        break;
      case '--port-file': opts.portFile = value(); break;
      case '--keep-alive-ms': opts.keepAliveMs = integer(value(), '--keep-alive-ms'); break;
      case '--exit-with-stdin': opts.exitWithStdin = true; break;
      case '--quiet': opts.quiet = true; break;
      case '--tls-cert': opts.tlsCert = value(); break;
      case '--tls-key': opts.tlsKey = value(); break;
      case '--help': case '-h': usage('help'); break;
      default: usage(`unknown argument "${a}"`);
    }
  }
  if (!opts.fixtures) usage('--fixtures FILE is required');
  if ((opts.tlsCert === null) !== (opts.tlsKey === null)) usage('--tls-cert and --tls-key go together');
  return opts;
}

function writeFileAtomic(path, text) {
  const tmp = `${path}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text, { mode: 0o600 });
  fs.renameSync(tmp, path);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  let store;
  try {
    store = new Store(JSON.parse(fs.readFileSync(opts.fixtures, 'utf8')));
  } catch (e) {
    process.stderr.write(`emulator: cannot load fixtures ${opts.fixtures}: ${e.message}\n`);
    process.exit(2);
  }
  let tls = null;
  if (opts.tlsCert) {
    try {
      tls = { cert: fs.readFileSync(opts.tlsCert), key: fs.readFileSync(opts.tlsKey) };
    } catch (e) {
      process.stderr.write(`emulator: cannot read the TLS certificate or key: ${e.message}\n`);
      process.exit(2);
    }
  }
  const emulator = new Emulator(store, { keepAliveMs: opts.keepAliveMs, quiet: opts.quiet, tls });
  let port;
  try {
    port = await emulator.listen(opts.port, opts.host);
  } catch (e) {
    process.stderr.write(`emulator: cannot listen on ${opts.host}:${opts.port}: ${e.code || e.message}\n`);
    process.exit(3);
  }
  let stopping = false;
  const stop = (why) => {
    if (stopping) return;
    stopping = true;
    if (!opts.quiet) process.stderr.write(`emulator: stopping (${why})\n`);
    setTimeout(() => process.exit(0), 2000).unref();
    emulator.close().then(() => process.exit(0));
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
  process.stdout.write(`listening on ${tls ? 'https' : 'http'}://${hostForUrl}:${port}\n`);
}

if (require.main === module) main();

module.exports = { Emulator, Store, parseQuery, parseFilter, totpCode, generateValue, applyPatch, CONNECT_VERSION };
