// What both Node peers share: their command line and how they listen and stop.
'use strict';

function arg(name, fallback) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : fallback;
}

// Listens with the harness's options; stop() runs on SIGTERM, SIGINT or after --max-seconds.
function serve(server, stop) {
  const port = Number(arg('port', '0'));
  server.listen({ port, host: arg('address', '127.0.0.1'), backlog: 1024 });
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  setTimeout(stop, Number(arg('max-seconds', '900')) * 1000).unref();
}

module.exports = { arg, serve };
