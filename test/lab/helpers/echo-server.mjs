#!/usr/bin/env node
// Lab echo server: answers every TCP connection and every UDP datagram with the
// source address it saw, so a client knows which path its flow took (a tunnel
// address means "through the tunnel", a LAN address means "direct").
//
// usage: node echo-server.mjs PORT [PORT...] [--bind=ADDRESS...]
// Listens on every address of its namespace, both families, TCP and UDP, or only on
// the --bind addresses. UDP answers are plain sendto() replies: bound to the wildcard
// address, the kernel picks their source (no IP_PKTINFO), as many UDP servers do.
// Prints "ready" on stdout once every socket is bound.
import net from "node:net";
import dgram from "node:dgram";

const args = process.argv.slice(2);
const binds = args.filter((a) => a.startsWith("--bind=")).map((a) => a.slice("--bind=".length));
const ports = args.filter((a) => !a.startsWith("--bind=")).map(Number);
if (ports.length === 0 || ports.some((p) => !Number.isInteger(p) || p <= 0 || p > 65535) || binds.some((b) => net.isIP(b) === 0)) {
  console.error("usage: echo-server.mjs PORT [PORT...] [--bind=ADDRESS...]");
  process.exit(2);
}
/** Where each socket listens: the wildcard of both families, or each --bind address. */
const places = binds.length
  ? binds.map((address) => ({ tcp: { host: address }, udp: { type: net.isIPv6(address) ? "udp6" : "udp4", address } }))
  : [{ tcp: { host: "::", ipv6Only: false }, udp: { type: "udp4", address: "0.0.0.0" } }, { udp: { type: "udp6", address: "::" } }];

const plain = (address) => address.replace(/^::ffff:/, "");
const waits = [];

for (const port of ports) {
  for (const place of places) {
    if (place.tcp) {
      const tcp = net.createServer((socket) => {
        socket.on("error", () => {});
        socket.end(`${plain(socket.remoteAddress ?? "?")}\n`);
      });
      waits.push(new Promise((resolve, reject) => tcp.listen({ port, ...place.tcp }, resolve).on("error", reject)));
    }
    const { type, address } = place.udp;
    const udp = dgram.createSocket({ type, ipv6Only: type === "udp6" });
    udp.on("message", (_msg, rinfo) => udp.send(`${plain(rinfo.address)}\n`, rinfo.port, rinfo.address));
    udp.on("error", (err) => console.error(`udp error: ${err.message}`));
    waits.push(new Promise((resolve, reject) => udp.bind(port, address, resolve).once("error", reject)));
  }
}

await Promise.all(waits);
process.stdout.write("ready\n");
process.on("SIGTERM", () => process.exit(0));
