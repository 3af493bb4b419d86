/**
 * One call's conversation, as the call's audio (CallAudio): caller frames → VAD/turns → STT →
 * transcript filter → LLM (streaming, tools) → chunker → TTS → a playback queue the media
 * session drains one 20 ms frame at a time. Each turn runs under one AbortController: barge-in
 * empties the queue at once (the next frame is already silence) and aborts LLM and TTS.
 * Every turn leaves a trace record (JSON line) and its caller audio (WAV) beside it.
 */
import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CallAudio, CallControl, CallInfo } from "../audio/call-audio.js";
import { FRAME_MS, SAMPLE_RATE, type PcmFrame } from "../audio/frames.js";
import { toFrames, writeWav } from "../audio/wav.js";
import { BargeInDetector, heardText, type SpokenPiece } from "./barge-in.js";
import { SentenceChunker } from "./chunker.js";
import { chatStream, type ChatMessage, type LlmConfig, type ToolCall } from "./llm-client.js";
import { transcribe, type SttConfig } from "./stt-client.js";
import { runToolCall, type Tool, type ToolContext } from "./tools.js";
import { judgeTranscript, DEFAULT_THRESHOLDS } from "./transcript-filter.js";
import type { TtsEngine } from "./tts.js";
import { TurnDetector, type FrameClassifier, type TurnOptions } from "./vad.js";

export interface VoiceProfile {
  greeting: string;
  systemPrompt: string;
  language: string;
  stt: SttConfig;
  llm: LlmConfig;
  tts: TtsEngine;
  tools: Tool[];
  turns: TurnOptions;
  bargeIn: { minSpeechMs: number; echoGuardMs: number };
  /** Said when the LLM's first clause is later than fillerAfterMs. */
  filler: string;
  fillerAfterMs: number;
  askToRepeat: string;
  /** After this many unusable turns in a row: the fallback line (and the call goes on). */
  maxRepeats: number;
  fallback: string;
  apology: string;
  goodbye: string;
  maxToolRounds: number;
  traceDir: string;
}

interface QueuedPiece extends SpokenPiece {
  frames: PcmFrame[];
  played: number;
}

interface TurnTrace {
  turn: number;
  speechStart?: string;
  speechEnd?: string;
  speechMs?: number;
  audio?: string;
  stt?: { requestAt: string; responseMs: number; text: string; segments: unknown[]; dropped: unknown[]; verdict: string; error?: string };
  llm: Array<{ requestAt: string; messages: ChatMessage[]; tools: string[]; firstTokenMs?: number; doneMs?: number; text: string; toolCalls: ToolCall[]; error?: string }>;
  toolResults: Array<{ name: string; arguments: unknown; ok: boolean; content: string }>;
  tts: Array<{ text: string; engine: string; synthesisMs?: number; error?: string }>;
  firstPacketOutMs?: number;
  bargeIn?: { atMs: number; heard: string };
  spoken?: string;
}

export class VoicePipeline implements CallAudio {
  private readonly turns: TurnDetector;
  private readonly bargeIn: BargeInDetector;
  private readonly queue: QueuedPiece[] = [];
  /** Pieces of the current reply, for "what the caller heard". */
  private replyPieces: QueuedPiece[] = [];
  private readonly history: ChatMessage[];
  private turnAbort = new AbortController();
  private turnIndex = 0;
  private failures = 0;
  private frameCount = 0;
  private speaking = false;
  private current: TurnTrace | null = null;
  private replyStartedAtFrame: number | null = null;
  private closed = false;
  private readonly traceFile: string;

  constructor(
    private readonly call: CallInfo,
    private readonly control: CallControl,
    private readonly profile: VoiceProfile,
    private readonly vad: FrameClassifier,
  ) {
    this.turns = new TurnDetector(vad, profile.turns);
    this.bargeIn = new BargeInDetector(profile.bargeIn);
    this.history = [{ role: "system", content: profile.systemPrompt }];
    mkdirSync(profile.traceDir, { recursive: true });
    this.traceFile = join(profile.traceDir, `${safe(call.callId)}.jsonl`);
    // The business speaks first: the greeting is synthesised at once.
    this.current = this.newTrace();
    void this.say([profile.greeting], this.turnAbort.signal).then(() => this.finishTrace(profile.greeting));
    this.history.push({ role: "assistant", content: profile.greeting });
  }

