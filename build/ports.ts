/**
 * Free port discovery on loopback, so parallel runs never collide on fixed ports.
 *
 * Ports are drawn below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768–60999
 * by default): the kernel hands those out by itself, to every outgoing connection and every bind
 * to port 0, so a port found free there could be taken again before its daemon binds it (a
 * test's HTTP request, another test's port lookup). Single ports come from 20000–29999 (below
 * the ephemeral range, and below the default media ports of rtpengine and the agent,
 * 30000–31999), blocks for media from 10000–19999, so the two never overlap either.
 */
import { createSocket } from "node:dgram";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";

const SINGLE_PORTS = { from: 20000, to: 30000 };
const RANGES = { from: 10000, to: 20000 };

/** The first port of the kernel's ephemeral range. */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(low) ? low : 32768;
  } catch {
    return 32768;
  }
}

/**
 * Single ports this process has handed out, oldest first. A test picks several ports before any
 * of its daemons binds one, and a port that is still free can be picked twice: Kamailio's TLS
 * port, picked first, was bound by another part of the same test set-up before Kamailio
 * started ("Address already in use", one CI run in many). So a port is handed out once; the
 * oldest are forgotten past REMEMBERED_SINGLE (by then their tests are over).
 */
const handedOutPorts = new Set<number>();
const REMEMBERED_SINGLE = 2000;

/** A port that is free for both UDP and TCP on host right now, and not handed out by this process before. */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  const to = Math.min(SINGLE_PORTS.to, ephemeralLow());
  for (let attempt = 0; attempt < 100; attempt++) {
    // A machine whose ephemeral range starts that low: whatever port the kernel gives.
    const port = to - SINGLE_PORTS.from >= 1000 ? SINGLE_PORTS.from + Math.floor(Math.random() * (to - SINGLE_PORTS.from)) : await kernelPort(host);
    if (handedOutPorts.has(port)) continue;
    if (!(await tcpFree(host, port)) || !(await udpFree(host, port))) continue;
    // Checked again: another call may have handed it out while the probes ran.
    if (handedOutPorts.has(port)) continue;
    handedOutPorts.add(port);
    if (handedOutPorts.size > REMEMBERED_SINGLE) handedOutPorts.delete(handedOutPorts.values().next().value!);
    return port;
  }
  throw new Error(`no free UDP+TCP port on ${host}`);
}

function kernelPort(host: string): Promise<number> {
  return new Promise((done, fail) => {
    const srv = createServer().listen(0, host, () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => done(port));
    });
    srv.on("error", fail);
  });
}

function tcpFree(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const srv = createServer();
    srv.once("error", () => done(false));
    srv.listen(port, host, () => srv.close(() => done(true)));
  });
}

function udpFree(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const sock = createSocket("udp4");
    sock.once("error", () => done(false));
    sock.bind(port, host, () => sock.close(() => done(true)));
  });
}

/**
 * Blocks this process has handed out, newest last. A daemon binds its media ports call by call,
 * long after its block was chosen, so probing a block's ports says nothing about a block handed
 * out a moment before for another daemon: rtpengine's and the agent's, chosen one after the
 * other for one stack, overlapped about one time in eight, and the soak's calls then failed
 * with the agent's "no free RTP port pair" (503, relayed by Kamailio as 500) as rtpengine's
 * sessions took the shared ports. So a new block never overlaps one of these. The oldest are
 * forgotten once they add up to half of 10000–19999: by then their runs are over.
 */
const handedOut: Array<{ min: number; max: number }> = [];
const REMEMBERED_PORTS = (RANGES.to - RANGES.from) / 2;

/**
 * A block of `count` ports (even start) for rtpengine's or the agent's media, chosen at random
 * in 10000–19999, apart from every block this process handed out recently, and checked free at
 * its edges and middle. Another process's daemons take their ports only when calls arrive, so
 * against those this lowers (not removes) the chance of a clash.
 */
export async function freePortRange(count: number, host = "127.0.0.1"): Promise<{ min: number; max: number }> {
  for (let attempt = 0; attempt < 200; attempt++) {
    // Remembered blocks can leave no gap wide enough: the oldest is the likeliest to be over.
    if (attempt % 50 === 49 && handedOut.length > 1) handedOut.shift();
    const min = RANGES.from + 2 * Math.floor(Math.random() * ((RANGES.to - RANGES.from - count) / 2));
    const max = min + count - 1;
    if (overlapsHandedOut(min, max)) continue;
    const probes = [min, min + 1, Math.floor((min + max) / 2), max];
    if (!(await Promise.all(probes.map((p) => udpFree(host, p)))).every(Boolean)) continue;
    // Checked again: another call of this function may have handed out a block while the probes ran.
    if (overlapsHandedOut(min, max)) continue;
    remember({ min, max });
    return { min, max };
  }
  throw new Error(`no free range of ${count} UDP ports on ${host}`);
}

function overlapsHandedOut(min: number, max: number): boolean {
  return handedOut.some((r) => min <= r.max && r.min <= max);
}

function remember(block: { min: number; max: number }): void {
  handedOut.push(block);
  let total = handedOut.reduce((sum, r) => sum + r.max - r.min + 1, 0);
  while (total > REMEMBERED_PORTS && handedOut.length > 1) {
    const oldest = handedOut.shift()!;
    total -= oldest.max - oldest.min + 1;
  }
}
