/**
 * What the voice pipeline's stages run on, as interfaces: the VAD, speech to text, the LLM, text
 * to speech and the clock. The running agent passes the real ones (libfvad, the faster-whisper
 * server, Ollama, espeak-ng/Piper, the process clock); the pipeline's unit tests pass doubles
 * on a fake clock, so every conversation behaviour is tested without network, audio tools or
 * waiting.
 */
import { chatStream, type ChatMessage, type ChatPart, type LlmConfig } from "./llm-client.js";
import { transcribe, type SttConfig, type SttResult } from "./stt-client.js";
import type { ToolSpec } from "./tools.js";
export type { FrameClassifier } from "./vad.js";
export type { TtsEngine, Speech } from "./tts.js";

/** Times in ms on one monotonic clock (performance.now() in the agent); dates for the records. */
export interface Clock {
  now(): number;
  date(): Date;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(timer: unknown): void;
}

export const processClock: Clock = {
  now: () => performance.now(),
  date: () => new Date(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout),
};

export interface SpeechToText {
  /** `wav`: the turn's audio (16 kHz mono WAV). Rejects with the cause; aborts with `signal`. */
  transcribe(wav: Uint8Array, signal: AbortSignal): Promise<SttResult>;
}

export interface ChatModel {
  /** One LLM round, streamed: text parts, tool calls, then "done". Aborts with `signal`. */
  chat(messages: ChatMessage[], tools: ToolSpec[], signal: AbortSignal): AsyncIterable<ChatPart>;
}

/** The faster-whisper server (speaches), OpenAI's transcription API. */
export class WhisperStt implements SpeechToText {
  constructor(readonly config: SttConfig) {}

  transcribe(wav: Uint8Array, signal: AbortSignal): Promise<SttResult> {
    return transcribe(wav, this.config, signal);
  }
}

/** Ollama's /api/chat through the official client. */
export class OllamaChat implements ChatModel {
  constructor(readonly config: LlmConfig) {}

  chat(messages: ChatMessage[], tools: ToolSpec[], signal: AbortSignal): AsyncIterable<ChatPart> {
    return chatStream(messages, tools, this.config, signal);
  }
}
