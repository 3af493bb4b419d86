/** Free port discovery on loopback, so parallel runs never collide on fixed ports. */
import { createSocket } from "node:dgram";
import { createServer } from "node:net";

/** A port that is free for both UDP and TCP on host right now. */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise<number>((done, fail) => {
      const srv = createServer().listen(0, host, () => {
        const { port } = srv.address() as { port: number };
        srv.close(() => done(port));
      });
      srv.on("error", fail);
    });
    if (await udpFree(host, port)) return port;
  }
  throw new Error(`no free UDP+TCP port on ${host}`);
}

function udpFree(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const sock = createSocket("udp4");
    sock.once("error", () => done(false));
    sock.bind(port, host, () => sock.close(() => done(true)));
  });
}

/**
 * A block of `count` ports (even start) for rtpengine's media, chosen at random in the
 * ephemeral-free range 20000–59999 and checked free at its edges and middle. rtpengine takes
 * ports from it only when calls arrive, so this lowers (not removes) the chance of a clash.
 */
export async function freePortRange(count: number, host = "127.0.0.1"): Promise<{ min: number; max: number }> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const min = 20000 + 2 * Math.floor(Math.random() * ((40000 - count) / 2));
    const max = min + count - 1;
    const probes = [min, min + 1, Math.floor((min + max) / 2), max];
    if ((await Promise.all(probes.map((p) => udpFree(host, p)))).every(Boolean)) return { min, max };
  }
  throw new Error(`no free range of ${count} UDP ports on ${host}`);
}
