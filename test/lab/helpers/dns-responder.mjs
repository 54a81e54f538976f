#!/usr/bin/env node
// Lab DNS responder: answers every A query with one fixed IPv4 address and every
// AAAA query with one fixed IPv6 address (other types: an empty answer), over UDP
// and TCP on port 53, so a client knows which responder answered it. Every query
// is printed on stdout as one line, which is how the test counts them:
//
//   query udp A www.example.test from 10.253.0.2
//
// usage: node dns-responder.mjs IPV4 IPV6
// Listens on every address of its namespace, both families. Prints "ready" once
// every socket is bound. No caching, no recursion: a lab namespace has nowhere to recurse to.
import net from "node:net";
import dgram from "node:dgram";

const [answer4, answer6] = process.argv.slice(2);
if (!answer4 || net.isIPv4(answer4) === false || !answer6 || net.isIPv6(answer6) === false) {
  console.error("usage: dns-responder.mjs IPV4 IPV6");
  process.exit(2);
}

const PORT = 53;
const TYPE = { A: 1, AAAA: 28, OPT: 41 };
const TYPE_NAME = { 1: "A", 28: "AAAA" };

/** The question's name, type and the offset after it; undefined for a message we cannot read. */
function question(message) {
  if (message.length < 12 || message.readUInt16BE(4) !== 1) return undefined;
  const labels = [];
  let offset = 12;
  for (;;) {
    const length = message[offset];
    if (length === undefined || length > 63) return undefined;
    offset += 1;
    if (length === 0) break;
    labels.push(message.subarray(offset, offset + length).toString("latin1"));
    offset += length;
  }
  if (offset + 4 > message.length) return undefined;
  return { name: labels.join("."), type: message.readUInt16BE(offset), end: offset + 4 };
}

function ipv4Bytes(text) {
  return Buffer.from(text.split(".").map(Number));
}

function ipv6Bytes(text) {
  const [head, tail] = text.split("::");
  const groups = (part) => (part ? part.split(":") : []);
  const missing = 8 - groups(head).length - groups(tail ?? "").length;
  const all = [...groups(head), ...Array(tail === undefined ? 0 : missing).fill("0"), ...groups(tail ?? "")];
  const bytes = Buffer.alloc(16);
  all.forEach((group, i) => bytes.writeUInt16BE(parseInt(group, 16), i * 2));
  return bytes;
}

const DATA = { [TYPE.A]: ipv4Bytes(answer4), [TYPE.AAAA]: ipv6Bytes(answer6) };

/** The response to QUERY: the question echoed, one answer for A/AAAA, an OPT record when the query had one (EDNS0). */
function respond(query, q) {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(query.readUInt16BE(0), 0);
  // QR, the query's opcode and RD; AA and RA; rcode 0.
  const flags = 0x8000 | (query.readUInt16BE(2) & 0x7900) | 0x0400 | 0x0080;
  header.writeUInt16BE(flags, 2);
  const data = DATA[q.type];
  const hasOpt = query.length > q.end && query.readUInt16BE(10) > 0;
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(data ? 1 : 0, 6);
  header.writeUInt16BE(0, 8);
  header.writeUInt16BE(hasOpt ? 1 : 0, 10);
  const parts = [header, query.subarray(12, q.end)];
  if (data) {
    const rr = Buffer.alloc(12);
    rr.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
    rr.writeUInt16BE(q.type, 2);
    rr.writeUInt16BE(1, 4); // class IN
    rr.writeUInt32BE(1, 6); // TTL 1 s: nothing worth caching
    rr.writeUInt16BE(data.length, 10);
    parts.push(rr, data);
  }
  if (hasOpt) {
    const opt = Buffer.alloc(11);
    opt.writeUInt16BE(TYPE.OPT, 1);
    opt.writeUInt16BE(1232, 3); // our UDP payload size
    parts.push(opt);
  }
  return Buffer.concat(parts);
}

const plain = (address) => address.replace(/^::ffff:/, "");

function handle(message, proto, from) {
  const q = question(message);
  if (!q) return undefined;
  console.log(`query ${proto} ${TYPE_NAME[q.type] ?? q.type} ${q.name} from ${plain(from)}`);
  return respond(message, q);
}

const waits = [];
const tcp = net.createServer((socket) => {
  socket.on("error", () => {});
  let pending = Buffer.alloc(0);
  socket.on("data", (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
      const message = pending.subarray(2, 2 + pending.readUInt16BE(0));
      pending = pending.subarray(2 + message.length);
      const response = handle(message, "tcp", socket.remoteAddress ?? "?");
      if (response) {
        const length = Buffer.alloc(2);
        length.writeUInt16BE(response.length);
        socket.write(Buffer.concat([length, response]));
      }
    }
  });
});
waits.push(new Promise((resolve, reject) => tcp.listen({ port: PORT, host: "::", ipv6Only: false }, resolve).on("error", reject)));
for (const type of ["udp4", "udp6"]) {
  const udp = dgram.createSocket({ type, ipv6Only: type === "udp6" });
  udp.on("message", (message, rinfo) => {
    const response = handle(message, "udp", rinfo.address);
    if (response) udp.send(response, rinfo.port, rinfo.address);
  });
  udp.on("error", (err) => console.error(`udp error: ${err.message}`));
  waits.push(new Promise((resolve) => udp.bind({ port: PORT, address: type === "udp4" ? "0.0.0.0" : "::" }, resolve)));
}
await Promise.all(waits);
console.log("ready");
