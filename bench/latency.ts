/**
 * `npm run bench -- latency`: how long a caller waits for the agent, measured where the caller is.
 *
 * The stack as `npm start` runs it (bench/lib/bench-stack.ts: Kamailio with the real bundle,
 * rtpengine, the media agent as its own process) and Meta's edge calling it over TLS with
 * SDES-SRTP Opus (bench/lib/meta-caller.ts). The agent's voice profile uses the engine doubles
 * at the documented delays of real engines (bench/lib/latency-engines.ts: STT 100–300 ms, LLM
 * first clause 100–250 ms, TTS 100–200 ms), in a process of their own. Everything else is the
 * project's own code and the real daemons.
 *
 * Each call: the greeting, then the caller's turns — questions answered without tools, weather
 * questions answered after one get_weather round, and a question with a long answer that the
 * caller interrupts. The caller's speech is espeak-ng prompts synthesised before the run; it
 * sends silence between them, 20 ms a packet, as a phone does.
 *
 * Measured at the caller, per turn:
 *   - latency: the last packet with speech energy the caller sent → the first received packet
 *     whose decoded audio has speech energy (bench/lib/speech-energy.ts), by kind of turn;
 *   - barge-in: the first packet with speech energy of the interruption → the last audible agent
 *     packet before the agent falls silent;
 *   - where the time goes: each stage from the agent's turn trace (AGENT_TRACE_DIR), and around
 *     them, from the wall clocks of both processes on this machine: "inbound" (the caller's
 *     speech end → the end the agent's VAD saw: network, rtpengine, the agent's jitter buffer),
 *     less "VAD tail" (how much later than the energy the VAD ends the same prompt, found
 *     offline), and "outbound" (the agent's first packet → the caller has it).
 * A turn counts only when its trace record (the one whose end of speech is nearest the caller's)
 * shows the prompt recognised and the expected kind of answer (tool round or not), and when this
 * process did not stall during it; the others are reported as failed, with why. Once the stack is
 * up, this process and the engines run at nice -10: they stand for other machines (a phone, GPU
 * servers), whose scheduling on a shared box is not the stack's latency.
 *
 * --quick: one call, three turns (one of each kind). Full: 5 calls in parallel, 11 turns each.
 * LATENCY_BENCH_ENGINES=median: every engine request takes its documented median instead of a
 * draw (bench/results/latency-median.json): each turn then shows the stack's own share, and the
 * p50 over drawn engines is computed from those shares (p50OverDrawnEngines), where a drawn run's
 * p50 moves ±35 ms with its draws.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { setPriority, tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { speak, wav16k } from "../build/speech.js";
import { FRAME_MS, FRAME_SAMPLES } from "../media-agent/src/audio/frames.js";
import { toFrames } from "../media-agent/src/audio/wav.js";
import { createCodec } from "../media-agent/src/codecs/codec.js";
import { normaliseText } from "../media-agent/src/pipeline/transcript-filter.js";
import { DEFAULT_TURNS, TurnDetector, WebRtcVad } from "../media-agent/src/pipeline/vad.js";
import { readTrace, traceFileOf, type TraceRecord } from "../media-agent/src/pipeline/turn-trace.js";
import { seededRandom } from "../test/support/malformed-corpus.js";
import { startBenchStack } from "./lib/bench-stack.js";
import { ALL_LINES, ENGINE_DELAYS, engineTiming, enginesAtMedian, LINES, p50OverDrawnEngines, PROFILE, promptFile, spawnLatencyEngines, type EngineReport, type Line, type TurnKind } from "./lib/latency-engines.js";
import { MetaEdge, type MetaCall } from "./lib/meta-caller.js";
import { benchArgs, medianInterval, percentile, printTable, writeResult } from "./lib/report.js";
import { AudibleArrivals, hasSpeechEnergy } from "./lib/speech-energy.js";
import { BUSINESS } from "./native/stand.js";

const args = benchArgs();
/** The agent's default turn hangover: silence before a turn is decided without an early transcript. */
const HANGOVER_MS = DEFAULT_TURNS.hangoverMs;
/** The caller interrupts the long answer this long after it became audible (+ up to 400 ms): past the agent's echo guard (250 ms). */
const INTERRUPT_AFTER_MS = 600;
/** A reply is over when its trace record is written and nothing was audible for this long. */
const QUIET_MS = 300;
const TURN_TIMEOUT_MS = 10_000;
const GREETING_TIMEOUT_MS = 30_000;
/** A trace record belongs to a turn when the agent's end of speech is this close to the caller's. */
const MATCH_WINDOW_MS = 1500;
/** The nice value of this process and the engines' once the stack is up (the daemons keep 0). */
const CALLER_PRIORITY = -10;

