/**
 * One call's conversation, as the call's audio (CallAudio): caller frames → VAD/turns → STT →
 * transcript filter → LLM (streaming, tools) → chunker → TTS → a playback queue the media
 * session drains one 20 ms frame at a time. Each turn runs under one AbortController.
 * Barge-in pauses playback at once (the next frame is already silence); when the caller's words
 * are transcribed, a backchannel or noise lets the reply go on, anything else ends it: the queue
 * is emptied, the reply's LLM and TTS requests are aborted and only the heard words stay in the
 * conversation. Every turn leaves a trace record (JSON line) and its caller audio (WAV) beside it.
 */
import { appendFileSync, mkdirSync, writeFile } from "node:fs";
import { join } from "node:path";
import type { CallAudio, CallControl, CallInfo, TransferResult } from "../audio/call-audio.js";
import { callFileName, FRAME_MS, SAMPLE_RATE, type PcmFrame } from "../audio/frames.js";
import { toFrames, writeWav } from "../audio/wav.js";
import { BargeInDetector, heardText, isBackchannel, type SpokenPiece } from "./barge-in.js";
import { SentenceChunker } from "./chunker.js";
import { chatStream, type ChatMessage, type LlmConfig } from "./llm-client.js";
import { transcribe, type SttConfig, type SttResult } from "./stt-client.js";
import { runToolCall, type Tool, type ToolContext } from "./tools.js";
import { judgeTranscript, type FilterThresholds, type TranscriptVerdict } from "./transcript-filter.js";
import type { TtsEngine } from "./tts.js";
import { traceFileOf, traceRecord, type TurnTrace } from "./turn-trace.js";
import { TurnDetector, type FrameClassifier, type TurnEvent, type TurnOptions } from "./vad.js";

/** What a key press or the fallback can do without the LLM. */
export type CallAction = "end-call" | "transfer";

export interface VoiceProfile {
  greeting: string;
  systemPrompt: string;
  language: string;
  stt: SttConfig;
  llm: LlmConfig;
  tts: TtsEngine;
  tools: Tool[];
  turns: TurnOptions;
  bargeIn: { minSpeechMs: number; echoGuardMs: number; backchannels: string[] };
  transcriptFilter: FilterThresholds;
  /** Said when the LLM's first clause is later than fillerAfterMs. */
  filler: string;
  fillerAfterMs: number;
  askToRepeat: string;
  /** After this many unusable turns in a row: the fallback line, then fallbackAction. */
  maxRepeats: number;
  fallback: string;
  fallbackAction: "continue" | CallAction;
  /** Keys the caller may press (RFC 4733), e.g. {"0": "transfer"}: offered in the fallback line. */
  dtmf: Record<string, CallAction>;
  apology: string;
  goodbye: string;
  /** Caller silence once the agent has finished speaking (and no turn is being worked on). */
  idle: { repromptAfterMs: number; maxReprompts: number; reprompt: string };
  maxToolRounds: number;
  toolTimeoutMs: number;
  /** Who transfer_call (and a transfer key or fallback) connects the caller to. */
  transfer: { target: string; ringTimeoutMs: number; announcement: string; unavailable: string } | null;
  traceDir: string;
}

/**
 * A clause in the playback queue. Its place is taken when it is sent to the TTS, so clauses
 * synthesised in parallel still play in order. It plays from its first frame on, while the engine
 * is still synthesising the rest: the caller hears the first clause sooner.
 */
interface QueuedPiece extends SpokenPiece {
  /** Its audio so far: frames arrive while the engine still synthesises (streamed). */
  frames: PcmFrame[];
  played: number;
  /** Synthesis is over (or failed): when played to the end, the next piece follows. */
  done: boolean;
  trace: TurnTrace;
}

interface Paused {
  heard: string;
  trace: TurnTrace;
}

type Recognised = { kind: "verdict"; verdict: TranscriptVerdict } | { kind: "error" } | { kind: "aborted" };

/** The turn so far, sent to the STT when the caller paused (turns.sttAfterMs). */
interface EarlyStt {
  pauseId: number;
  speechMs: number;
  wav: Buffer;
  requestAt: Date;
  result: Promise<SttResult>;
  abort: AbortController;
}

/** −40 dBFS: the first frame a caller would hear, not the clause's leading silence. */
const AUDIBLE = 328;

