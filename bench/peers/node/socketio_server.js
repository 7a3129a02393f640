// Peer: Node socket.io serving the rooms workload. A "join" event does socket.join(room) and
// answers "joined"; a "publish" event {room, ...} goes out as "msg" with io.to(room).emit(),
// the sender included. WebSocket transport only, perMessageDeflate off.
'use strict';
const http = require('http');
const { Server } = require('socket.io');
const { arg, serve } = require('./cli');

const server = http.createServer((req, res) => { res.writeHead(404); res.end(); });
const io = new Server(server, {
  transports: ['websocket'], perMessageDeflate: false, httpCompression: false,
  serveClient: false, pingInterval: Number(arg('ping-interval', '300')) * 1000,
  pingTimeout: Number(arg('ping-timeout', '60')) * 1000, maxHttpBufferSize: 65536,
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

serve(server, () => { io.close(); server.close(); process.exit(0); });
