/**
 * Speech synthesis off the event loop: a few worker processes (tts-worker.ts) that run
 * espeak-ng or ask Piper's server, decode and resample the WAVs and encode an Opus call's
 * frames, shared by every call of the agent. The event loop only sends a job and receives
 * 16 kHz audio (and its Opus payloads), whole 20 ms frames at a time as they are decoded. A
 * job is cancelled by its AbortSignal: the promise rejects at once and the worker stops
 * espeak-ng or its request to Piper.
 */
import { fork, type ChildProcess } from "node:child_process";
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { concatSamples } from "../audio/frames.js";
import type { OpusSettings, PackedPayloads } from "../codecs/opus.js";
import type { PiperRequest } from "./piper-request.js";

/** What a worker does for a job: run espeak-ng, or ask Piper's server; and decode the WAV either sends. */
export type SynthesisJob = ({ engine: "espeak-ng"; voice: string; speed: number; text: string } | { engine: "piper"; request: PiperRequest }) & {
  /** The start of the message when the bytes are no usable WAV, e.g. "espeak-ng wrote no usable WAV". */
  wavError: string;
  /** Also encode each 20 ms frame as Opus (for an Opus call), with the agent's settings, sent with the samples. */
  opus?: OpusSettings;
};

export type WorkerRequest = { type: "run"; id: number; job: SynthesisJob } | { type: "cancel"; id: number } | { type: "espeak-version"; id: number; timeoutMs: number };

export type WorkerReply =
  | { type: "ready" }
  | { type: "first-byte"; id: number; /** epoch ms (timeOrigin + now) */ at: number }
  | { type: "audio"; id: number; samples: Int16Array; /** one per 20 ms frame of samples, when the job asked */ opus?: PackedPayloads }
  | { type: "done"; id: number }
  | { type: "espeak-version"; id: number; output: string }
  | { type: "error"; id: number; message: string };

/**
 * A piece of a clause's audio: 16 kHz samples, and their Opus payloads when the job asked for
 * them. Both may be views of the IPC channel's read buffer: whoever keeps them copies them.
 */
export type OnAudio = (samples: Int16Array, opus?: PackedPayloads) => void;

export interface Synthesised {
  /**
   * The clause's audio; null when it went to onAudio piece by piece. Not joined as well: the
   * pieces of 50 calls' clauses that end together, joined on the event loop, held it ~20 ms.
   */
  samples: Int16Array | null;
  /** Job posted to the first byte of the engine's WAV, ms. */
  firstByteMs: number;
}

/** A job run without onAudio: the whole clause in one. */
export type WholeClause = Synthesised & { samples: Int16Array };

interface Pending {
  postedAt: number;
  firstByteMs: number;
  parts: Int16Array[];
  onAudio?: OnAudio;
  done: (result: Synthesised) => void;
  fail: (err: Error) => void;
  worker: PoolWorker;
}

interface PoolWorker {
  process: ChildProcess;
  jobs: number;
  /** Settles when the worker has loaded (rejects when it ended first). */
  ready: Promise<void>;
}

/** A question to a worker that is no synthesis (espeakVersion). */
interface Question {
  answer: (output: string) => void;
  fail: (err: Error) => void;
  worker: PoolWorker;
}

export class SynthesisPool {
  private readonly workers: PoolWorker[] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly questions = new Map<number, Question>();
  private nextId = 1;

  /**
   * @param size worker processes; each starts espeak-ng and decodes one job at a time, while
   *   the espeak-ng processes themselves run side by side.
   * @param makeError how a failure reaches the caller (the engine's error class).
   */
  constructor(
    private readonly size: number,
    private readonly makeError: (message: string) => Error,
  ) {}

