/**
 * A Piper-compatible HTTP server (piper1-gpl's `POST /synthesize`, or an older server's `POST /`)
 * that really synthesises (espeak-ng). Records requests.
 */
import { execFileSync } from "node:child_process";
import { createServer } from "node:http";
import type { Teardown } from "../../build/teardown.js";

export interface PiperDouble {
  url: string;
  requests: Array<{ path: string; body: Record<string, unknown> }>;
}

export async function startPiperDouble(t: Teardown, opts: { legacy?: boolean } = {}): Promise<PiperDouble> {
  const path = opts.legacy ? "/" : "/synthesize";
  const requests: PiperDouble["requests"] = [];
  const server = createServer((req, res) => {
    let text = "";
    req.on("data", (c: Buffer) => (text += c.toString()));
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== path) {
        res.writeHead(404).end("not found");
        return;
      }
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(text) as Record<string, unknown>;
      } catch {
        res.writeHead(400).end("bad JSON");
        return;
      }
      requests.push({ path: req.url, body });
      if (typeof body.text !== "string" || !body.text) {
        res.writeHead(400).end("text is required");
        return;
      }
      // espeak-ng writes 22050 Hz, Piper's usual voice rate.
      res.writeHead(200, { "Content-Type": "audio/wav" }).end(execFileSync("espeak-ng", ["-v", "en-us", "--stdout", body.text]));
    });
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  t.teardown(() => new Promise<void>((done) => server.close(() => done())));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, requests };
}
