/**
 * The voice pipeline's engines as doubles on a fake clock, for unit tests in fake time: no
 * network, no audio tools, no waiting. The caller's "speech" is frames of one sample value per
 * utterance (the VAD double calls any non-zero frame speech), so the STT double recognises which
 * utterance it was sent, as the HTTP double does by correlation. The TTS double's audio is frames
 * of one value per clause, so the test reads back which clause each frame the agent sent belongs
 * to. The LLM double plays a script of rounds (text, tool calls, delays, failures) and keeps what
 * it was sent.
 */
import { FRAME_SAMPLES, type PcmFrame } from "../../media-agent/src/audio/frames.js";
import type { ChatModel, Clock, FrameClassifier, SpeechToText, TtsEngine } from "../../media-agent/src/pipeline/engines.js";
import type { ChatMessage, ChatPart, ToolCall } from "../../media-agent/src/pipeline/llm-client.js";
import type { SttResult } from "../../media-agent/src/pipeline/stt-client.js";
import type { ToolSpec } from "../../media-agent/src/pipeline/tools.js";

export class FakeClock implements Clock {
  private t = 0;
  private nextId = 1;
  private timers: Array<{ id: number; at: number; fn: () => void }> = [];
  private readonly epoch = Date.parse("2026-12-02T10:00:00.000Z");

  now(): number {
    return this.t;
  }