  /**
   * Runs a job; onAudio gets the 16 kHz audio as it is decoded (whole 20 ms frames, the last
   * piece whatever is left), and then the promise has none of it; without onAudio the promise has
   * all of it. Rejects with an AbortError on abort.
   */
  run(job: SynthesisJob, signal: AbortSignal): Promise<WholeClause>;
  run(job: SynthesisJob, signal: AbortSignal, onAudio?: OnAudio): Promise<Synthesised>;
  run(job: SynthesisJob, signal: AbortSignal, onAudio?: OnAudio): Promise<Synthesised> {
    if (signal.aborted) return Promise.reject(abortError(signal));
    const worker = this.leastBusy();
    const id = this.nextId++;
    return new Promise<Synthesised>((done, fail) => {
      const onAbort = () => {
        if (!this.settle(id)) return;
        worker.process.send({ type: "cancel", id } satisfies WorkerRequest);
        fail(abortError(signal));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      const cleanUp = () => signal.removeEventListener("abort", onAbort);
      this.pending.set(id, {
        postedAt: epochNow(),
        firstByteMs: 0,
        parts: [],
        onAudio,
        done: (result) => (cleanUp(), done(result)),
        fail: (err) => (cleanUp(), fail(err)),
        worker,
      });
      if (worker.jobs++ === 0) keepAlive(worker.process, true);
      worker.process.send({ type: "run", id, job } satisfies WorkerRequest);
    });
  }

  /**
   * What `espeak-ng --version` prints, run by a worker: the agent's engine check asks every
   * minute, and starting a process from the agent's own holds its event loop, and every call's
   * RTP with it: 13 ms at the agent's start, 50–116 ms with 50 voice calls up (measured: their
   * pacing p99 48–54 ms with a check every second, 6–9 ms with this). Rejects with the worker's
   * error (espeak-ng missing: "spawn espeak-ng ENOENT"), or when the worker ends first.
   */
  espeakVersion(timeoutMs: number): Promise<string> {
    const worker = this.leastBusy();
    const id = this.nextId++;
    return new Promise<string>((answer, fail) => {
      this.questions.set(id, { answer, fail, worker });
      if (worker.jobs++ === 0) keepAlive(worker.process, true);
      worker.process.send({ type: "espeak-version", id, timeoutMs } satisfies WorkerRequest);
    });
  }

  /** Starts every worker now and resolves once they have loaded, so the first call's clause does not wait for one. */
  async warmUp(): Promise<void> {
    while (this.workers.length < this.size) this.workers.push(this.start());
    await Promise.all(this.workers.map((w) => w.ready));
  }

  /** Stops the workers; jobs in flight fail. The pool starts new ones if used again. */
  async close(): Promise<void> {
    const stopping = this.workers.map((w) => new Promise((done) => w.process.once("exit", done)));
    for (const w of this.workers) {
      keepAlive(w.process, true); // until it has exited
      w.process.kill();
    }
    await Promise.all(stopping);
  }

  /** An idle worker, a new one while the pool is not full, else the one with fewest jobs. */
  private leastBusy(): PoolWorker {
    const idle = this.workers.find((w) => w.jobs === 0);
    if (idle) return idle;
    if (this.workers.length < this.size) {
      const worker = this.start();
      this.workers.push(worker);
      return worker;
    }
    return this.workers.reduce((a, b) => (b.jobs < a.jobs ? b : a));
  }

  private start(): PoolWorker {
    const child = fork(workerScript(), [], { execArgv: workerFlags(), serialization: "advanced", stdio: ["ignore", "inherit", "inherit", "ipc"] });
    let loaded: () => void = () => {};
    let failed: (err: Error) => void = () => {};
    const worker: PoolWorker = { process: child, jobs: 0, ready: new Promise((done, fail) => ((loaded = done), (failed = fail))) };
    worker.ready.catch(() => {}); // also reported to the jobs it had
    // A worker being started is awaited (warmUp: before the agent has anything else that keeps
    // it alive): referenced until it is ready, then only while it has jobs.
    keepAlive(child, true);
    const isReady = () => {
      if (worker.jobs === 0) keepAlive(child, false);
      loaded();
    };
    child.on("message", (reply: WorkerReply) => (reply.type === "ready" ? isReady() : this.receive(reply)));
    const lost = (why: string) => {
      const at = this.workers.indexOf(worker);
      if (at >= 0) this.workers.splice(at, 1);
      const err = this.makeError(`speech worker ${why}`);
      failed(err);
      for (const [id, job] of this.pending) if (job.worker === worker && this.settle(id)) job.fail(err);
      for (const [id, question] of this.questions) if (question.worker === worker && this.settle(id)) question.fail(err);
    };
    child.on("error", (err) => lost(`failed: ${err.message}`));
    child.on("exit", (code, signal) => lost(`ended (${signal ?? `exit code ${code}`})`));
    return worker;
  }

  private receive(reply: Exclude<WorkerReply, { type: "ready" }>): void {
    const question = this.questions.get(reply.id);
    if (question) {
      this.settle(reply.id);
      if (reply.type === "espeak-version") question.answer(reply.output);
      else if (reply.type === "error") question.fail(this.makeError(reply.message));
      return;
    }
    const job = this.pending.get(reply.id);
    if (!job) return; // cancelled meanwhile
    if (reply.type === "first-byte") job.firstByteMs = reply.at - job.postedAt;
    else if (reply.type === "audio") {
      if (job.onAudio) job.onAudio(reply.samples, reply.opus);
      else job.parts.push(reply.samples);
    } else if (this.settle(reply.id)) {
      if (reply.type === "done") job.done({ samples: job.onAudio ? null : concatSamples(job.parts), firstByteMs: job.firstByteMs });
      else if (reply.type === "error") job.fail(this.makeError(reply.message));
    }
  }

  /** Takes the job (or question) off the books; false when it already was (answered, aborted, worker lost). */
  private settle(id: number): boolean {
    const job = this.pending.get(id) ?? this.questions.get(id);
    if (!job) return false;
    this.pending.delete(id);
    this.questions.delete(id);
    if (--job.worker.jobs === 0) keepAlive(job.worker.process, false);
    return true;
  }
}

/** tts-worker.ts next to this file, or tts-worker.js when compiled. */
function workerScript(): string {
  return fileURLToPath(new URL(`./tts-worker${extname(new URL(import.meta.url).pathname)}`, import.meta.url));
}

/**
 * The worker's Node flags: none for compiled JavaScript; from source, tsx's loader alone (not
 * the agent's other flags, e.g. a test runner's hooks or a profiler, which would slow it down).
 */
function workerFlags(): string[] {
  return extname(new URL(import.meta.url).pathname) === ".ts" ? ["--import", import.meta.resolve("tsx")] : [];
}

/** An idle worker does not keep the agent's process alive; one with jobs in flight does. */
function keepAlive(child: ChildProcess, alive: boolean): void {
  if (alive) {
    child.ref();
    child.channel?.ref();
  } else {
    child.unref();
    child.channel?.unref();
  }
}

const epochNow = () => performance.timeOrigin + performance.now();

/** The error an aborted job rejects with, as an aborted fetch or child process does. */
function abortError(signal: AbortSignal): Error {
  return Object.assign(new Error("The operation was aborted", { cause: signal.reason }), { name: "AbortError" });
}