  // ----- CallAudio

  onCallerFrame(frame: PcmFrame): void {
    this.frameCount++;
    const event = this.turns.push(frame);
    if (this.speaking && this.bargeIn.callerFrame(this.turns.lastWasSpeech) === "barge-in") this.interrupt();
    if (!event || event.type === "speech-start") return;
    if (this.speaking) return; // speech over the agent that did not barge in (echo, backchannel)
    void this.handleTurn(event.audio, event.speechMs);
  }

  nextAgentFrame(): PcmFrame | null {
    while (this.queue.length && this.queue[0].played >= this.queue[0].frames.length) this.queue.shift();
    const piece = this.queue[0];
    if (!piece) {
      if (this.speaking) {
        this.speaking = false;
        this.bargeIn.agentStopped();
      }
      return null;
    }
    if (!this.speaking) {
      this.speaking = true;
      this.bargeIn.agentStarted();
    }
    if (this.current && this.current.firstPacketOutMs === undefined && this.replyStartedAtFrame !== null) {
      this.current.firstPacketOutMs = (this.frameCount - this.replyStartedAtFrame) * FRAME_MS;
    }
    return piece.frames[piece.played++];
  }

  close(): void {
    this.closed = true;
    this.turnAbort.abort();
    this.queue.length = 0;
    this.vad.close?.();
  }

  // ----- turns

  private async handleTurn(audio: Int16Array, speechMs: number): Promise<void> {
    this.turnAbort.abort();
    this.turnAbort = new AbortController();
    const signal = this.turnAbort.signal;
    const trace = (this.current = this.newTrace());
    trace.speechMs = speechMs;
    trace.speechEnd = new Date().toISOString();
    trace.speechStart = new Date(Date.now() - audio.length / 16).toISOString();
    trace.audio = `${safe(this.call.callId)}-turn-${trace.turn}.wav`;
    writeFileSync(join(this.profile.traceDir, trace.audio), writeWav(audio, SAMPLE_RATE));
    this.replyStartedAtFrame = this.frameCount;

    const requestAt = new Date();
    let verdict;
    try {
      const result = await transcribe(audio, this.profile.stt, signal);
      verdict = judgeTranscript(result.segments, speechMs, DEFAULT_THRESHOLDS);
      trace.stt = { requestAt: requestAt.toISOString(), responseMs: result.requestMs, text: result.text, segments: result.segments, dropped: verdict.dropped, verdict: verdict.kind };
    } catch (err) {
      if (signal.aborted) return;
      trace.stt = { requestAt: requestAt.toISOString(), responseMs: Date.now() - requestAt.getTime(), text: "", segments: [], dropped: [], verdict: "error", error: String((err as Error).message) };
      await this.say([this.profile.apology], signal);
      return this.finishTrace(this.profile.apology);
    }
    if (verdict.kind === "ignore") return this.finishTrace("");
    if (verdict.kind === "ask-to-repeat") {
      this.failures++;
      const line = this.failures >= this.profile.maxRepeats ? this.profile.fallback : this.profile.askToRepeat;
      await this.say([line], signal);
      return this.finishTrace(line);
    }
    this.failures = 0;
    this.history.push({ role: "user", content: verdict.text });
    const reply = await this.respond(signal, trace);
    if (reply !== null) this.finishTrace(reply);
  }

