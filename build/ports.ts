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
