#!/usr/bin/env node
// Lab echo server: answers every TCP connection and every UDP datagram with the
// source address it saw, so a client knows which path its flow took (a tunnel
// address means "through the tunnel", a LAN address means "direct").
//
// usage: node echo-server.mjs PORT [PORT...]
// Listens on every address of its namespace, both families, TCP and UDP.
// Prints "ready" on stdout once every socket is bound.
import net from "node:net";
import dgram from "node:dgram";

const ports = process.argv.slice(2).map(Number);
if (ports.length === 0 || ports.some((p) => !Number.isInteger(p) || p <= 0 || p > 65535)) {
  console.error("usage: echo-server.mjs PORT [PORT...]");
  process.exit(2);
}

const plain = (address) => address.replace(/^::ffff:/, "");
const waits = [];

for (const port of ports) {
  const tcp = net.createServer((socket) => {
    socket.on("error", () => {});
    socket.end(`${plain(socket.remoteAddress ?? "?")}\n`);
  });
  waits.push(new Promise((resolve, reject) => tcp.listen({ port, host: "::", ipv6Only: false }, resolve).on("error", reject)));
  for (const type of ["udp4", "udp6"]) {
    const udp = dgram.createSocket({ type, ipv6Only: type === "udp6" });
    udp.on("message", (_msg, rinfo) => udp.send(`${plain(rinfo.address)}\n`, rinfo.port, rinfo.address));
    udp.on("error", (err) => console.error(`udp error: ${err.message}`));
    waits.push(new Promise((resolve, reject) => udp.bind(port, type === "udp4" ? "0.0.0.0" : "::", resolve).once("error", reject)));
  }
}

await Promise.all(waits);
process.stdout.write("ready\n");
process.on("SIGTERM", () => process.exit(0));
