// Peer: Node socket.io serving the rooms workload. A "join" event does socket.join(room) and
// answers "joined"; a "publish" event {room, ...} goes out as "msg" with io.to(room).emit(),
// the sender included. WebSocket transport only, perMessageDeflate off, the same ping
// interval as the product under test. Exits by itself after --max-seconds.
'use strict';
const http = require('http');
const { Server } = require('socket.io');

function arg(name, fallback) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : fallback;
}

const port = Number(arg('port', '0'));
const address = arg('address', '127.0.0.1');
const pingInterval = Number(arg('ping-interval', '300')) * 1000;
const pingTimeout = Number(arg('ping-timeout', '60')) * 1000;
const maxSeconds = Number(arg('max-seconds', '900'));

const server = http.createServer((req, res) => { res.writeHead(404); res.end(); });
const io = new Server(server, {
  transports: ['websocket'], perMessageDeflate: false, httpCompression: false,
  serveClient: false, pingInterval, pingTimeout, maxHttpBufferSize: 65536,
});

io.on('connection', (socket) => {
  socket.on('join', (room) => {
    socket.join(String(room));
    socket.emit('joined', room);
  });
  socket.on('publish', (data) => {
    if (data && data.room !== undefined) io.to(String(data.room)).emit('msg', data);
  });
});

server.listen({ port, host: address, backlog: 1024 });
const stop = () => { io.close(); server.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
setTimeout(stop, maxSeconds * 1000).unref();
