// Preloaded (node --require) into mcp-server-everything, which calls app.listen(PORT) with no
// host and so would listen on every interface. The peer test only ever talks to 127.0.0.1, so
// bind there: a listen(port[, callback]) call gets the host 127.0.0.1 added.
'use strict';
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const port = args[0];
  const isPort = typeof port === 'number' || (typeof port === 'string' && /^\d+$/.test(port));
  if (isPort && (args.length === 1 || typeof args[1] === 'function')) {
    args.splice(1, 0, '127.0.0.1');
  }
  return listen.apply(this, args);
};