/** One call's turns (an interrupting line is said during the answer to the line before it). */
const SCRIPT: Line[] = args.quick
  ? [LINES.week, LINES.stop, LINES.berlin]
  : [LINES.hear, LINES.berlin, LINES.who, LINES.dusseldorf, LINES.week, LINES.stop, LINES.what, LINES.berlin, LINES.thanks, LINES.dusseldorf, LINES.hear];
const CALLS = args.quick ? 1 : 5;
/** LATENCY_BENCH_ENGINES: the engines' delays drawn per request (default), or each at its documented median. */
const TIMING = engineTiming(process.env.LATENCY_BENCH_ENGINES);
/** Calls start this far apart, each at another line of the script, so that they do not move in step. */
const CALL_STAGGER_MS = 700;

/** Seeded, so runs make the same pauses. */
const random = seededRandom(14);
const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));
/** Wall-clock ms of a performance.now() time, comparable with the agent's ISO times. */
const wallMs = (t: number) => performance.timeOrigin + t;

// ---------------------------------------------------------------- the caller's voice

interface Prompt {
  line: Line;
  payloads: Uint8Array[];
  /** Per frame: whether it has speech energy. */
  speech: boolean[];
  /**
   * How much later than the speech energy the agent's turn detector (libfvad, mode 3, and the
   * level drop at a word's end, as the agent runs them) finds the prompt's speech ending, on the
   * prompt as the agent decodes it: the part of "inbound" that is the VAD's judgement rather than
   * transport.
   */
  vadTailMs: number;
}

/** The prompts as the caller sends them; their WAVs stay in `dir` for the STT double. */
async function preparePrompts(dir: string): Promise<{ prompts: Map<string, Prompt>; silence: Uint8Array }> {
  const prompts = new Map<string, Prompt>();
  const silentFrame = new Int16Array(FRAME_SAMPLES);
  const silence = createCodec("opus").encode(silentFrame).slice();
  await WebRtcVad.create();
  for (const line of ALL_LINES) {
    const samples16k = wav16k(speak(line.prompt, promptFile(dir, line), 16000, 0, 1, 0));
    const frames = toFrames(samples16k);
    // One encoder per prompt, as a phone's would be; the payloads are the same in every call.
    const encoder = createCodec("opus");
    const payloads = frames.map((f) => encoder.encode(f).slice());
    const speech = frames.map(hasSpeechEnergy);
    const decoder = createCodec("opus");
    const vad = WebRtcVad.createLoaded(3);
    const turns = new TurnDetector(vad);
    const ends = [...payloads, ...Array<Uint8Array>(50).fill(silence)].map((p) => turns.push(decoder.decode(p)[0] ?? silentFrame)).filter((e) => e?.type === "turn");
    vad.close();
    const lastEnd = ends[ends.length - 1];
    if (lastEnd?.type !== "turn") throw new Error(`the agent's turn detector finds no turn in the prompt '${line.prompt}'`);
    const vadTailMs = (lastEnd.endFrame - speech.lastIndexOf(true)) * FRAME_MS;
    prompts.set(line.prompt, { line, payloads, speech, vadTailMs });
  }
  return { prompts, silence };
}

/** When the caller's speech in a prompt began and ended (send times of the first and last frame with speech energy). */
interface Said {
  onset: number;
  end: number;
}

/** What one call sends every 20 ms: the current prompt's next frame, else silence. */
class CallerVoice {
  private current: { prompt: Prompt; next: number; onset: number | null; end: number; done: (s: Said) => void } | null = null;

  constructor(
    private readonly call: MetaCall,
    private readonly silence: Uint8Array,
  ) {}

  say(prompt: Prompt): Promise<Said> {
    if (this.current) throw new Error("the caller is already speaking");
    return new Promise((done) => (this.current = { prompt, next: 0, onset: null, end: 0, done }));
  }

