/**
 * A Piper-compatible HTTP server (piper1-gpl's `POST /synthesize`, or an older server's `POST /`)
 * that really synthesises (espeak-ng). Records requests.
 */
import { execFile } from "node:child_process";
import { createServer } from "node:http";
import { promisify } from "node:util";
import { untilDue, type EngineDelay } from "./engine-delay.js";
import type { Teardown } from "../build/teardown.js";

export interface PiperDouble {
  url: string;
  requests: Array<{ path: string; body: Record<string, unknown> }>;
}

const execFileP = promisify(execFile);

export interface PiperDoubleOptions {
  legacy?: boolean;
  /** When the WAV leaves after the request came in (default: once synthesised). */
  delayMs?: EngineDelay;
}

export async function startPiperDouble(t: Teardown, opts: PiperDoubleOptions = {}): Promise<PiperDouble> {
  const path = opts.legacy ? "/" : "/synthesize";
  const requests: PiperDouble["requests"] = [];
  const server = createServer((req, res) => {
    const arrivedAt = performance.now();
    let text = "";
    req.on("data", (c: Buffer) => (text += c.toString()));
    req.on("end", async () => {
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
      // espeak-ng writes 22050 Hz, Piper's usual voice rate. Not synchronous: requests of calls in parallel overlap.
      let wav: Buffer;
      try {
        wav = (await execFileP("espeak-ng", ["-v", "en-us", "--stdout", body.text], { encoding: "buffer", maxBuffer: 64 << 20 })).stdout;
      } catch (err) {
        res.writeHead(500).end(`espeak-ng failed: ${(err as Error).message}`);
        return;
      }
      await untilDue(arrivedAt, opts.delayMs);
      res.writeHead(200, { "Content-Type": "audio/wav" }).end(wav);
    });
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  t.teardown(() => new Promise<void>((done) => server.close(() => done())));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, requests };
}