function isAudible(frame: PcmFrame): boolean {
  for (let i = 0; i < frame.length; i++) if (frame[i] > AUDIBLE || frame[i] < -AUDIBLE) return true;
  return false;
}

export class VoicePipeline implements CallAudio {
  private readonly turns: TurnDetector;
  private readonly bargeIn: BargeInDetector;
  private readonly queue: QueuedPiece[] = [];
  /** Pieces of the current reply, for "what the caller heard". */
  private replyPieces: QueuedPiece[] = [];
  private readonly history: ChatMessage[];
  private turnAbort = new AbortController();
  /** The turn spoken over the agent, while it is decided whether it barged in. */
  private interruptionAbort: AbortController | null = null;
  private turnIndex = 0;
  private failures = 0;
  private speaking = false;
  private paused: Paused | null = null;
  /** Set by the end_call tool: the reply ends with the goodbye, then the call. */
  private endingReason: string | null = null;
  private lastAudioOutAt = 0;
  private closed = false;
  /** Turns, key actions and reprompts being worked on: the agent is not waiting for the caller. */
  private turnsInProgress = 0;
  /** Since when (performance.now()) the agent has been waiting for the caller; null: it is not. */
  private waitingSince: number | null = null;
  /** Reprompts since the caller last said something. */
  private reprompts = 0;
  /** The goodbye for a silent caller is on its way: no more reprompts. */
  private hangingUp = false;
  /** The STT request of the caller's last pause; the turn's own when the turn ends in that pause. */
  private early: EarlyStt | null = null;
  private readonly traceFile: string;
  /** Finished turns whose reply is still playing. */
  private readonly unwritten = new Set<TurnTrace>();
  /** Records finished before an earlier turn's: written after it, so the file is in turn order. */
  private readonly written = new Map<number, TurnTrace>();
  private nextRecord = 0;

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
    this.traceFile = traceFileOf(profile.traceDir, call.callId);
    // The business speaks first: the greeting is synthesised at once.
    const greeting = this.newTrace();
    void this.sayAndFinish(profile.greeting, greeting, this.turnAbort.signal);
    this.history.push({ role: "assistant", content: profile.greeting });
  }

  // ----- CallAudio

  onCallerFrame(frame: PcmFrame): void {
    const event = this.turns.push(frame);
    if (this.speaking && !this.paused && this.bargeIn.callerFrame(this.turns.lastWasSpeech) === "barge-in") this.pause();
    if (event?.type === "pause") {
      if (this.speechIsTurn) this.sendEarly(event.id, event.audio, event.speechMs);
    } else if (event?.type === "turn") this.onTurn(event);
    this.checkSilence();
  }

  /**
   * Whether the caller's speech now makes a turn: an interruption (the agent paused for it), or
   * speech to a silent agent. Speech over the agent that did not barge in (echo, a short
   * backchannel) does not.
   */
  private get speechIsTurn(): boolean {
    return this.paused !== null || !this.speaking;
  }

  /** Runs a turn, key action or reprompt, counted as work in progress (no idle reprompt meanwhile). */
  private async working(work: () => Promise<void>): Promise<void> {
    this.turnsInProgress++;
    try {
      await work();
    } finally {
      this.turnsInProgress--;
    }
  }

  private onTurn(event: Extract<TurnEvent, { type: "turn" }>): void {
    if (this.paused) void this.working(() => this.handleInterruption(event.audio, event.speechMs, event.silenceMs));
    else if (this.speechIsTurn) void this.working(() => this.handleTurn(event.audio, event.speechMs, event.silenceMs));
  }

  /** The STT starts on the turn so far; a newer pause or the end of the call drops it. */
  private sendEarly(pauseId: number, audio: Int16Array, speechMs: number): void {
    this.early?.abort.abort();
    const abort = new AbortController();
    const wav = writeWav(audio, SAMPLE_RATE);
    const result = transcribe(wav, this.profile.stt, abort.signal);
    const early: EarlyStt = { pauseId, speechMs, wav, requestAt: new Date(), result, abort };
    this.early = early;
    // Awaited (and errors reported) by the turn that takes it; here only a look at the text.
    result.then((r) => this.onEarlyTranscript(early, r), () => undefined);
  }

  /**
   * The end of a turn is decided before the hangover has passed when the caller is still silent
   * in the pause whose transcript came back, and it is a usable sentence that ends like one
   * (Whisper punctuates): a caller who goes on after all is a barge-in. Otherwise the hangover
   * decides as usual.
   */
  private onEarlyTranscript(early: EarlyStt, result: SttResult): void {
    if (this.early !== early || this.closed || this.turns.openPause !== early.pauseId || !this.speechIsTurn) return;
    if (!/[.?!]["')\]]*$/.test(result.text.trim())) return;
    if (judgeTranscript(result.segments, early.speechMs, this.profile.transcriptFilter).kind !== "use") return;
    const event = this.turns.endTurnNow();
    if (event) this.onTurn(event);
  }

  /** The last pause's STT request, which is the ending turn's (the same silence ended it). */
  private takeEarly(): EarlyStt | null {
    const early = this.early;
    this.early = null;
    return early;
  }

  /**
   * Counted on the caller's frames (the frame clock), so a call whose caller sends nothing is
   * left to the RTP timeout. Waiting means: nothing to play or being synthesised, no turn being
   * worked on, the caller not in a turn.
   */
  private checkSilence(): void {
    const waiting = this.turnsInProgress === 0 && this.queue.length === 0 && !this.paused && !this.turns.inTurn && !this.hangingUp && !this.closed;
    if (!waiting) {
      this.waitingSince = null;
      return;
    }
    const now = performance.now();
    if (this.waitingSince === null) this.waitingSince = now;
    else if (now - this.waitingSince >= this.profile.idle.repromptAfterMs) {
      this.waitingSince = null;
      void this.working(() => this.onCallerSilent());
    }
  }

  /** A reprompt, or after idle.maxReprompts of them the goodbye and the BYE. */
  private async onCallerSilent(): Promise<void> {
    const { maxReprompts, reprompt } = this.profile.idle;
    const trace = this.newTrace();
    const signal = this.turnAbort.signal; // the caller speaking takes the turn and aborts this
    if (this.reprompts < maxReprompts) {
      this.reprompts++;
      trace.idle = `reprompt ${this.reprompts}`;
      this.history.push({ role: "assistant", content: reprompt });
      return this.sayAndFinish(reprompt, trace, signal);
    }
    trace.idle = "goodbye";
    this.hangingUp = true;
    await this.sayAndFinish(this.profile.goodbye, trace, signal);
    // The caller may still speak up during the goodbye: then the call goes on.
    this.afterPlayback(() => {
      if (signal.aborted) this.hangingUp = false;
      else this.control.hangUp(`caller silent after ${maxReprompts} reprompts: goodbye`);
    });
  }

  /** A key the profile maps takes the turn, like speech that barges in; other keys are traced only. */
  onDtmf(digit: string): void {
    const action = this.profile.dtmf[digit];
    const trace = this.newTrace();
    trace.dtmf = digit;
    if (!action) return this.finishTrace(trace, "");
    if (this.speaking && !this.paused) this.pause(0);
    if (this.paused) {
      this.paused.trace.bargeIn!.outcome = `reply stopped by DTMF ${digit}`;
      this.stopReply(this.paused);
    } else this.turnAbort.abort();
    this.turnAbort = new AbortController();
    this.reprompts = 0;
    const signal = this.turnAbort.signal;
    void this.working(() => this.act(action, trace, signal));
  }

  nextAgentFrame(): PcmFrame | null {
    if (this.paused) return null;
    while (this.queue.length && this.queue[0].done && this.queue[0].played >= this.queue[0].frames.length) this.queue.shift();
    const piece = this.queue[0];
    if (!piece || piece.played >= piece.frames.length) {
      // Nothing to play yet. A clause that has begun and whose next frames are still being
      // synthesised is a moment's underrun, not the end of the agent's speech.
      if (this.speaking && (!piece || piece.played === 0)) {
        this.speaking = false;
        this.bargeIn.agentStopped();
      }
      return null;
    }
    if (!this.speaking) {
      this.speaking = true;
      this.bargeIn.agentStarted();
    }
    this.lastAudioOutAt = performance.now();
    const frame = piece.frames[piece.played++];
    const trace = piece.trace;
    trace.firstPacketOutMs ??= Math.round(this.lastAudioOutAt - trace.t0);
    if (trace.firstAudibleOutMs === undefined && isAudible(frame)) trace.firstAudibleOutMs = Math.round(this.lastAudioOutAt - trace.t0);
    return frame;
  }

  close(): void {
    this.closed = true;
    // Records waiting for their playback are written now: the call's end is their end.
    for (const trace of [...this.unwritten]) this.writeTrace(trace);
    this.flushRecords(true);
    this.turnAbort.abort();
    this.interruptionAbort?.abort();
    this.early?.abort.abort();
    this.queue.length = 0;
    this.vad.close?.();
  }

  // ----- turns

  private async handleTurn(audio: Int16Array, speechMs: number, silenceMs: number): Promise<void> {
    // A new turn before the last reply began to play makes that reply obsolete.
    this.turnAbort.abort();
    this.queue.length = 0;
    this.turnAbort = new AbortController();
    const signal = this.turnAbort.signal;
    const early = this.takeEarly();
    const [trace, wav] = this.startTurn(audio, speechMs, silenceMs, early);
    const recognised = await this.recognise(wav, speechMs, trace, signal, early);
    await this.answer(recognised, trace, signal);
  }

  /** Speech that paused the agent: a backchannel or noise lets the reply go on, anything else takes the turn. */
  private async handleInterruption(audio: Int16Array, speechMs: number, silenceMs: number): Promise<void> {
    const paused = this.paused!;
    const next = (this.interruptionAbort = new AbortController());
    const early = this.takeEarly();
    const [trace, wav] = this.startTurn(audio, speechMs, silenceMs, early);
    const recognised = await this.recognise(wav, speechMs, trace, next.signal, early);
    this.interruptionAbort = null;
    if (recognised.kind === "aborted" || this.closed) return this.abandonTurn(trace, "");
    if (this.paused !== paused) return this.finishTrace(trace, ""); // a key press took the turn meanwhile
    const goOn = this.goesOn(recognised);
    if (goOn) {
      paused.trace.bargeIn!.outcome = `reply went on: ${goOn}`;
      trace.resumedReply = goOn;
      this.paused = null;
      this.finishTrace(trace, "");
      return;
    }
    paused.trace.bargeIn!.outcome = "reply stopped";
    this.stopReply(paused);
    this.turnAbort = next;
    await this.answer(recognised, trace, next.signal);
  }

  private goesOn(recognised: Recognised): string | null {
    if (recognised.kind !== "verdict") return null;
    const { verdict } = recognised;
    if (verdict.kind === "ignore") return "no speech";
    if (verdict.kind === "use" && isBackchannel(verdict.text, this.profile.bargeIn.backchannels)) return `backchannel '${verdict.text}'`;
    return null;
  }

  /**
   * The turn was decided now, silenceMs after the caller's last speech frame (the hangover, or
   * less when the early transcript decided it). Its audio becomes
   * one WAV, sent to the STT and kept beside the trace; written asynchronously, because turns of
   * many calls can end in the same tick and the frame clock must not wait for the disk.
   */
  private startTurn(audio: Int16Array, speechMs: number, silenceMs: number, early: EarlyStt | null): [TurnTrace, Buffer] {
    const trace = this.newTrace(performance.now() - silenceMs);
    trace.speechMs = speechMs;
    trace.turnDecidedMs = silenceMs;
    trace.speechEnd = new Date(Date.now() - silenceMs).toISOString();
    trace.speechStart = new Date(Date.now() - silenceMs - (audio.length / SAMPLE_RATE) * 1000).toISOString();
    trace.audio = `${callFileName(this.call.callId)}-turn-${trace.turn}.wav`;
    // What the STT got: with an early request, the turn up to the pause.
    const wav = early?.wav ?? writeWav(audio, SAMPLE_RATE);
    writeFile(join(this.profile.traceDir, trace.audio), wav, (err) => {
      if (err) trace.audioError = err.message;
    });
    return [trace, wav];
  }

  private async recognise(wav: Buffer, speechMs: number, trace: TurnTrace, signal: AbortSignal, early: EarlyStt | null): Promise<Recognised> {
    const requestAt = early?.requestAt ?? new Date();
    try {
      let pending: Promise<SttResult>;
      if (early) {
        // The turn's end (a new turn, the call's end) aborts the early request as its own.
        if (signal.aborted) early.abort.abort();
        else signal.addEventListener("abort", () => early.abort.abort(), { once: true });
        pending = early.result;
      } else pending = transcribe(wav, this.profile.stt, signal);
      const result = await pending;
      const verdict = judgeTranscript(result.segments, speechMs, this.profile.transcriptFilter);
      trace.stt = { requestAt: requestAt.toISOString(), responseMs: Math.round(result.requestMs), text: result.text, segments: result.segments, dropped: verdict.dropped, verdict: verdict.kind };
      return { kind: "verdict", verdict };
    } catch (err) {
      if (signal.aborted) return { kind: "aborted" };
      trace.stt = { requestAt: requestAt.toISOString(), responseMs: Date.now() - requestAt.getTime(), text: "", segments: [], dropped: [], verdict: "error", error: String((err as Error).message) };
      return { kind: "error" };
    }
  }

  private async answer(recognised: Recognised, trace: TurnTrace, signal: AbortSignal): Promise<void> {
    if (recognised.kind === "aborted") return this.abandonTurn(trace, "");
    if (recognised.kind === "error") return this.sayAndFinish(this.profile.apology, trace, signal);
    const { verdict } = recognised;
    if (verdict.kind === "ignore") return this.finishTrace(trace, "");
    this.reprompts = 0; // the caller is there
    if (verdict.kind === "ask-to-repeat") {
      this.failures++;
      if (this.failures < this.profile.maxRepeats) return this.sayAndFinish(this.profile.askToRepeat, trace, signal);
      this.failures = 0;
      await this.sayAndFinish(this.profile.fallback, trace, signal);
      if (this.profile.fallbackAction !== "continue") await this.act(this.profile.fallbackAction, trace, signal);
      return;
    }
    this.failures = 0;
    this.history.push({ role: "user", content: verdict.text });
    const reply = await this.respond(signal, trace);
    if (reply !== null) this.finishTrace(trace, reply);
  }

  private async sayAndFinish(line: string, trace: TurnTrace, signal: AbortSignal): Promise<void> {
    await this.say(line, signal, trace);
    this.finishTrace(trace, line);
  }

  /** LLM rounds (tool calls in between) streamed into speech; returns what was said. */
  private async respond(signal: AbortSignal, trace: TurnTrace): Promise<string | null> {
    const chunker = new SentenceChunker();
    const spoken: string[] = [];
    const speaking: Array<Promise<void>> = [];
    const sayPiece = (piece: string) => {
      spoken.push(piece);
      speaking.push(this.say(piece, signal, trace));
    };
    // Timed from the end of the caller's speech (trace.t0), as the caller counts the wait: the
    // hangover and the STT have already taken part of it.
    const filler = setTimeout(() => {
      if (trace.tts.length === 0 && !signal.aborted) speaking.push(this.say(this.profile.filler, signal, trace));
    }, Math.max(0, this.profile.fillerAfterMs - (performance.now() - trace.t0)));
    try {
      for (let round = 0; round <= this.profile.maxToolRounds; round++) {
        const offerTools = round < this.profile.maxToolRounds ? this.profile.tools.map((x) => x.spec) : [];
        const record: TurnTrace["llm"][number] = {
          requestAt: new Date().toISOString(),
          requestMs: Math.round(performance.now() - trace.t0),
          messages: [...this.history],
          tools: offerTools.map((x) => x.function.name),
          text: "",
          toolCalls: [],
        };
        trace.llm.push(record);
        const started = performance.now();
        for await (const part of chatStream(this.history, offerTools, this.profile.llm, signal)) {
          record.firstTokenMs ??= Math.round(performance.now() - started);
          if (part.type === "text") {
            record.text += part.text;
            chunker.push(part.text).forEach(sayPiece);
          } else if (part.type === "tool_calls") record.toolCalls.push(...part.calls);
          else record.doneMs = Math.round(performance.now() - started);
        }
        if (record.toolCalls.length === 0) break;
        this.history.push({ role: "assistant", content: record.text, tool_calls: record.toolCalls });
        for (const call of record.toolCalls) {
          const result = await runToolCall(call, this.profile.tools, this.toolContext(signal, trace), this.profile.toolTimeoutMs);
          trace.toolResults.push({ name: call.function.name, arguments: call.function.arguments, ok: result.ok, content: result.content, atMs: Math.round(performance.now() - trace.t0) });
          this.history.push({ role: "tool", tool_name: result.name, content: result.content });
        }
        if (this.endingReason) break; // end_call: the goodbye is the profile's, no further LLM round
      }
      chunker.flush().forEach(sayPiece);
      if (this.endingReason) sayPiece(this.profile.goodbye);
      await Promise.all(speaking);
      const reason = this.endingReason;
      if (reason) this.afterPlayback(() => this.control.hangUp(`end_call: ${reason}`));
    } catch (err) {
      if (signal.aborted) {
        // Cut by a barge-in (its record is written already), superseded, or the call ended.
        this.abandonTurn(trace, spoken.join(" "));
        return null;
      }
      const last = trace.llm[trace.llm.length - 1];
      if (last) last.error = String((err as Error).message);
      await this.say(this.profile.apology, signal, trace);
      spoken.push(this.profile.apology);
    } finally {
      clearTimeout(filler);
    }
    const text = spoken.join(" ");
    if (!signal.aborted) this.history.push({ role: "assistant", content: text });
    return text;
  }

  private toolContext(signal: AbortSignal, trace: TurnTrace): ToolContext {
    return {
      signal,
      now: () => new Date(),
      // The goodbye is said once the tool round is over; the BYE goes when it has been played.
      endCall: (reason: string) => void (this.endingReason = reason),
      transfer: () => this.transferForModel(signal, trace),
    };
  }

  /**
   * A transfer: the announcement is played in full, then the person's phone rings; once they
   * answer, the agent joins the calls and closes this pipeline. null: not started.
   */
  private async transfer(signal: AbortSignal, trace: TurnTrace): Promise<TransferResult | null> {
    const settings = this.profile.transfer;
    if (!settings) return null;
    await this.say(settings.announcement, signal, trace);
    await new Promise<void>((done) => this.afterPlayback(done));
    if (signal.aborted || this.closed) return null;
    return this.control.transfer(settings.target, settings.ringTimeoutMs);
  }

  /** transfer_call's result, in words for the model. */
  private async transferForModel(signal: AbortSignal, trace: TurnTrace): Promise<string> {
    if (!this.profile.transfer) return "No transfer target is configured for this line.";
    const result = await this.transfer(signal, trace);
    if (!result) return "The caller spoke before the transfer started; it was not started.";
    return result.ok
      ? "The caller is now connected to a person."
      : `The transfer failed (${result.reason}). Tell the caller that nobody can take the call right now, and offer to help.`;
  }

  /** A key press or the fallback: end the call with the goodbye, or transfer (saying so when nobody answers). */
  private async act(action: CallAction, trace: TurnTrace, signal: AbortSignal): Promise<void> {
    if (action === "end-call") {
      await this.sayAndFinish(this.profile.goodbye, trace, signal);
      if (!signal.aborted) this.afterPlayback(() => this.control.hangUp(`${trace.dtmf ? `DTMF ${trace.dtmf}` : "fallback"}: goodbye`));
      return;
    }
    const result = await this.transfer(signal, trace);
    if (result?.ok) return this.finishTrace(trace, this.profile.transfer!.announcement);
    const line = this.profile.transfer?.unavailable ?? this.profile.apology;
    await this.sayAndFinish(line, trace, signal);
  }

  /** Takes the next place in the queue and synthesises the clause into it; failures are traced, never thrown. */
  private async say(text: string, signal: AbortSignal, trace: TurnTrace): Promise<void> {
    if (signal.aborted || this.closed) return;
    const entry: TurnTrace["tts"][number] = { text, engine: this.profile.tts.name, requestMs: Math.round(performance.now() - trace.t0) };
    trace.tts.push(entry);
    const piece: QueuedPiece = { text, frames: [], played: 0, durationMs: 0, done: false, trace };
    if (this.queue.length === 0 && !this.paused) this.replyPieces = [];
    this.queue.push(piece);
    this.replyPieces.push(piece);
    let streamed = false;
    // The engine's pieces are whole 20 ms frames but for the last: framed one by one, they give
    // the frames the whole clause gives.
    const onAudio = (samples: Int16Array) => {
      if (signal.aborted) return;
      if (!streamed) entry.firstAudioMs = Math.round(performance.now() - trace.t0 - entry.requestMs);
      streamed = true;
      for (const frame of toFrames(samples)) piece.frames.push(frame);
      piece.durationMs = piece.frames.length * FRAME_MS;
    };
    try {
      const speech = await this.profile.tts.synthesize(text, signal, onAudio);
      entry.firstByteMs = Math.round(speech.firstByteMs);
      entry.synthesisMs = Math.round(speech.synthesisMs);
      if (!streamed) piece.frames = toFrames(speech.samples); // an engine that hands over the whole clause
      piece.durationMs = (speech.samples.length / SAMPLE_RATE) * 1000;
    } catch (err) {
      if (!signal.aborted) entry.error = String((err as Error).message);
    } finally {
      piece.done = true; // a failed clause is skipped, not waited for
    }
  }

  private afterPlayback(fn: () => void): void {
    const check = () => ((this.queue.length === 0 && !this.paused) || this.closed ? fn() : setTimeout(check, FRAME_MS));
    check();
  }

  /** Barge-in: silence from the next frame on, until the caller's words are known. */
  private pause(onsetAgoMs = this.bargeIn.onsetAgoMs): void {
    const now = performance.now();
    const playedMs = this.replyPieces.reduce((ms, p) => ms + p.played * FRAME_MS, 0);
    const last = this.replyPieces[this.replyPieces.length - 1];
    const trace = last?.trace ?? this.newTrace();
    const onsetAt = now - onsetAgoMs;
    const heard = heardText(this.replyPieces, playedMs);
    trace.bargeIn = {
      onsetMs: Math.round(onsetAt - trace.t0),
      detectedMs: Math.round(now - trace.t0),
      lastPacketMs: Math.round(this.lastAudioOutAt - trace.t0),
      // A key press stops the agent from the next frame: its last packet left before the press.
      stopMs: Math.max(0, Math.round(this.lastAudioOutAt - onsetAt)),
      heard,
    };
    this.paused = { heard, trace };
    if (!last) this.finishTrace(trace, ""); // a record of its own: no reply's record will carry it
  }

  /** The caller took the turn: the rest of the reply is dropped, its requests aborted, only the heard words kept. */
  private stopReply(paused: Paused): void {
    this.queue.length = 0;
    this.replyPieces = [];
    this.speaking = false;
    this.paused = null;
    this.turnAbort.abort();
    const last = this.history[this.history.length - 1];
    if (last?.role === "assistant") last.content = paused.heard;
    else this.history.push({ role: "assistant", content: paused.heard });
    // The record of the cut reply says what was heard, also when it was already finished (waiting for playback).
    if (this.unwritten.has(paused.trace)) paused.trace.spoken = paused.heard;
    else this.finishTrace(paused.trace, paused.heard);
  }

  private newTrace(t0 = performance.now()): TurnTrace {
    return { turn: this.turnIndex++, llm: [], toolResults: [], tts: [], t0 };
  }

  /** The record is written once its reply has been played (or cut), so it holds the first-packet time. */
  private finishTrace(trace: TurnTrace, spoken: string): void {
    if (trace.spoken !== undefined) return;
    trace.spoken = spoken;
    if (this.closed) trace.endedWithCall = true;
    this.unwritten.add(trace);
    this.afterPlayback(() => this.writeTrace(trace));
  }

  /**
   * A turn that was not answered: a newer turn or a key took over (superseded), or the call
   * ended. Its record is written all the same, with what was said of it.
   */
  private abandonTurn(trace: TurnTrace, spoken: string): void {
    if (trace.spoken === undefined && !this.closed) trace.superseded = true;
    this.finishTrace(trace, spoken);
  }

  private writeTrace(trace: TurnTrace): void {
    if (!this.unwritten.delete(trace)) return;
    this.written.set(trace.turn, trace);
    this.flushRecords(false);
  }

  /** Appends the records that are next in turn order; at the call's end all that are left. */
  private flushRecords(all: boolean): void {
    const lines: string[] = [];
    const take = (turn: number) => {
      lines.push(JSON.stringify(traceRecord(this.written.get(turn)!)));
      this.written.delete(turn);
    };
    for (; this.written.has(this.nextRecord); this.nextRecord++) take(this.nextRecord);
    if (all) for (const turn of [...this.written.keys()].sort((a, b) => a - b)) take(turn);
    if (lines.length) appendFileSync(this.traceFile, `${lines.join("\n")}\n`);
  }
}