  tick(): void {
    const c = this.current;
    if (!c) return void this.call.sendRtp(this.silence);
    const i = c.next++;
    this.call.sendRtp(c.prompt.payloads[i], { marker: i === 0 });
    if (c.prompt.speech[i]) {
      const at = performance.now();
      c.onset ??= at;
      c.end = at;
    }
    if (c.next === c.prompt.payloads.length) {
      this.current = null;
      c.done({ onset: c.onset ?? c.end, end: c.end });
    }
  }
}

/**
 * The caller's own stalls: [due, ran] of every frame tick that ran more than STALL_MS late. A
 * turn they overlap measured this process, not the stack (an overloaded machine): not counted.
 */
const callerStalls: Array<[number, number]> = [];
const STALL_MS = 100;
const CALLER_STALLED = "the caller itself stalled";

/** The longest stall of the caller overlapping [from, to], in ms (0: none). */
function stalledDuring(from: number, to: number): number {
  return Math.max(0, ...callerStalls.filter(([due, ran]) => ran > from && due < to).map(([due, ran]) => ran - due));
}

/** One clock for every call's sender, without drift; frames missed in a stall go out at once, as after a network hiccup. */
function startFrameClock(voices: Set<CallerVoice>): () => void {
  const start = performance.now();
  let tick = 0;
  let timer: NodeJS.Timeout;
  const run = () => {
    const now = performance.now();
    if (now - (start + tick * FRAME_MS) > STALL_MS) callerStalls.push([start + tick * FRAME_MS, now]);
    while (start + tick * FRAME_MS <= now) {
      for (const v of voices) v.tick();
      tick++;
    }
    timer = setTimeout(run, Math.max(0, start + tick * FRAME_MS - performance.now()));
  };
  run();
  return () => clearTimeout(timer);
}

// ---------------------------------------------------------------- one call

interface TurnResult {
  call: number;
  prompt: string;
  kind: TurnKind;
  /** Caller side: end of speech → first audible agent audio. */
  latencyMs: number | null;
  /** The caller's end of speech on the wall clock (ms). */
  saidEndWallMs?: number;
  /** The prompt's VAD tail (Prompt.vadTailMs). */
  vadTailMs: number;
  /** The interruption's onset → the agent's audio stopped (only on the interrupting line). */
  bargeInStopMs?: number | null;
  failed?: string;
  /** From the agent's trace record of the turn. */
  trace?: TraceRecord;
  agentBargeIn?: TraceRecord["bargeIn"];
}

class CallRun {
  readonly audio = new AudibleArrivals("opus");
  readonly voice: CallerVoice;
  /** Trace records the agent has written or will write: the greeting, and one per line said. */
  private expectedRecords = 1;

  constructor(
    readonly index: number,
    readonly call: MetaCall,
    silence: Uint8Array,
    private readonly traceDir: string,
  ) {
    this.voice = new CallerVoice(call, silence);
    call.onRtp = (payload, _header, arrivedAt) => this.audio.push(payload, arrivedAt);
  }

  async say(prompt: Prompt): Promise<Said> {
    this.expectedRecords++;
    return this.voice.say(prompt);
  }

  trace(): TraceRecord[] {
    try {
      return readTrace(this.traceDir, this.call.callId);
    } catch {
      return []; // nothing written yet
    }
  }

  /** Records written so far, counted without parsing them (they grow with the conversation). */
  private recordCount(): number {
    try {
      return readFileSync(traceFileOf(this.traceDir, this.call.callId), "latin1").split("\n").length - 1;
    } catch {
      return 0; // nothing written yet
    }
  }

