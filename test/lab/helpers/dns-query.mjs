#!/usr/bin/env node
// Lab DNS client: sends A queries straight to a resolver, over UDP or TCP, as an
// application reading a plain /etc/resolv.conf would (no systemd-resolved in
// between), and prints one JSON array, one result per query, in order.
//
// usage: node dns-query.mjs '[{"server":"10.253.0.1","name":"www.example.test","proto":"udp","timeoutMs":2000}, ...]'
// result: {ok:true, address:"198.18.0.53", ms} (the first A record), or
// {ok:false, error:"EHOSTUNREACH" | "timeout" | ..., ms}
import net from "node:net";
import dgram from "node:dgram";

const queries = JSON.parse(process.argv[2] ?? "[]");

function message(name) {
  const labels = name.split(".").filter(Boolean);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(Math.floor(Math.random() * 0x10000), 0);
  header.writeUInt16BE(0x0100, 2); // RD
  header.writeUInt16BE(1, 4);
  const question = Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, "latin1")])), Buffer.from([0, 0, 1, 0, 1])]);
  return Buffer.concat([header, question]);
}

/** The offset after the (possibly compressed) name at OFFSET. */
function skipName(response, offset) {
  for (;;) {
    const length = response[offset];
    if (length === 0) return offset + 1;
    if ((length & 0xc0) === 0xc0) return offset + 2;
    offset += length + 1;
  }
}

/** The first A record of a response (answers follow the one question). */
function firstA(response) {
  let offset = skipName(response, 12) + 4;
  for (let i = 0; i < response.readUInt16BE(6); i++) {
    offset = skipName(response, offset);
    const type = response.readUInt16BE(offset);
    const length = response.readUInt16BE(offset + 8);
    if (type === 1 && length === 4) return [...response.subarray(offset + 10, offset + 14)].join(".");
    offset += 10 + length;
  }
  return undefined;
}

function query({ server, name, proto, timeoutMs = 2000 }) {
  return new Promise((resolve) => {
    const started = performance.now();
    let finish;
    const timer = setTimeout(() => finish({ ok: false, error: "timeout" }), timeoutMs);
    const request = message(name);
    const answered = (response) => {
      const address = firstA(response);
      finish(address ? { ok: true, address } : { ok: false, error: "no A record" });
    };
    if (proto === "tcp") {
      const socket = net.connect({ host: server, port: 53 });
      finish = (result) => {
        clearTimeout(timer);
        socket.destroy();
        resolve({ ...result, ms: Math.round(performance.now() - started) });
      };
      let pending = Buffer.alloc(0);
      socket.on("connect", () => {
        const length = Buffer.alloc(2);
        length.writeUInt16BE(request.length);
        socket.write(Buffer.concat([length, request]));
      });
      socket.on("data", (chunk) => {
        pending = Buffer.concat([pending, chunk]);
        if (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) answered(pending.subarray(2, 2 + pending.readUInt16BE(0)));
      });
      socket.on("error", (err) => finish({ ok: false, error: err.code ?? err.message }));
    } else {
      const socket = dgram.createSocket(net.isIPv6(server) ? "udp6" : "udp4");
      finish = (result) => {
        clearTimeout(timer);
        socket.close();
        resolve({ ...result, ms: Math.round(performance.now() - started) });
      };
      socket.on("message", answered);
      socket.on("error", (err) => finish({ ok: false, error: err.code ?? err.message }));
      socket.send(request, 53, server, (err) => err && finish({ ok: false, error: err.code ?? err.message }));
    }
  });
}

const results = [];
for (const q of queries) results.push(await query(q));
process.stdout.write(JSON.stringify(results) + "\n");