  date(): Date {
    return new Date(this.epoch + this.t);
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.push({ id, at: this.t + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(timer: unknown): void {
    this.timers = this.timers.filter((x) => x.id !== timer);
  }

  /** Resolves after `ms` of fake time; rejects with an AbortError when `signal` aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((done, fail) => {
      if (signal?.aborted) return fail(abortError());
      const timer = this.setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        done();
      }, ms);
      const onAbort = () => {
        this.clearTimeout(timer);
        fail(abortError());
      };
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Moves time on, running each timer at its own moment and letting the promises it settles run. */
  async advance(ms: number): Promise<void> {
    const until = this.t + ms;
    for (;;) {
      const due = this.timers.filter((x) => x.at <= until).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.timers = this.timers.filter((x) => x !== due);
      this.t = due.at;
      due.fn();
      await settle();
    }
    this.t = until;
    await settle();
  }
}

function abortError(): Error {
  return Object.assign(new Error("This operation was aborted"), { name: "AbortError" });
}

/** Lets every promise that can settle now settle. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 4; i++) await new Promise((done) => setImmediate(done));
}

/** Any non-zero frame is speech. */
export const vadDouble: FrameClassifier = { isSpeech: (frame) => frame.some((s) => s !== 0) };

export interface Utterance {
  /** What the STT double answers for it. */
  text: string;
  /** Segment confidences (defaults: a clear sentence). */
  segment?: { avg_logprob?: number; no_speech_prob?: number; compression_ratio?: number };
}

/** The STT double: recognises the utterance by its sample value; `delayMs` per request; `fail` makes it answer with an error. */
export class SttDouble implements SpeechToText {
  readonly requests: string[] = [];
  /** Requests the agent dropped before their answer. */
  aborted = 0;
  delayMs = 150;
  fail: string | null = null;

  constructor(
    private readonly clock: FakeClock,
    private readonly utterances: Utterance[],
  ) {}

  async transcribe(wav: Uint8Array, signal: AbortSignal): Promise<SttResult> {
    const samples = new Int16Array(wav.buffer.slice(wav.byteOffset + 44, wav.byteOffset + wav.byteLength));
    const value = samples.find((s) => s !== 0) ?? 0;
    const utterance = this.utterances[value - UTTERANCE_BASE];
    this.requests.push(utterance?.text ?? "");
    await this.clock.sleep(this.delayMs, signal).catch((err: Error) => {
      this.aborted++;
      throw err;
    });
    if (this.fail) throw new Error(this.fail);
    const duration = samples.length / 16000;
    const text = utterance?.text ?? "";
    const segments = text
      ? [{ start: 0, end: duration, text, avg_logprob: -0.2, compression_ratio: 1.2, no_speech_prob: 0.01, ...utterance.segment }]
      : [];
    return { text, language: "en", duration, segments, requestMs: this.delayMs };
  }
}

/** Sample values of the caller's utterances: utterance k is UTTERANCE_BASE + k. */
const UTTERANCE_BASE = 1000;

/** The caller's audio as frames: utterance k for `ms`, or silence. */
export type CallerPart = { say: number; ms: number } | { silenceMs: number };

export function callerFrames(parts: CallerPart[]): PcmFrame[] {
  const frames: PcmFrame[] = [];
  for (const part of parts) {
    const count = ("say" in part ? part.ms : part.silenceMs) / 20;
    for (let i = 0; i < count; i++) frames.push(new Int16Array(FRAME_SAMPLES).fill("say" in part ? UTTERANCE_BASE + part.say : 0));
  }
  return frames;
}

export interface LlmRound {
  text?: string;
  toolCalls?: ToolCall[];
  /** Before the first part (default 100 ms). */
  firstTokenDelayMs?: number;
  /** Between words (default 20 ms). */
  wordDelayMs?: number;
  /** The round fails with this error after its first-token delay. */
  error?: string;
}

/** The LLM double: one script round per request; what it was sent is kept. */
export class LlmDouble implements ChatModel {
  readonly requests: Array<{ messages: ChatMessage[]; tools: string[] }> = [];

  constructor(
    private readonly clock: FakeClock,
    private readonly script: LlmRound[],
  ) {}

  async *chat(messages: ChatMessage[], tools: ToolSpec[], signal: AbortSignal): AsyncIterable<ChatPart> {
    this.requests.push({ messages: messages.map((m) => ({ ...m })), tools: tools.map((x) => x.function.name) });
    const round = this.script[this.requests.length - 1];
    if (!round) throw new Error(`LLM double: no script round ${this.requests.length}`);
    await this.clock.sleep(round.firstTokenDelayMs ?? 100, signal);
    if (round.error) throw new Error(round.error);
    const words = (round.text ?? "").split(/(?<= )/).filter(Boolean);
    for (let i = 0; i < words.length; i++) {
      if (i > 0) await this.clock.sleep(round.wordDelayMs ?? 20, signal);
      yield { type: "text", text: words[i] };
    }
    if (round.toolCalls) yield { type: "tool_calls", calls: round.toolCalls };
    yield { type: "done", stats: { totalMs: 0, loadMs: 0, evalCount: words.length } };
  }
}

/**
 * The TTS double: each clause is 2 frames of silence, then 100 ms per word of frames holding the
 * clause's number (textOf reads it back). Its first audio comes after `firstAudioMs`, the rest
 * after `restMs` (streamed), unless `delays` names the clause.
 */
export class TtsDouble implements TtsEngine {
  readonly name = "tts-double";
  readonly requests: string[] = [];
  firstAudioMs = 60;
  restMs = 40;
  /** Silent frames after each clause's words (espeak-ng ends a clause with ~0.33 s of silence). */
  trailingFrames = 0;
  /** Per clause text: extra time before it is done (a slow clause). */
  readonly delays: Record<string, number> = {};
  /** Every request fails with this error after firstAudioMs (a TTS that went down). */
  fail: string | null = null;
  private readonly texts: string[] = [];

  constructor(private readonly clock: FakeClock) {}

  async synthesize(text: string, signal: AbortSignal, onAudio?: (samples: Int16Array) => void) {
    this.requests.push(text);
    const value = CLAUSE_BASE + this.texts.push(text) - 1;
    const words = text.split(/\s+/).filter(Boolean).length;
    const samples = new Int16Array((2 + 5 * words + this.trailingFrames) * FRAME_SAMPLES).fill(value, 2 * FRAME_SAMPLES, (2 + 5 * words) * FRAME_SAMPLES);
    const half = Math.floor(samples.length / FRAME_SAMPLES / 2) * FRAME_SAMPLES;
    await this.clock.sleep(this.firstAudioMs, signal);
    if (this.fail !== null) throw new Error(this.fail);
    const slow = this.delays[text];
    if (slow !== undefined) await this.clock.sleep(slow, signal);
    else onAudio?.(samples.subarray(0, half));
    await this.clock.sleep(this.restMs, signal);
    if (slow === undefined) onAudio?.(samples.subarray(half));
    return { samples, firstByteMs: this.firstAudioMs, synthesisMs: this.firstAudioMs + this.restMs + (slow ?? 0) };
  }

  /** The clause a frame belongs to; "" for its leading silence, null for no packet. */
  textOf(frame: PcmFrame | null): string | null {
    if (!frame) return null;
    const value = frame.find((s) => s !== 0);
    return value === undefined ? "" : (this.texts[value - CLAUSE_BASE] ?? "?");
  }
}

const CLAUSE_BASE = 5000;
