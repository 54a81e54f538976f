#!/usr/bin/env node
// Lab client: a steady stream of captured probe traffic until SIGTERM. Every INTERVAL ms it
// opens a TCP connection to and sends a UDP datagram to each target (lab hosts only), so a
// leak window of a few milliseconds still gets packets to count. On SIGTERM it prints one
// JSON object: attempts per kind and how many were answered (through whichever path).
//
// usage: node stream.mjs INTERVAL_MS PORT HOST [HOST...]
import net from "node:net";
import dgram from "node:dgram";

const [interval, port, ...hosts] = process.argv.slice(2);
const stats = { rounds: 0, tcp: 0, tcpAnswered: 0, udp: 0, udpAnswered: 0 };
const sockets = Object.fromEntries(["udp4", "udp6"].map((type) => {
  const socket = dgram.createSocket(type);
  socket.on("message", () => stats.udpAnswered++);
  socket.on("error", () => {});
  return [type, socket];
}));

function round() {
  stats.rounds++;
  for (const host of hosts) {
    stats.tcp++;
    const socket = net.connect({ host, port: Number(port) });
    socket.setTimeout(500, () => socket.destroy());
    socket.on("data", () => stats.tcpAnswered++);
    socket.on("error", () => {});
    stats.udp++;
    sockets[net.isIPv6(host) ? "udp6" : "udp4"].send("stream\n", Number(port), host, () => {});
  }
}

const timer = setInterval(round, Number(interval));
process.stdout.write("ready\n");
process.on("SIGTERM", () => {
  clearInterval(timer);
  process.stdout.write(`${JSON.stringify(stats)}\n`);
  process.exit(0);
});
