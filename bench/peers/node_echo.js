// An echo server on Node.js: net.Server, socket.pipe(socket), which stops
// reading while the write side is over its high-water mark and, with
// allowHalfOpen, ends the socket only after the echo is flushed.
//
// usage: node node_echo.js [PORT]
'use strict';
const net = require('net');

const server = net.createServer({ allowHalfOpen: true }, (socket) => {
  socket.setNoDelay(true);
  socket.on('error', () => socket.destroy());
  socket.pipe(socket);
});
server.listen(Number(process.argv[2] || 0), '127.0.0.1', 511, () => {
  console.log(`listening on 127.0.0.1:${server.address().port}`);
});