  /** LLM rounds (tool calls in between) streamed into speech; returns what was said. */
  private async respond(signal: AbortSignal, trace: TurnTrace): Promise<string | null> {
    const chunker = new SentenceChunker();
    const spoken: string[] = [];
    const speaking: Array<Promise<void>> = [];
    const filler = setTimeout(() => {
      if (spoken.length === 0 && !signal.aborted) speaking.push(this.say([this.profile.filler], signal));
    }, this.profile.fillerAfterMs);
    try {
      for (let round = 0; round <= this.profile.maxToolRounds; round++) {
        const record: TurnTrace["llm"][number] = { requestAt: new Date().toISOString(), messages: [...this.history], tools: this.profile.tools.map((x) => x.spec.function.name), text: "", toolCalls: [] };
        trace.llm.push(record);
        const started = performance.now();
        const offerTools = round < this.profile.maxToolRounds ? this.profile.tools.map((x) => x.spec) : [];
        for await (const part of chatStream(this.history, offerTools, this.profile.llm, signal)) {
          record.firstTokenMs ??= performance.now() - started;
          if (part.type === "text") {
            record.text += part.text;
            for (const piece of chunker.push(part.text)) {
              spoken.push(piece);
              speaking.push(this.say([piece], signal));
            }
          } else if (part.type === "tool_calls") record.toolCalls.push(...part.calls);
          else record.doneMs = performance.now() - started;
        }
        if (record.toolCalls.length === 0) break;
        this.history.push({ role: "assistant", content: record.text, tool_calls: record.toolCalls });
        for (const call of record.toolCalls) {
          const result = await runToolCall(call, this.profile.tools, this.toolContext(signal));
          trace.toolResults.push({ name: call.function.name, arguments: call.function.arguments, ok: result.ok, content: result.content });
          this.history.push({ role: "tool", tool_name: result.name, content: result.content });
        }
      }
      for (const piece of chunker.flush()) {
        spoken.push(piece);
        speaking.push(this.say([piece], signal));
      }
      await Promise.all(speaking);
    } catch (err) {
      if (signal.aborted) return null;
      const last = trace.llm[trace.llm.length - 1];
      if (last) last.error = String((err as Error).message);
      await this.say([this.profile.apology], signal);
      spoken.push(this.profile.apology);
    } finally {
      clearTimeout(filler);
    }
    const text = spoken.join(" ");
    if (!signal.aborted) this.history.push({ role: "assistant", content: text });
    return text;
  }

  private toolContext(signal: AbortSignal): ToolContext {
    return {
      signal,
      now: () => new Date(),
      endCall: (reason: string) => {
        // Say goodbye, then hang up once it has been played.
        void this.say([this.profile.goodbye], signal).then(() => this.afterPlayback(() => this.control.hangUp(`end_call: ${reason}`)));
      },
      transfer: async (target: string) => `transfer to ${target} is not available on this line`,
    };
  }

  /** Synthesises the pieces in order and queues them; failures are traced, never thrown. */
  private async say(texts: string[], signal: AbortSignal): Promise<void> {
    for (const text of texts) {
      const entry: TurnTrace["tts"][number] = { text, engine: this.profile.tts.name };
      this.current?.tts.push(entry);
      try {
        const speech = await this.profile.tts.synthesize(text, signal);
        entry.synthesisMs = Math.round(speech.synthesisMs);
        if (signal.aborted || this.closed) return;
        const piece: QueuedPiece = { text, frames: toFrames(speech.samples), played: 0, durationMs: (speech.samples.length / SAMPLE_RATE) * 1000 };
        if (this.queue.length === 0) this.replyPieces = [];
        this.queue.push(piece);
        this.replyPieces.push(piece);
      } catch (err) {
        if (signal.aborted) return;
        entry.error = String((err as Error).message);
      }
    }
  }

  private afterPlayback(fn: () => void): void {
    const check = () => (this.queue.length === 0 || this.closed ? fn() : setTimeout(check, FRAME_MS));
    check();
  }

  /** Barge-in: silence from the next frame on, the turn's requests aborted, only the heard words kept. */
  private interrupt(): void {
    const playedMs = this.replyPieces.reduce((ms, p) => ms + p.played * FRAME_MS, 0);
    const heard = heardText(this.replyPieces, playedMs);
    this.queue.length = 0;
    this.speaking = false;
    this.turnAbort.abort();
    this.turnAbort = new AbortController();
    const last = this.history[this.history.length - 1];
    if (last?.role === "assistant") last.content = heard;
    else this.history.push({ role: "assistant", content: heard });
    if (this.current) {
      this.current.bargeIn = { atMs: this.frameCount * FRAME_MS, heard };
      this.finishTrace(heard);
    }
  }

  private newTrace(): TurnTrace {
    return { turn: this.turnIndex++, llm: [], toolResults: [], tts: [] };
  }

  /** The record is written once its reply has been played (or cut), so it holds the first-packet time. */
  private finishTrace(spoken: string): void {
    const trace = this.current;
    if (!trace || trace.spoken !== undefined) return;
    trace.spoken = spoken;
    this.afterPlayback(() => appendFileSync(this.traceFile, `${JSON.stringify(trace)}\n`));
  }
}

function safe(callId: string): string {
  return callId.replace(/[^A-Za-z0-9._-]/g, "_");
}
