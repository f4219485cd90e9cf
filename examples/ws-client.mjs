// A trimix app in JavaScript: talks to `trimix client run` over its WebSocket API
// (docs/CLIENT_API.md). Node 22+ has WebSocket built in; on Node 20 and 21 run it with
// `node --experimental-websocket`, or install the `ws` package (`npm install ws`), which it
// uses when there is no built-in WebSocket.
//
//   node examples/ws-client.mjs "ws://127.0.0.1:8765/?token=$TOKEN" ADDRESS "hello"   send, wait for "sent"
//   node examples/ws-client.mjs "ws://127.0.0.1:8765/?token=$TOKEN" --receive 1        print 1 message
//
// TOKEN is the daemon's token, from the token file it names when it starts
// (TOKEN=$(cat client-state/ws.token)); without it the daemon refuses the connection (401).
//
// It prints one line per event it gets and exits 0 when done, 1 on an error event. With
// --receive, a message is acknowledged once printed, and counts when the daemon confirms it.

const [url, target, text] = process.argv.slice(2);
if (!url || !target) {
  console.error("usage: ws-client.mjs URL (ADDRESS TEXT | --receive N)");
  process.exit(2);
}
let WebSocketClass = globalThis.WebSocket;
if (WebSocketClass === undefined) {
  try {
    WebSocketClass = (await import("ws")).WebSocket;
  } catch {
    console.error("no WebSocket: use Node 22+, node --experimental-websocket, or npm install ws");
    process.exit(2);
  }
}

const socket = new WebSocketClass(url);
const toBase64 = (s) => Buffer.from(s, "utf-8").toString("base64");
const fromBase64 = (b) => Buffer.from(b, "base64").toString("utf-8");
let toReceive = target === "--receive" ? Number(text ?? 1) : 0;

socket.addEventListener("open", () => {
  socket.send(JSON.stringify({ type: "self_address", id: "me" }));
  if (target !== "--receive") {
    socket.send(JSON.stringify({ type: "send", id: "msg-1", to: target, data: toBase64(text ?? "") }));
  }
});

socket.addEventListener("message", (event) => {
  const message = JSON.parse(event.data);
  switch (message.type) {
    case "self_address":
      console.log(`address ${message.address}`);
      break;
    case "sent":
      console.log(`sent ${message.id}`);
      if (toReceive === 0) socket.close();
      break;
    case "received":
      console.log(`received ${message.kind} from ${message.sender ?? "anonymous"}: ${fromBase64(message.data)}`);
      if (target === "--receive") {
        // Shown (an app would store it first): the daemon may forget it now. Until then it
        // hands the message out again, with the same message_id, each time an app connects.
        socket.send(JSON.stringify({ type: "ack", id: "ack", message_id: message.message_id }));
      }
      break;
    case "acked":
      toReceive -= 1;
      if (toReceive <= 0) socket.close();
      break;
    case "error":
      console.log(`error ${message.code}: ${message.message}`);
      socket.close();
      process.exitCode = 1;
      break;
  }
});

socket.addEventListener("error", () => {
  console.error("could not talk to the daemon (is it running, and is its token in the URL?)");
  process.exitCode = 1;
});
