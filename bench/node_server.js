// What the seed's JavaScript design would do for a cached retrieval: Node's
// http server on a Unix socket, the secret looked up in a Map by its
// reference and returned as the body (200 bytes). No identity, no policy,
// no audit: the cost of the runtime and its HTTP stack alone.
//
//   node bench/node_server.js SOCKET
'use strict';
const http = require('http');
const fs = require('fs');

const socket = process.argv[2];
if (!socket) {
  process.stderr.write('usage: node node_server.js SOCKET\n');
  process.exit(2);
}
const secrets = new Map([['op://ChittyOS Integrations/OpenAI API/api_key', 'x'.repeat(200)]]);
try { fs.unlinkSync(socket); } catch (_) { /* not there */ }
const server = http.createServer((req, res) => {
  const q = req.url.indexOf('?ref=');
  const ref = q >= 0 ? decodeURIComponent(req.url.slice(q + 5)) : '';
  const value = secrets.get(ref);
  if (value === undefined) {
    res.writeHead(404, { 'Content-Type': 'application/json' });
    res.end('{"success":false}');
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': value.length });
  res.end(value);
});
server.keepAliveTimeout = 60000;
server.listen(socket);
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
