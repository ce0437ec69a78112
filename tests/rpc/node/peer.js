// The real zerorpc for node, as a peer for the C++ tests.
//   node peer.js server ENDPOINT              serve add, echo, boom, count (a stream) and slow until killed
//   node peer.js client ENDPOINT METHOD JSON  call METHOD with the JSON array of arguments; print the result as
//                                             JSON, or "ERR <name>: <message>" and exit 1
//   node peer.js stream ENDPOINT METHOD JSON [N]
//                                             iterate a stream: one JSON line per item, then "END" (or the ERR
//                                             line and exit 1); with N, close the client after N items instead
//                                             and print "STOPPED"
"use strict";
const zerorpc = require("zerorpc");

const [mode, endpoint, method, argsJson, stopAfter] = process.argv.slice(2);

if (mode === "server") {
  // zerorpc reads parameter names from each function's source, so these must be plain function expressions.
  const server = new zerorpc.Server({
    add: function (a, b, reply) { reply(null, a + b); },
    echo: function (x, reply) { reply(null, x); },
    boom: function (message, reply) { reply(new Error(message)); },
    count: function (n, reply) {
      for (let i = 0; i < n; i++) reply(null, i, true);
      reply();
    },
    slow: function (seconds, reply) { setTimeout(function () { reply(null, seconds); }, seconds * 1000); },
  });
  server.bind(endpoint);
  process.on("SIGTERM", () => {
    server.close();
    process.exit(0);
  });
} else if (mode === "client") {
  const client = new zerorpc.Client({ timeout: 20 });
  client.connect(endpoint);
  client.invoke(method, ...JSON.parse(argsJson || "[]"), (error, result) => {
    if (error) {
      console.log(`ERR ${error.name}: ${error.message}`);
      client.close();
      process.exit(1);
    }
    console.log(JSON.stringify(result));
    client.close();
    process.exit(0);
  });
} else if (mode === "stream") {
  const client = new zerorpc.Client({ timeout: 20, heartbeatInterval: 500 });
  client.connect(endpoint);
  let seen = 0;
  let finished = false;
  client.invoke(method, ...JSON.parse(argsJson || "[]"), (error, item, more) => {
    if (finished) return;
    if (error) {
      finished = true;
      console.log(`ERR ${error.name}: ${error.message}`);
      client.close();
      process.exit(1);
    }
    if (!more) {
      finished = true;
      console.log("END");
      client.close();
      process.exit(0);
    }
    console.log(JSON.stringify(item));
    if (stopAfter !== undefined && ++seen === Number(stopAfter)) {
      finished = true;
      console.log("STOPPED");
      client.close();
      process.exit(0);
    }
  });
} else {
  console.error("usage: peer.js server ENDPOINT | client ENDPOINT METHOD JSON | stream ENDPOINT METHOD JSON [N]");
  process.exit(2);
}