  /**
   * Every reply so far is over: the agent writes a turn's record once its reply has been played
   * (or cut), and then nothing was audible for QUIET_MS. False after `timeoutMs`.
   */
  async agentDone(timeoutMs = TURN_TIMEOUT_MS): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      if (performance.now() - (this.audio.last ?? 0) >= QUIET_MS && this.recordCount() >= this.expectedRecords) return true;
      await sleep(50);
    }
    return false;
  }

  async firstAudibleAfter(t: number): Promise<number | null> {
    const deadline = t + TURN_TIMEOUT_MS;
    while (performance.now() < deadline) {
      const at = this.audio.firstAfter(t);
      if (at !== null) return at;
      await sleep(10);
    }
    return null;
  }

  /**
   * After the call: each turn gets the agent's record of it — the one whose end of speech is
   * nearest the caller's — and is checked against it: the line recognised, the expected answer.
   */
  async attachTraces(results: TurnResult[]): Promise<void> {
    // Records of replies cut by the hang-up are written as the call closes.
    for (let waited = 0; this.recordCount() < this.expectedRecords && waited < 3000; waited += 100) await sleep(100);
    const records = this.trace();
    const taken = new Set<number>();
    for (const r of results) {
      const line = ALL_LINES.find((l) => l.prompt === r.prompt)!;
      if (r.saidEndWallMs === undefined) continue; // no answer was heard: failed already
      const nearest = records
        .filter((x) => x.speechEnd && !taken.has(x.turn))
        .map((x) => ({ record: x, gap: Math.abs(Date.parse(x.speechEnd!) - r.saidEndWallMs!) }))
        .sort((a, b) => a.gap - b.gap)[0];
      if (!nearest || nearest.gap > MATCH_WINDOW_MS) {
        r.failed ??= `the agent has no turn ending within ${MATCH_WINDOW_MS} ms of the caller's speech`;
        continue;
      }
      r.trace = nearest.record;
      taken.add(r.trace.turn);
      if (normaliseText(r.trace.stt?.text ?? "") !== normaliseText(line.prompt)) r.failed ??= `the agent recognised '${(r.trace.stt?.text ?? "").trim()}'`;
      r.failed ??= traceProblem(line, r.trace) ?? undefined;
    }
    // A barge-in's record is the interrupted turn's, just before the interruption.
    results.forEach((r, i) => {
      if (r.kind !== "after barge-in") return;
      const cut = results[i - 1]?.trace?.bargeIn;
      r.agentBargeIn = cut;
      if (cut?.outcome !== "reply stopped") r.failed ??= `the agent's trace shows no stopped reply (${cut?.outcome ?? "no barge-in"})`;
    });
  }
}

/** Why a turn's trace does not show the expected kind of answer, or null. */
function traceProblem(line: Line, r: TraceRecord): string | null {
  const tools = r.toolResults.filter((t) => t.ok && t.name === "get_weather").length;
  if (line.kind === "one tool round" && (tools !== 1 || r.llm.length !== 2)) return `expected one get_weather round, trace has ${tools} tool results and ${r.llm.length} LLM requests`;
  if (line.kind !== "one tool round" && (r.toolResults.length || r.llm.length !== 1)) return `expected one LLM request without tools, trace has ${r.llm.length}`;
  const ttsError = r.tts.find((x) => x.error)?.error;
  if (ttsError) return `TTS failed: ${ttsError}`;
  if (r.firstPacketOutMs === undefined) return "the agent sent no audio for the turn";
  return null;
}

async function runCall(run: CallRun, prompts: Map<string, Prompt>, offset: number): Promise<TurnResult[]> {
  const results: TurnResult[] = [];
  // The greeting is the agent's first synthesis: on a loaded machine its start-up takes seconds.
  if (!(await run.agentDone(GREETING_TIMEOUT_MS))) throw new Error(`call ${run.index}: the greeting's trace record never came`);
  const lines = SCRIPT.map((_, i) => SCRIPT[(i + offset) % SCRIPT.length]);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.kind === "after barge-in") continue; // said inside the interrupted turn
    await sleep(300 + random() * 400); // the caller thinks
    results.push(...(await oneTurn(run, prompts, line, line.interrupted ? lines[i + 1] : undefined)));
    // The last reply need not be heard to its end: its record is written when the call closes.
    const last = i === lines.length - 1 || (i === lines.length - 2 && line.interrupted);
    if (!last && !(await run.agentDone())) results[results.length - 1].failed ??= "the agent's reply did not end";
  }
  return results;
}

/** Why a turn from `from` to `to` measured the caller rather than the stack, or undefined. */
function overloaded(from: number, to: number): string | undefined {
  const ms = stalledDuring(from, to);
  return ms ? `${CALLER_STALLED} ${Math.round(ms)} ms during the turn (an overloaded machine)` : undefined;
}

