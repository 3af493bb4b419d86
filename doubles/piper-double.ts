/**
 * A Piper HTTP server that really synthesises (espeak-ng), in the flavour of one of the real ones:
 *   - "piper1-gpl" (default): `POST /synthesize` with JSON {text, voice, …}; `GET /voices` lists
 *     the voices it has; an unknown voice is replaced by its default one (a warning in its log),
 *     as piper1-gpl's http_server does;
 *   - "piper1-gpl-root": an older piper1-gpl: the same JSON on `POST /`;
 *   - "rhasspy": rhasspy/piper's http_server: `POST /` takes the raw body as the text to speak
 *     (JSON would be read aloud, with 200), `GET /?text=` likewise; one voice, no /voices.
 * Records requests.
 */
import { execFile } from "node:child_process";
import { createServer } from "node:http";
import { promisify } from "node:util";
import { untilDue, type EngineDelay } from "./engine-delay.js";
import type { Teardown } from "../build/teardown.js";

export type PiperFlavour = "piper1-gpl" | "piper1-gpl-root" | "rhasspy";

export interface PiperDouble {
  url: string;
  /** JSON requests as parsed; raw-text ones as { text }. */
  requests: Array<{ path: string; body: Record<string, unknown> }>;
  /** Voices asked for that the server does not have (it spoke with its default voice). */
  unknownVoices: string[];
}

const execFileP = promisify(execFile);

export interface PiperDoubleOptions {
  flavour?: PiperFlavour;
  /** The voices the server has (piper1-gpl flavours); the first is its default. */
  voices?: string[];
  /** When the WAV leaves after the request came in (default: once synthesised). */
  delayMs?: EngineDelay;
  /** Texts it fails on, as a crashing voice model does: 500 "synthesis failed". */
  failFor?: (text: string) => boolean;
}

export const DEFAULT_PIPER_VOICES = ["en_US-lessac-medium", "de_DE-thorsten-medium"];

export async function startPiperDouble(t: Teardown, opts: PiperDoubleOptions = {}): Promise<PiperDouble> {
  const flavour = opts.flavour ?? "piper1-gpl";
  const voices = opts.voices ?? DEFAULT_PIPER_VOICES;
  const synthesizePath = flavour === "piper1-gpl" ? "/synthesize" : "/";
  const requests: PiperDouble["requests"] = [];
  const unknownVoices: string[] = [];
  const server = createServer((req, res) => {
    const arrivedAt = performance.now();
    let raw = "";
    req.on("data", (c: Buffer) => (raw += c.toString()));
    req.on("end", async () => {
      const path = (req.url ?? "/").split("?")[0];
      if (req.method === "GET" && path === "/voices" && flavour !== "rhasspy") {
        const listed = Object.fromEntries(voices.map((v) => [v, { audio: { sample_rate: 22050 }, espeak: { voice: v.slice(0, 2) } }]));
        return res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(listed));
      }
      let text: string;
      if (flavour === "rhasspy" && path === "/" && (req.method === "POST" || req.method === "GET")) {
        text = req.method === "POST" ? raw : (new URL(req.url ?? "/", "http://x").searchParams.get("text") ?? "");
        requests.push({ path, body: { text } });
      } else if (req.method === "POST" && path === synthesizePath) {
        let body: Record<string, unknown>;
        try {
          body = JSON.parse(raw) as Record<string, unknown>;
        } catch {
          return res.writeHead(500).end("bad JSON"); // Flask's json.loads raising: a 500
        }
        requests.push({ path, body });
        if (typeof body.voice === "string" && !voices.includes(body.voice)) unknownVoices.push(body.voice);
        text = typeof body.text === "string" ? body.text.trim() : "";
      } else {
        return res.writeHead(404).end("not found");
      }
      if (!text) return res.writeHead(400).end("text is required");
      if (opts.failFor?.(text)) return res.writeHead(500).end("synthesis failed");
      // espeak-ng writes 22050 Hz, Piper's usual voice rate. Not synchronous: requests of calls in parallel overlap.
      let wav: Buffer;
      try {
        wav = (await execFileP("espeak-ng", ["-v", "en-us", "--stdout", text], { encoding: "buffer", maxBuffer: 64 << 20 })).stdout;
      } catch (err) {
        return res.writeHead(500).end(`espeak-ng failed: ${(err as Error).message}`);
      }
      await untilDue(arrivedAt, opts.delayMs);
      res.writeHead(200, { "Content-Type": "audio/wav" }).end(wav);
    });
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  t.teardown(() => new Promise<void>((done) => server.close(() => done())));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, requests, unknownVoices };
}
