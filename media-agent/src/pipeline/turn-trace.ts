/**
 * The turn trace: per call a JSON-lines file in AGENT_TRACE_DIR, one record per turn, with the
 * caller audio of each turn as a WAV beside it. README, "Reading a turn trace", explains a record.
 */
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { callFileName } from "../audio/frames.js";
import type { ChatMessage, ToolCall } from "./llm-client.js";

/**
 * One JSON line per turn. Times in ms count from the end of the caller's speech (turn 0, the
 * greeting: from the answer); `turnDecidedMs` is when the hangover ended and the turn was sent on.
 */
export interface TurnTrace {
  turn: number;
  /** Wall-clock time of the turn's 0 ms (the end of the caller's speech; for turn 0 the answer). */
  startedAt?: string;
  speechStart?: string;
  speechEnd?: string;
  speechMs?: number;
  turnDecidedMs?: number;
  /** A key press that made this turn. */
  dtmf?: string;
  /** The caller was silent: this turn is the agent's reprompt ("reprompt 1", …) or its goodbye. */
  idle?: string;
  /** The TTS could not speak the turn before (its error): this turn is the apology. */
  ttsFailed?: string;
  audio?: string;
  /** What the agent said for this turn as it was played (a cut reply: up to the cut), a WAV beside the trace. */
  agentAudio?: string;
  /** The turn's WAV could not be written (the turn went on without it). */
  audioError?: string;
  stt?: { requestAt: string; responseMs: number; text: string; segments: unknown[]; dropped: unknown[]; verdict: string; error?: string };
  llm: Array<{ requestAt: string; requestMs: number; messages: ChatMessage[]; tools: string[]; firstTokenMs?: number; doneMs?: number; text: string; toolCalls: ToolCall[]; error?: string }>;
  toolResults: Array<{ name: string; arguments: unknown; ok: boolean; content: string; atMs?: number }>;
  /** firstAudioMs: from the request to the first audio handed over (streamed engines). */
  tts: Array<{ text: string; engine: string; requestMs: number; firstByteMs?: number; firstAudioMs?: number; synthesisMs?: number; error?: string }>;
  /** The reply's first packet, and its first packet above −40 dBFS (clauses begin with silence). */
  firstPacketOutMs?: number;
  firstAudibleOutMs?: number;
  /** The caller spoke over this turn's reply: onset → detection → last agent packet. */
  bargeIn?: { onsetMs: number; detectedMs: number; lastPacketMs: number; stopMs: number; heard: string; outcome?: string };
  /** This turn was spoken over the agent and let its reply go on. */
  resumedReply?: string;
  spoken?: string;
  /** The call ended (hang-up, transfer) before this turn was over. */
  endedWithCall?: boolean;
  /** A newer turn of the caller (or a key) took over before this one was answered. */
  superseded?: boolean;
  /** performance.now() at the end of the caller's speech; not written. */
  t0: number;
}

/** One moment of a turn, in ms from the end of the caller's speech (turn 0: from the answer). */
export interface TraceEvent {
  ms: number;
  event: string;
  detail?: string;
}

/** A record as written. */
export type TraceRecord = Omit<TurnTrace, "t0"> & { events: TraceEvent[] };

/**
 * The turn as one timeline, in time order (ties in the order things happen), read off the
 * record's fields: what a reader of the record, or a call viewer, follows first.
 */