/** One line of the caller, until the agent's answer is audible; with `interruption`, that line is said over the answer. */
async function oneTurn(run: CallRun, prompts: Map<string, Prompt>, line: Line, interruption?: Line): Promise<TurnResult[]> {
  const prompt = prompts.get(line.prompt)!;
  const result: TurnResult = { call: run.index, prompt: line.prompt, kind: line.kind, latencyMs: null, vadTailMs: prompt.vadTailMs };
  const said = await run.say(prompt);
  const heard = await run.firstAudibleAfter(said.end);
  result.failed = overloaded(said.onset, heard ?? performance.now());
  if (heard === null) return [{ ...result, failed: result.failed ?? "no agent audio after the prompt" }];
  result.latencyMs = heard - said.end;
  result.saidEndWallMs = wallMs(said.end);
  if (run.audio.anyIn(said.onset, said.end)) result.failed ??= "the agent spoke while the caller was speaking";
  if (!interruption) return [result];
  // Barge-in: the caller speaks over the long answer, at a moment the agent is audible (not in a pause between its sentences).
  await sleep(INTERRUPT_AFTER_MS + random() * 400 - (performance.now() - heard));
  for (let waited = 0; performance.now() - (run.audio.last ?? 0) > 2 * FRAME_MS && waited < 3000; waited += 5) await sleep(5);
  const overPrompt = prompts.get(interruption.prompt)!;
  const over = await run.say(overPrompt);
  const next: TurnResult = { call: run.index, prompt: interruption.prompt, kind: interruption.kind, latencyMs: null, bargeInStopMs: null, vadTailMs: overPrompt.vadTailMs };
  const answer = await run.firstAudibleAfter(over.end);
  next.failed = overloaded(over.onset, answer ?? performance.now());
  // Audio before the hangover's end or the answer is the interrupted reply's (an early transcript can
  // end the turn sooner, but the engines' least delays alone, 300 ms, keep the answer after that window's end).
  const windowEnd = Math.min(answer ?? Infinity, over.end + HANGOVER_MS);
  const stoppedAt = run.audio.lastIn(over.onset, windowEnd);
  if (!run.audio.anyIn(over.onset - 200, over.onset + 1)) next.failed ??= "the agent was not audible when the caller began to speak";
  else if (stoppedAt === null || stoppedAt > windowEnd - 3 * FRAME_MS) next.failed ??= "the agent's audio did not stop";
  else next.bargeInStopMs = stoppedAt - over.onset;
  if (answer === null) next.failed ??= "no agent audio after the interruption";
  else {
    next.latencyMs = answer - over.end;
    next.saidEndWallMs = wallMs(over.end);
  }
  return [result, next];
}

// ---------------------------------------------------------------- where the time goes

const STAGES = ["inbound", "VAD tail", "hangover", "STT", "LLM", "tool", "TTS", "agent other", "outbound"] as const;
type Stage = (typeof STAGES)[number];

/**
 * The caller's latency split by the agent's trace, in ms that add up to it. The trace counts
 * from t0, the end of speech its VAD saw (the turn's decision − the hangover); `speechEnd` is t0
 * on the wall clock, which places it against the caller's own end of speech.
 */
function stagesOf(r: TurnResult): Record<Stage, number> | null {
  const t = r.trace;
  if (!t || r.latencyMs === null || r.saidEndWallMs === undefined || !t.stt || !t.speechEnd || t.firstPacketOutMs === undefined || !t.tts.length || !t.llm.length) return null;
  const tts = t.tts[0];
  // The reply's first audible packet (a clause starts with a little silence).
  const firstOut = t.firstAudibleOutMs ?? t.firstPacketOutMs;
  const hangover = t.turnDecidedMs ?? 0;
  // The STT's time after the turn's decision: it starts at the caller's pause (turns.sttAfterMs),
  // so part of it, or all, passes during the hangover.
  const sttDone = Date.parse(t.stt.requestAt) + t.stt.responseMs - Date.parse(t.speechEnd);
  const llmStart = t.llm[0].requestMs;
  // With a tool round: from the first round's end to the second's request (the tool and the agent's work around it).
  const tool = t.llm.length > 1 ? t.llm[1].requestMs - (llmStart + (t.llm[0].doneMs ?? 0)) : 0;
  const inbound = Date.parse(t.speechEnd) - r.saidEndWallMs;
  const stages: Record<Stage, number> = {
    inbound: inbound - r.vadTailMs,
    "VAD tail": r.vadTailMs,
    hangover,
    STT: Math.max(0, sttDone - hangover),
    // Every LLM round up to the first piece of the answer handed to the TTS.
    LLM: tts.requestMs - llmStart - tool,
    tool,
    // To the clause's first audio: the whole synthesis, or less where playback starts while it streams.
    TTS: Math.min(tts.synthesisMs ?? Infinity, firstOut - tts.requestMs),
    "agent other": 0,
    outbound: r.latencyMs - inbound - firstOut,
  };
  // The agent's own work between the stages: transcript filter, chunking, resampling, the frame clock.
  stages["agent other"] = firstOut - stages.hangover - stages.STT - stages.LLM - tool - stages.TTS;
  return stages;
}

