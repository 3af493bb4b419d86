/**
 * The Piper double (doubles/piper-double.ts) in a process of its own, for the agent benchmark's
 * AGENT_BENCH_VOICE_TTS=piper: it starts an espeak-ng per clause, and starting a process blocks
 * a Node event loop for milliseconds (tens with a larger heap). In the benchmark's own process
 * that held back the callers' RTP, and the agent then met 50 calls' packets at once.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startPiperDouble } from "../../doubles/piper-double.js";

export interface PiperProcess {
  url: string;
  stop(): Promise<void>;
}

export function spawnPiperDouble(): Promise<PiperProcess> {
  const child = spawn(process.execPath, ["--import", import.meta.resolve("tsx"), fileURLToPath(import.meta.url)], { stdio: ["ignore", "pipe", "inherit"] });
  const stop = () =>
    new Promise<void>((done) => {
      if (child.exitCode !== null || child.signalCode !== null) return done();
      child.once("exit", () => done());
      child.kill("SIGTERM");
    });
  return new Promise((done, fail) => {
    let out = "";
    child.stdout!.on("data", (c: Buffer) => {
      out += c.toString();
      const ready = /^listening (\S+)$/m.exec(out);
      if (ready) done({ url: ready[1], stop });
    });
    child.once("exit", (code) => fail(new Error(`the Piper double's process exited (${code}) before it listened`)));
  });
}

// Run as the double's process: `tsx bench/lib/piper-process.ts`; it ends with SIGTERM.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const piper = await startPiperDouble({ teardown: () => undefined });
  process.stdout.write(`listening ${piper.url}\n`);
}
