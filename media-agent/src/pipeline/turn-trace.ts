/**
 * The turn trace: per call a JSON-lines file in AGENT_TRACE_DIR, one record per turn, with the
 * caller audio of each turn as a WAV beside it. README, "Reading a turn trace", explains a record.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { callFileName } from "../audio/frames.js";
import type { ChatMessage, ToolCall } from "./llm-client.js";

/**
 * One JSON line per turn. Times in ms count from the end of the caller's speech (turn 0, the
 * greeting: from the answer); `turnDecidedMs` is when the hangover ended and the turn was sent on.
 */
export interface TurnTrace {
  turn: number;
  speechStart?: string;
  speechEnd?: string;
  speechMs?: number;
  turnDecidedMs?: number;
  /** A key press that made this turn. */
  dtmf?: string;
  /** The caller was silent: this turn is the agent's reprompt ("reprompt 1", …) or its goodbye. */
  idle?: string;
  audio?: string;
  /** The turn's WAV could not be written (the turn went on without it). */
  audioError?: string;
  stt?: { requestAt: string; responseMs: number; text: string; segments: unknown[]; dropped: unknown[]; verdict: string; error?: string };
  llm: Array<{ requestAt: string; requestMs: number; messages: ChatMessage[]; tools: string[]; firstTokenMs?: number; doneMs?: number; text: string; toolCalls: ToolCall[]; error?: string }>;
  toolResults: Array<{ name: string; arguments: unknown; ok: boolean; content: string }>;
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

/** A record as written. */
export type TraceRecord = Omit<TurnTrace, "t0">;

/** The record as written: in the order a reader follows a turn (speech → STT → LLM → tools → TTS → audio out). */
export function traceRecord(t: TurnTrace): TraceRecord {
  return {
    turn: t.turn,
    speechStart: t.speechStart,
    speechEnd: t.speechEnd,
    speechMs: t.speechMs,
    turnDecidedMs: t.turnDecidedMs,
    dtmf: t.dtmf,
    idle: t.idle,
    audio: t.audio,
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
  };
}

/** A call's trace file. */
export function traceFileOf(traceDir: string, callId: string): string {
  return join(traceDir, `${callFileName(callId)}.jsonl`);
}

/** The records of a call, in the order they were written (each once its reply was played or cut). */
export function readTrace(traceDir: string, callId: string): TraceRecord[] {
  return readFileSync(traceFileOf(traceDir, callId), "utf8").trim().split("\n").filter(Boolean).map((line) => JSON.parse(line) as TraceRecord);
}
