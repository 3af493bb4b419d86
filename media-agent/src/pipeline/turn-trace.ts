/**
 * The turn trace: per call a JSON-lines file in AGENT_TRACE_DIR, one record per turn, with the
 * caller audio of each turn as a WAV beside it. README, "Reading a turn trace", explains a record.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { callFileName } from "../audio/frames.js";
import type { ChatMessage, ToolCall } from "./llm-client.js";

/** One JSON line per turn; times in ms are from the end of the caller's speech (turn 0: call start). */
export interface TurnTrace {
  turn: number;
  speechStart?: string;
  speechEnd?: string;
  speechMs?: number;
  audio?: string;
  stt?: { requestAt: string; responseMs: number; text: string; segments: unknown[]; dropped: unknown[]; verdict: string; error?: string };
  llm: Array<{ requestAt: string; messages: ChatMessage[]; tools: string[]; firstTokenMs?: number; doneMs?: number; text: string; toolCalls: ToolCall[]; error?: string }>;
  toolResults: Array<{ name: string; arguments: unknown; ok: boolean; content: string }>;
  tts: Array<{ text: string; engine: string; requestMs: number; synthesisMs?: number; error?: string }>;
  firstPacketOutMs?: number;
  /** The caller spoke over this turn's reply: onset → detection → last agent packet. */
  bargeIn?: { onsetMs: number; detectedMs: number; lastPacketMs: number; stopMs: number; heard: string; outcome?: string };
  /** This turn was spoken over the agent and let its reply go on. */
  resumedReply?: string;
  spoken?: string;
  /** The call ended (hang-up, transfer) before this turn was over. */
  endedWithCall?: boolean;
  /** performance.now() at the end of the caller's speech; not written. */
  t0: number;
}

/** A record as written. */
export type TraceRecord = Omit<TurnTrace, "t0">;

/** A call's trace file. */
export function traceFileOf(traceDir: string, callId: string): string {
  return join(traceDir, `${callFileName(callId)}.jsonl`);
}

/** The records of a call, in the order they were written (each once its reply was played or cut). */
export function readTrace(traceDir: string, callId: string): TraceRecord[] {
  return readFileSync(traceFileOf(traceDir, callId), "utf8").trim().split("\n").filter(Boolean).map((line) => JSON.parse(line) as TraceRecord);
}