// ---------------------------------------------------------------- the run

async function main(): Promise<{ results: TurnResult[]; seconds: number; benchLoopMaxMs: number; callerPriority: number; callerCpuPct: number; engineReport: EngineReport }> {
  const started = performance.now();
  const cleanups: Array<() => unknown> = [];
  const t = { teardown: (fn: () => unknown) => void cleanups.push(fn) };
  const dir = mkdtempSync(join(tmpdir(), "bench-latency-"));
  if (!process.env.WA_KEEP_TEST_DIRS) t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const voices = new Set<CallerVoice>();
  const benchLoop = monitorEventLoopDelay({ resolution: 5 });
  try {
    // The prompts and the engines are made while the stack builds the bundle and certificates.
    const ready = (async () => {
      const prepared = await preparePrompts(dir);
      const engines = await spawnLatencyEngines(dir, TIMING);
      t.teardown(() => engines.stop());
      return { ...prepared, engines };
    })();
    ready.catch(() => undefined); // awaited below; a failure of the stack first must not leave it unhandled
    const stack = await startBenchStack({
      calls: CALLS,
      kamailioEnv: { WA_NUMBERS: `${BUSINESS}=${PROFILE}` },
      agentEnv: ready.then((r) => ({ AGENT_VOICE_PROFILES: r.engines.profilesFile, AGENT_DEFAULT_PROFILE: PROFILE })),
    });
    t.teardown(() => stack.stop());
    const { prompts, silence, engines } = await ready;
    // The caller and the engines stand for other machines (a phone, GPU servers): on a shared box
    // their own scheduling delays must not count as the stack's. The daemons keep their priority.
    const raised = [process.pid, engines.pid].every((pid) => {
      try {
        setPriority(pid, CALLER_PRIORITY);
        return true;
      } catch {
        return false; // not permitted: measured at normal priority, and the JSON says so
      }
    });
    console.log(`latency: stack up in ${((performance.now() - started) / 1000).toFixed(1)} s; ${CALLS} call(s) × ${SCRIPT.length} turns`);

    const edge = await MetaEdge.connect({ target: stack.tls });
    t.teardown(() => edge.close());
    t.teardown(startFrameClock(voices));
    benchLoop.enable();
    const cpuBefore = process.cpuUsage();
    const callsStarted = performance.now();
    // Where each call starts in the script: never at an interrupting line, which must follow its long answer.
    const starts = SCRIPT.map((l, at) => (l.kind === "after barge-in" ? -1 : at)).filter((at) => at >= 0);
    const runs = await Promise.all(
      Array.from({ length: CALLS }, async (_, i) => {
        await sleep(i * CALL_STAGGER_MS);
        const call = await edge.call({ business: BUSINESS });
        const run = new CallRun(i, call, silence, stack.traceDir);
        voices.add(run.voice);
        let results: TurnResult[] = [];
        try {
          results = await runCall(run, prompts, starts[(i * 2) % starts.length]);
        } finally {
          voices.delete(run.voice);
          await call.hangUp().catch(() => undefined);
        }
        await run.attachTraces(results);
        return results;
      }),
    );
    benchLoop.disable();
    const cpu = process.cpuUsage(cpuBefore);
    const callerCpuPct = ((cpu.user + cpu.system) / 1000 / (performance.now() - callsStarted)) * 100;
    const engineReport = await engines.report();
    return { results: runs.flat(), seconds: (performance.now() - started) / 1000, benchLoopMaxMs: benchLoop.max / 1e6, callerPriority: raised ? CALLER_PRIORITY : 0, callerCpuPct, engineReport };
  } finally {
    for (const fn of cleanups.reverse()) await fn();
  }
}