export function turnEvents(t: TurnTrace): TraceEvent[] {
  const events: TraceEvent[] = [];
  const at = (ms: number | undefined, event: string, detail?: string) => {
    if (ms !== undefined && Number.isFinite(ms)) events.push({ ms: Math.round(ms), event, ...(detail !== undefined ? { detail } : {}) });
  };
  if (t.speechEnd) at(0, "caller speech ended", t.speechMs !== undefined ? `${t.speechMs} ms of speech` : undefined);
  if (t.dtmf) at(0, "key pressed", t.dtmf);
  if (t.idle) at(0, "caller silent", t.idle);
  if (t.ttsFailed) at(0, "TTS failed", t.ttsFailed);
  at(t.turnDecidedMs, "turn decided");
  if (t.stt && t.speechEnd) {
    const requestMs = Date.parse(t.stt.requestAt) - Date.parse(t.speechEnd);
    at(requestMs, "STT request");
    at(requestMs + t.stt.responseMs, "STT answer", t.stt.error ? `error: ${t.stt.error}` : `${t.stt.verdict}: ${t.stt.text.trim()}`);
  }
  t.llm.forEach((round, i) => {
    at(round.requestMs, "LLM request", `round ${i + 1}`);
    if (round.firstTokenMs !== undefined) at(round.requestMs + round.firstTokenMs, "LLM first token");
    if (round.doneMs !== undefined) at(round.requestMs + round.doneMs, "LLM done", round.toolCalls.length ? `tools: ${round.toolCalls.map((c) => c.function.name).join(", ")}` : undefined);
    if (round.error) at(round.requestMs, "LLM error", round.error);
  });
  for (const r of t.toolResults) at(r.atMs, "tool result", `${r.name}: ${r.ok ? "ok" : "failed"}`);
  for (const x of t.tts) {
    at(x.requestMs, "TTS request", x.text);
    if (x.firstAudioMs !== undefined) at(x.requestMs + x.firstAudioMs, "TTS first audio", x.text);
    if (x.synthesisMs !== undefined) at(x.requestMs + x.synthesisMs, "TTS done", x.text);
    if (x.error) at(x.requestMs, "TTS error", x.error);
  }
  at(t.firstPacketOutMs, "first packet out");
  at(t.firstAudibleOutMs, "first audible packet out");
  if (t.bargeIn) {
    at(t.bargeIn.onsetMs, "caller began speaking over the reply");
    at(t.bargeIn.detectedMs, "barge-in: reply paused");
    at(t.bargeIn.lastPacketMs, "last reply packet");
  }
  return events.map((e, i) => [e, i] as const).sort((a, b) => a[0].ms - b[0].ms || a[1] - b[1]).map(([e]) => e);
}

/** The record as written: in the order a reader follows a turn (speech → STT → LLM → tools → TTS → audio out). */
export function traceRecord(t: TurnTrace): TraceRecord {
  return {
    turn: t.turn,
    startedAt: t.startedAt,
    speechStart: t.speechStart,
    speechEnd: t.speechEnd,
    speechMs: t.speechMs,
    turnDecidedMs: t.turnDecidedMs,
    dtmf: t.dtmf,
    idle: t.idle,
    ttsFailed: t.ttsFailed,
    audio: t.audio,
    agentAudio: t.agentAudio,
    audioError: t.audioError,
    stt: t.stt,
    llm: t.llm,
    toolResults: t.toolResults,
    tts: t.tts,
    firstPacketOutMs: t.firstPacketOutMs,
    firstAudibleOutMs: t.firstAudibleOutMs,
    bargeIn: t.bargeIn,
    resumedReply: t.resumedReply,
    spoken: t.spoken,
    endedWithCall: t.endedWithCall,
    superseded: t.superseded,
    events: turnEvents(t),
  };
}

/** A call's trace file. */
export function traceFileOf(traceDir: string, callId: string): string {
  return join(traceDir, `${callFileName(callId)}.jsonl`);
}

/** The records of a call, in the order they were written (each once its reply was played or cut). */
export function readTrace(traceDir: string, callId: string): TraceRecord[] {
  return parseTrace(readFileSync(traceFileOf(traceDir, callId), "utf8"));
}

/** The same, read without holding the event loop (the agent's API, while calls are up); none yet: []. */
export async function readTraceOffLoop(traceDir: string, callId: string): Promise<TraceRecord[]> {
  try {
    return parseTrace(await readFile(traceFileOf(traceDir, callId), "utf8"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}

function parseTrace(text: string): TraceRecord[] {
  return text.trim().split("\n").filter(Boolean).map((line) => JSON.parse(line) as TraceRecord);
}
