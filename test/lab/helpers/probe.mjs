#!/usr/bin/env node
// Lab client: runs a batch of TCP/UDP probes from the namespace it is started in
// and prints one JSON array, one result per probe, in order.
//
// usage: node probe.mjs '[{"proto":"tcp","host":"203.0.113.80","port":7777,"timeoutMs":2000}, ...]'
// (optionally "localAddress": the address to bind the client socket to)
// result: {ok:true, saw:"10.253.0.2", ms} when the server answered (saw = the source
// address the server saw; for UDP also from = the source address of the answer), or
// {ok:false, error:"EHOSTUNREACH", ms} (error "timeout" when nothing came back in time).
import net from "node:net";
import dgram from "node:dgram";
import { isIPv6 } from "node:net";

const probes = JSON.parse(process.argv[2] ?? "[]");

function tcp({ host, port, timeoutMs = 2000, localAddress }) {
  return new Promise((resolve) => {
    const started = performance.now();
    const done = (result) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...result, ms: Math.round(performance.now() - started) });
    };
    let data = "";
    const socket = net.connect({ host, port, ...(localAddress ? { localAddress } : {}) });
    const timer = setTimeout(() => done({ ok: false, error: "timeout" }), timeoutMs);
    socket.on("data", (d) => (data += d));
    socket.on("end", () => done({ ok: true, saw: data.trim() }));
    socket.on("error", (err) => done({ ok: false, error: err.code ?? err.message }));
  });
}

function udp({ host, port, timeoutMs = 2000, localAddress }) {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = dgram.createSocket(isIPv6(host) ? "udp6" : "udp4");
    const done = (result) => {
      clearTimeout(timer);
      socket.close();
      resolve({ ...result, ms: Math.round(performance.now() - started) });
    };
    const timer = setTimeout(() => done({ ok: false, error: "timeout" }), timeoutMs);
    socket.on("message", (msg, rinfo) => done({ ok: true, saw: msg.toString().trim(), from: rinfo.address }));
    socket.on("error", (err) => done({ ok: false, error: err.code ?? err.message }));
    const send = () => socket.send("probe\n", port, host, (err) => err && done({ ok: false, error: err.code ?? err.message }));
    if (localAddress) socket.bind({ address: localAddress }, send);
    else send();
  });
}

const results = await Promise.all(probes.map((p) => (p.proto === "udp" ? udp(p) : tcp(p))));
process.stdout.write(JSON.stringify(results) + "\n");