/**
 * At the medians: each turn's latency less the engines' fixed sum is what the stack added to it;
 * from those, the p50 over drawn engines (p50OverDrawnEngines), with a 95 % interval from
 * resampling the turns (1,000 times, seeded).
 */
function stackSharesAtMedians() {
  const bootstrap = seededRandom(7);
  return (["no tools", "one tool round"] as const).map((kind) => {
    const shares = counted.filter((r) => r.kind === kind).map((r) => r.latencyMs! - enginesAtMedian(kind));
    if (shares.length < 6) return { kind, turns: shares.length, p50: null, mean: null, p95: null, drawnP50: null, drawnP50Interval95: null };
    const resampled = Array.from({ length: 1000 }, () => p50OverDrawnEngines(kind, shares.map(() => shares[Math.floor(bootstrap() * shares.length)])));
    return {
      kind, turns: shares.length,
      p50: round(percentile(shares, 50)), mean: round(shares.reduce((a, b) => a + b, 0) / shares.length), p95: round(percentile(shares, 95)),
      drawnP50: round(p50OverDrawnEngines(kind, shares)),
      drawnP50Interval95: [round(percentile(resampled, 2.5)), round(percentile(resampled, 97.5))],
    };
  });
}

/** Whole ms; null where there was nothing to measure (printed as "-"). */
const round = (x: number) => (Number.isFinite(x) ? Math.round(x) : null);
const cell = (x: number | null) => x ?? "-";
const { results, seconds, benchLoopMaxMs, callerPriority, callerCpuPct, engineReport } = await main();
const { sttRequests: stt, drawn } = engineReport;
const KINDS: TurnKind[] = ["no tools", "one tool round", "after barge-in"];
const counted = results.filter((r) => !r.failed && r.latencyMs !== null);
const latency = KINDS.map((kind) => {
  const ms = counted.filter((r) => r.kind === kind).map((r) => r.latencyMs!);
  const interval = medianInterval(ms);
  return {
    kind, turns: ms.length, p50: round(percentile(ms, 50)),
    // Where this run says the median lies: how far its p50 may be from another run's with other draws.
    p50Interval95: interval && interval.map(round),
    p95: round(percentile(ms, 95)), p99: round(percentile(ms, 99)), min: round(Math.min(...ms)), max: round(Math.max(...ms)),
  };
});
const bargeIns = results.filter((r) => r.kind === "after barge-in" && !r.failed && r.bargeInStopMs != null);
const stops = bargeIns.map((r) => r.bargeInStopMs!);
const agentStops = bargeIns.map((r) => r.agentBargeIn?.stopMs).filter((x): x is number => x !== undefined);
const bargeIn = { count: stops.length, p50: round(percentile(stops, 50)), p95: round(percentile(stops, 95)), max: round(Math.max(...stops)), agentSideP50: round(percentile(agentStops, 50)) };
const shares = KINDS.map((kind) => {
  const split = counted.filter((r) => r.kind === kind).map(stagesOf).filter((s): s is Record<Stage, number> => s !== null);
  const mean = (stage: Stage) => split.reduce((sum, s) => sum + s[stage], 0) / split.length;
  const total = STAGES.reduce((sum, stage) => sum + mean(stage), 0);
  const stages = Object.fromEntries(STAGES.map((stage) => [stage, { meanMs: round(mean(stage)), share: round((mean(stage) / total) * 1000)! / 10 }]));
  return { kind, turns: split.length, meanTotalMs: round(total), stages: stages as Record<Stage, { meanMs: number | null; share: number | null }> };
});
const failed = results.filter((r) => r.failed);

