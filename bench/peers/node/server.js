// Peer: a Node `ws` server; broadcast = client.send(buffer) on every open client, as in the
// ws README. /ws accepts any token (no auth) and sends one welcome frame; /control receives
// the alert text from the harness, sends it to every /ws client and replies "ok <n>".
// perMessageDeflate off.
'use strict';
const http = require('http');
const { WebSocketServer, WebSocket } = require('ws');
const { arg, serve } = require('./cli');

const welcome = JSON.stringify({
  type: 'connection.established',
  data: { message: 'Welcome to WebSocket real-time updates' },
  timestamp: '1970-01-01T00:00:00.000Z',
});
const clients = new Set();
const server = http.createServer((req, res) => { res.writeHead(404); res.end(); });
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 65536 });

server.on('upgrade', (req, socket, head) => {
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on('error', () => {});
    if (req.url.startsWith('/control')) {
      ws.on('message', (data) => {
        for (const client of clients) {
          if (client.readyState === WebSocket.OPEN) client.send(data, { binary: false });
        }
        ws.send('ok ' + clients.size);
      });
      return;
    }
    clients.add(ws);
    ws.isAlive = true;
    ws.on('pong', () => { ws.isAlive = true; });
    ws.on('close', () => clients.delete(ws));
    ws.send(welcome);
  });
});

setInterval(() => {
  for (const ws of clients) {
    if (!ws.isAlive) { ws.terminate(); continue; }
    ws.isAlive = false;
    ws.ping();
  }
}, Number(arg('ping-interval', '300')) * 1000).unref();

serve(server, () => { server.close(); for (const ws of clients) ws.terminate(); process.exit(0); });
