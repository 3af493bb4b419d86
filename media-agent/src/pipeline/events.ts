/**
 * What the voice pipeline's stages tell each other and the trace observer. Every event names its
 * turn (turn 0 is the greeting) and, where it is a moment, `at` on the pipeline's clock (ms).
 * The stages only emit; the trace observer (trace-observer.ts) turns the events into records,
 * so no stage holds trace code.
 */
import type { ChatMessage, ToolCall } from "./llm-client.js";
import type { SttSegment } from "./transcript-filter.js";

export type PipelineEvent =
  /** A turn begins: the caller's speech ended `decidedAfterMs` before `at`, a key, a silence or the greeting. */
  | {
      type: "turn";
      turn: number;
      /** When the caller's speech ended (turn 0: the answer; a key or silence: its moment). */
      at: number;
      date: Date;
      speech?: { speechMs: number; decidedAfterMs: number; durationMs: number; wav: Buffer };
      dtmf?: string;
      idle?: string;
      /** The TTS could not speak a clause of the turn before: this turn is the apology. */
      ttsFailed?: string;
    }
  | { type: "stt"; turn: number; requestAt: Date; responseMs: number; text: string; segments: SttSegment[]; dropped: unknown[]; verdict: string; error?: string }
  | { type: "llm-request"; turn: number; at: number; date: Date; messages: ChatMessage[]; tools: string[] }
  | { type: "llm-text"; turn: number; at: number; text: string }
  | { type: "llm-tool-calls"; turn: number; at: number; calls: ToolCall[] }
  | { type: "llm-done"; turn: number; at: number }
  | { type: "llm-error"; turn: number; error: string }
  | { type: "tool-result"; turn: number; at: number; name: string; arguments: unknown; ok: boolean; content: string }
  /** `clause`: the speaker's number for it, unique in the call. */
  | { type: "tts-request"; turn: number; clause: number; at: number; text: string; engine: string }
  | { type: "tts-first-audio"; turn: number; clause: number; at: number }
  | { type: "tts-done"; turn: number; clause: number; firstByteMs: number; synthesisMs: number }
  | { type: "tts-error"; turn: number; clause: number; error: string }
  /** A clause's first packet, and its first above −40 dBFS (clauses begin with silence). */
  | { type: "clause-started"; turn: number; clause: number; at: number }
  | { type: "clause-audible"; turn: number; clause: number; at: number }
  /** A clause left the queue played (or cut: then only what was played); `audio`: the frames sent. */
  | { type: "clause-played"; turn: number; clause: number; at: number; /** what was played of it, in pieces */ audio: Int16Array[] }
  /** Nothing left to play and playback not paused. */
  | { type: "playback-done"; at: number }
  /** The agent's voice starts or stops at the caller's ear (for barge-in). */
  | { type: "agent-speaking"; speaking: boolean; at: number }
  /** The caller spoke over `turn`'s reply (or a key was pressed): paused. */
  | { type: "barge-in"; turn: number; onsetAt: number; at: number; lastPacketAt: number; heard: string }
  | { type: "barge-in-outcome"; turn: number; outcome: string }
  /** `turn` was said over the agent and let its reply go on. */
  | { type: "reply-resumed"; turn: number; reason: string }
  /** The reply of `turn` was cut: only `heard` was said. */
  | { type: "reply-cut"; turn: number; heard: string }
  /** A turn is over: what the agent said for it. `superseded`: a newer turn or a key took over first. */
  | { type: "turn-end"; turn: number; spoken: string; superseded?: boolean }
  /** The call ended. */
  | { type: "closed"; at: number };

export type PipelineListener = (event: PipelineEvent) => void;

/** The pipeline's event bus: listeners in the order they were added, called at once. */
export class PipelineEvents {
  private readonly listeners: PipelineListener[] = [];

  on(listener: PipelineListener): void {
    this.listeners.push(listener);
  }

  readonly emit = (event: PipelineEvent): void => {
    for (const listener of this.listeners) listener(event);
  };
}