printTable(
  `latency at the caller: end of the caller's speech → first audible agent audio (ms; ${CALLS} concurrent call(s), engine doubles at documented delays, ${TIMING === "median" ? "each at its median" : "drawn per request"})`,
  ["turn", "turns", "p50", "median, 95 % interval", "p95", "p99", "min", "max"],
  latency.map((l) => [l.kind, l.turns, cell(l.p50), l.p50Interval95 ? `${l.p50Interval95[0]}–${l.p50Interval95[1]}` : "-", cell(l.p95), cell(l.p99), cell(l.min), cell(l.max)]),
);
printTable(
  "barge-in at the caller: the interruption's first speech → the agent's audio stops (ms)",
  ["barge-ins", "p50", "p95", "max", "agent side p50 (trace stopMs)"],
  [[bargeIn.count, cell(bargeIn.p50), cell(bargeIn.p95), cell(bargeIn.max), cell(bargeIn.agentSideP50)]],
);
printTable(
  "where the time goes: mean ms (share) per stage, from the agent's turn traces (inbound: caller → the agent's VAD, less the VAD's own tail; outbound: the agent's first packet → the caller)",
  ["turn", "turns", "total", ...STAGES],
  shares.map((s) => [s.kind, s.turns, cell(s.meanTotalMs), ...STAGES.map((stage) => (s.turns ? `${s.stages[stage].meanMs} (${s.stages[stage].share}%)` : "-"))]),
);
const stackShares = TIMING === "median" ? stackSharesAtMedians() : [];
if (TIMING === "median") {
  printTable(
    "the stack's own share at the engines' medians (a turn's latency less the engines' sum: no tools 525, one tool round 700 ms), and the p50 a drawn run would find, computed from these shares",
    ["turn", "turns", "share p50", "share mean", "share p95", "p50 with engines drawn", "its 95 % interval (bootstrap over turns)"],
    stackShares.map((s) => [s.kind, s.turns, cell(s.p50), cell(s.mean), cell(s.p95), cell(s.drawnP50), s.drawnP50Interval95 ? `${s.drawnP50Interval95[0]}–${s.drawnP50Interval95[1]}` : "-"]),
  );
}
console.log(`\nlatency: ${results.length} turns in ${seconds.toFixed(0)} s, ${failed.length} failed; the caller (nice ${callerPriority}): ${callerCpuPct.toFixed(0)} % of a core, worst event-loop delay ${benchLoopMaxMs.toFixed(1)} ms`);
for (const f of failed) console.log(`  failed: call ${f.call} '${f.prompt}': ${f.failed}`);
// A run's engine delays are drawn from the documented ranges: how their means came out says whether its figures had fast or slow engines.
const median = ([lo, hi]: readonly [number, number]) => (lo + hi) / 2;
console.log(
  `latency: the engines' delays drawn this run, mean (documented median): STT ${drawn.stt.meanMs} ms (${median(ENGINE_DELAYS.sttMs)}) over ${drawn.stt.requests} requests, ` +
    `the LLM's first clause or tool call ${drawn.llm.meanMs} ms (${median(ENGINE_DELAYS.llmFirstClauseMs)}) over ${drawn.llm.requests}, TTS ${drawn.tts.meanMs} ms (${median(ENGINE_DELAYS.ttsMs)}) over ${drawn.tts.requests}`,
);
// The early STT's cost to the STT server: requests at short pauses inside what the caller said.
console.log(`latency: the STT double got ${stt.total} requests for ${stt.recognised} prompts recognised whole (${(stt.total / Math.max(1, stt.recognised)).toFixed(2)} per prompt; the others, early requests at pauses inside a prompt, were dropped)`);
writeResult(args, TIMING === "median" ? "latency-median" : "latency", {
  calls: CALLS,
  engineTiming: TIMING,
  turnsPerCall: SCRIPT.length,
  engineDelays: { ...ENGINE_DELAYS, tts: "Piper double (espeak-ng inside)" },
  turnOptions: DEFAULT_TURNS,
  sttRequests: stt,
  drawnDelays: drawn,
  seconds: Math.round(seconds),
  benchLoopMaxMs: Math.round(benchLoopMaxMs * 10) / 10,
  callerPriority,
  callerCpuPct: Math.round(callerCpuPct),
  latency,
  bargeIn,
  shares,
  ...(TIMING === "median" ? { stackShares } : {}),
  failed: failed.map((f) => ({ call: f.call, prompt: f.prompt, why: f.failed })),
  turns: results.map((r) => ({
    call: r.call, kind: r.kind, prompt: r.prompt,
    latencyMs: r.latencyMs === null ? null : round(r.latencyMs),
    bargeInStopMs: r.bargeInStopMs == null ? undefined : round(r.bargeInStopMs),
    failed: r.failed,
    stages: stagesOf(r) ?? undefined,
  })),
});
// The run fails when the stack failed most turns; turns the caller's own stalls spoiled say nothing about it.
const stackFailures = failed.filter((r) => !r.failed!.startsWith(CALLER_STALLED));
if (stackFailures.length > results.length / 2) process.exitCode = 1;
