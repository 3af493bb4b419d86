/**
 * One call's conversation, as the call's audio (CallAudio), made of stages that talk through one
 * event bus (events.ts):
 *
 *   caller frames → turn detector (turn-taking.ts: VAD, end of turn, barge-in)
 *                 → recogniser (recogniser.ts: STT, transcript filter)
 *                 → responder (responder.ts: LLM, tools, chunker, filler)
 *                 → speaker (speaker.ts: TTS, the playback queue the media session drains)
 *   and the trace observer (trace-observer.ts), which turns the events into the turn trace;
 *   the idle watch (idle-watch.ts) counts a silent caller's silence into reprompts and the goodbye.
 *
 * This class is the conversation between them: who has the turn, the history, saying the
 * reprompts, keys, transfer and the end of the call. Each turn's work runs under one
 * AbortController, the interruption signal: when the caller takes the turn (a new turn, a
 * barge-in that turns out to be words, a key) or the call ends, it is aborted and every stage
 * stops its own work for that turn (the STT and LLM requests, the tools, the synthesis, the
 * clauses still queued). A barge-in pauses playback at once; when the caller's words are known a
 * backchannel or noise lets the reply go on, anything else interrupts it, and only the heard
 * words stay in the conversation. The engines (VAD, STT, LLM, TTS, clock) are interfaces, so the
 * unit tests run all of this in fake time.
 */
import type { CallAudio, CallControl, CallInfo, TransferResult } from "../audio/call-audio.js";
import { SAMPLE_RATE, type PcmFrame } from "../audio/frames.js";
import { isBackchannel } from "./barge-in.js";
import { processClock, type ChatModel, type Clock, type FrameClassifier, type SpeechToText, type TtsEngine } from "./engines.js";
import { PipelineEvents, type PipelineListener } from "./events.js";
import type { ChatMessage } from "./llm-client.js";
import { IdleWatch, type IdleStep } from "./idle-watch.js";
import { Recogniser, type Recognised } from "./recogniser.js";
import { Responder } from "./responder.js";
import { Speaker } from "./speaker.js";
import type { Tool, ToolContext } from "./tools.js";
import { TraceObserver } from "./trace-observer.js";
import type { FilterThresholds } from "./transcript-filter.js";
import { TurnTaking, type TurnEnd } from "./turn-taking.js";
import { systemPromptFor } from "./voice-profiles.js";
import type { TurnOptions } from "./vad.js";

/** What a key press or the fallback can do without the LLM. */
export type CallAction = "end-call" | "transfer";

export interface VoiceProfile {
  greeting: string;
  systemPrompt: string;
  language: string;
  stt: SpeechToText;
  llm: ChatModel;
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

/** The engines a call's pipeline runs on besides the profile's STT, LLM and TTS. */
export interface PipelineEngines {
  vad: FrameClassifier;
  /** The process clock unless a test passes a fake one. */
  clock?: Clock;
}

export class VoicePipeline implements CallAudio {
  /** The caller's frames as they arrive: the turn detector needs them in order, not paced. */
  readonly listening = true;
  private readonly events = new PipelineEvents();
  private readonly clock: Clock;
  private readonly turnTaking: TurnTaking;
  private readonly recogniser: Recogniser;
  private readonly responder: Responder;
  private readonly speaker: Speaker;
  private readonly trace: TraceObserver;
  private readonly history: ChatMessage[];
  /** The interruption signal of the turn being answered (and of its reply). */
  private turnAbort = new AbortController();
  /** The turn spoken over the agent, while it is decided whether it barged in. */
  private interruptionAbort: AbortController | null = null;
  private turnIndex = 0;
  private failures = 0;
  /** The reply the caller (or a key) paused, until their words are known. */
  private paused: { turn: number; heard: string } | null = null;
  /** Set by the end_call tool: the reply ends with the goodbye, then the call. */
  private endingReason: string | null = null;
  private closed = false;
  /** Turns, key actions and reprompts being worked on: the agent is not waiting for the caller. */
  private turnsInProgress = 0;
  private readonly idle: IdleWatch;
  /** When (clock) the caller's last frame arrived: a turn's silence is counted in frames up to it. */
  private lastCallerFrameAt = 0;
  /** Replies the TTS could not speak, in a row (a clause heard starts the count afresh). */
  private speechFailures = 0;
  /** The last turn whose speech failed, and the apology said for it. */
  private failedTurn = -1;
  private apologyTurn = -1;

  constructor(
    call: CallInfo,
    private readonly control: CallControl,
    private readonly profile: VoiceProfile,
    engines: PipelineEngines,
    /** Listeners of the pipeline's events besides the trace observer (the agent's metrics). */
    observers: PipelineListener[] = [],
  ) {
    const clock = (this.clock = engines.clock ?? processClock);
    const emit = this.events.emit;
    this.turnTaking = new TurnTaking(engines.vad, profile.turns, profile.bargeIn);
    this.speaker = new Speaker(profile.tts, clock, emit, call.codec === "opus");
    this.recogniser = new Recogniser(profile.stt, profile.transcriptFilter, clock, emit);
    this.responder = new Responder(profile.llm, profile, clock, emit);
    this.trace = new TraceObserver(profile.traceDir, call.callId, () => this.speaker.busy);
    this.idle = new IdleWatch(profile.idle);
    this.events.on((e) => {
      if (e.type === "agent-speaking") this.turnTaking.agentSpeakingChanged(e.speaking);
      // Handled once the speaker has finished with the failed clause.
      else if (e.type === "tts-error") queueMicrotask(() => this.onSpeechFailed(e.turn, e.error));
      else if (e.type === "clause-audible" && e.turn !== this.apologyTurn) this.speechFailures = 0;
    });
    this.events.on(this.trace.handle);
    for (const observer of observers) this.events.on(observer);
    this.history = [{ role: "system", content: systemPromptFor(profile.systemPrompt, call) }];
    // The business speaks first: the greeting is synthesised at once.
    void this.sayAndEnd(profile.greeting, this.newTurn(), this.turnAbort.signal);
    this.history.push({ role: "assistant", content: profile.greeting });
  }

  // ----- CallAudio

  onCallerFrame(frame: PcmFrame): void {
    this.lastCallerFrameAt = this.clock.now();
    const { bargeIn, event } = this.turnTaking.push(frame);
    if (bargeIn && !this.paused) this.pause(bargeIn.onsetAgoMs);
    if (event?.type === "pause") {
      if (this.speechIsTurn) this.recogniser.onPause(event.id, event.audio, event.speechMs, (id) => this.stillInPause(id), () => this.endTurnEarly());
    } else if (event) this.onTurn(event, this.lastCallerFrameAt);
    else if (this.turnTaking.inTurn) this.recogniser.callerWentOn(this.turnTaking.openPause);
    this.checkSilence();
  }

  nextAgentFrame(): PcmFrame | null {
    return this.speaker.nextFrame();
  }

  /** A key the profile maps takes the turn, like speech that barges in; other keys are traced only. */
  onDtmf(digit: string): void {
    const action = this.profile.dtmf[digit];
    const turn = this.newTurn({ dtmf: digit });
    if (!action) return this.endTurn(turn, "");
    if (this.speaker.isSpeaking && !this.paused) this.pause(0);
    if (this.paused) {
      this.events.emit({ type: "barge-in-outcome", turn: this.paused.turn, outcome: `reply stopped by DTMF ${digit}` });
      this.stopReply(this.paused);
    }
    const signal = this.interrupt();
    this.idle.callerAnswered();
    void this.working(() => this.act(action, turn, signal, `DTMF ${digit}`));
  }

  /** Resolves once the call's trace is written. */
  close(): Promise<void> {
    this.closed = true;
    // The trace observer writes the records left: the call's end is their end.
    this.events.emit({ type: "closed", at: this.clock.now() });
    this.turnAbort.abort();
    this.interruptionAbort?.abort();
    this.recogniser.close();
    this.speaker.close();
    this.turnTaking.close();
    return this.trace.written();
  }

  // ----- who has the turn

  /**
   * Whether the caller's speech now makes a turn: an interruption (the agent paused for it), or
   * speech to a silent agent. Speech over the agent that did not barge in (echo, a short
   * backchannel) does not.
   */
  private get speechIsTurn(): boolean {
    return this.paused !== null || !this.speaker.isSpeaking;
  }

  /** The interruption: every stage drops its work for the current turn; the new turn's signal. */
  private interrupt(): AbortSignal {
    this.turnAbort.abort();
    this.turnAbort = new AbortController();
    return this.turnAbort.signal;
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

  /** decidedAt: the frame that ended the hangover arrived, or the early transcript came back (clock). */
  private onTurn(end: TurnEnd, decidedAt: number): void {
    if (this.paused) void this.working(() => this.handleInterruption(end, decidedAt));
    else if (this.speechIsTurn) void this.working(() => this.handleTurn(end, decidedAt));
  }

  private stillInPause(pauseId: number): boolean {
    return !this.closed && this.turnTaking.openPause === pauseId && this.speechIsTurn;
  }

  /** The early transcript is a complete sentence and the caller is still silent: the turn ends now. */
  private endTurnEarly(): void {
    const end = this.turnTaking.endTurnNow();
    if (end) this.onTurn(end, this.clock.now());
  }

  /**
   * The idle watch's frame: waiting means no voice left to play or being synthesised (a
   * clause's trailing silence is silence to the caller too), no turn being worked on, the
   * caller not in a turn.
   */
  private checkSilence(): void {
    const waiting = this.turnsInProgress === 0 && !this.speaker.voicePending && !this.paused && !this.turnTaking.inTurn && !this.closed;
    const step = this.idle.frame(this.lastCallerFrameAt, waiting);
    if (step) void this.working(() => this.onCallerSilent(step));
  }

  /** A reprompt, or the goodbye and, once it was played, the BYE. */
  private async onCallerSilent(step: NonNullable<IdleStep>): Promise<void> {
    const signal = this.turnAbort.signal; // the caller speaking takes the turn and aborts this
    if (step.type === "reprompt") {
      const { reprompt } = this.profile.idle;
      const turn = this.newTurn({ idle: `reprompt ${step.count}` });
      this.history.push({ role: "assistant", content: reprompt });
      return this.sayAndEnd(reprompt, turn, signal);
    }
    await this.sayAndEnd(this.profile.goodbye, this.newTurn({ idle: "goodbye" }), signal);
    await this.speaker.whenIdle();
    // The caller may still speak up during the goodbye: then the call goes on.
    if (signal.aborted) this.idle.goodbyeInterrupted();
    else if (!this.closed) this.control.hangUp(`caller silent after ${this.profile.idle.maxReprompts} reprompts: goodbye`);
  }

  /**
   * The TTS could not speak a clause (the trace has its error): the rest of that reply goes, and
   * the caller hears the apology, which the agent keeps in memory (prepared-lines.ts), instead
   * of silence. A second failed reply in a row, or an apology that cannot be played either (the
   * TTS down since the agent's start), ends the call: nobody should wait on an agent that
   * cannot talk.
   */
  private onSpeechFailed(turn: number, error: string): void {
    if (this.closed || turn === this.failedTurn) return; // one apology per reply, however many of its clauses failed
    if (turn === this.apologyTurn) return this.control.hangUp(`TTS failed: ${error}; the apology could not be played either`);
    this.failedTurn = turn;
    const failures = ++this.speechFailures;
    const signal = this.interrupt();
    void this.working(async () => {
      const apology = (this.apologyTurn = this.newTurn({ ttsFailed: error }));
      this.history.push({ role: "assistant", content: this.profile.apology });
      await this.sayAndEnd(this.profile.apology, apology, signal);
      if (failures < 2) return;
      await this.speaker.whenIdle();
      if (!this.closed && !signal.aborted) this.control.hangUp(`TTS failed on ${failures} replies in a row: ${error}`);
    });
  }

  // ----- turns

  private async handleTurn(end: TurnEnd, decidedAt: number): Promise<void> {
    // A new turn before the last reply began to play makes that reply obsolete.
    const signal = this.interrupt();
    const audio = this.recogniser.takeTurnAudio(end.audio);
    const turn = this.newSpeechTurn(end, audio.wav, decidedAt);
    const recognised = await this.recogniser.recognise(turn.turn, audio, end.speechMs, signal);
    await this.answer(recognised, turn, signal);
  }

  /** Speech that paused the agent: a backchannel or noise lets the reply go on, anything else takes the turn. */
  private async handleInterruption(end: TurnEnd, decidedAt: number): Promise<void> {
    const paused = this.paused!;
    const next = (this.interruptionAbort = new AbortController());
    const audio = this.recogniser.takeTurnAudio(end.audio);
    const turn = this.newSpeechTurn(end, audio.wav, decidedAt);
    const recognised = await this.recogniser.recognise(turn.turn, audio, end.speechMs, next.signal);
    this.interruptionAbort = null;
    if (recognised.kind === "aborted" || this.closed) return this.endTurn(turn.turn, "", true);
    if (this.paused !== paused) return this.endTurn(turn.turn, ""); // a key press took the turn meanwhile
    const goOn = this.goesOn(recognised);
    if (goOn) {
      this.events.emit({ type: "barge-in-outcome", turn: paused.turn, outcome: `reply went on: ${goOn}` });
      this.events.emit({ type: "reply-resumed", turn: turn.turn, reason: goOn });
      this.paused = null;
      this.speaker.resume();
      return this.endTurn(turn.turn, "");
    }
    this.events.emit({ type: "barge-in-outcome", turn: paused.turn, outcome: "reply stopped" });
    this.stopReply(paused);
    this.turnAbort = next;
    await this.answer(recognised, turn, next.signal);
  }

  private goesOn(recognised: Recognised): string | null {
    if (recognised.kind !== "verdict") return null;
    const { verdict } = recognised;
    if (verdict.kind === "ignore") return "no speech";
    if (verdict.kind === "use" && isBackchannel(verdict.text, this.profile.bargeIn.backchannels)) return `backchannel '${verdict.text}'`;
    return null;
  }

  private async answer(recognised: Recognised, { turn, speechEndAt }: SpeechTurn, signal: AbortSignal): Promise<void> {
    if (recognised.kind === "aborted") return this.endTurn(turn, "", true);
    if (recognised.kind === "error") return this.sayAndEnd(this.profile.apology, turn, signal);
    const { verdict } = recognised;
    if (verdict.kind === "ignore") return this.endTurn(turn, "");
    this.idle.callerAnswered();
    if (verdict.kind === "ask-to-repeat") {
      this.failures++;
      if (this.failures < this.profile.maxRepeats) return this.sayAndEnd(this.profile.askToRepeat, turn, signal);
      this.failures = 0;
      await this.sayAndEnd(this.profile.fallback, turn, signal);
      if (this.profile.fallbackAction !== "continue") await this.act(this.profile.fallbackAction, turn, signal, "fallback");
      return;
    }
    this.failures = 0;
    this.history.push({ role: "user", content: verdict.text });
    const response = await this.responder.respond({
      turn,
      speechEndAt,
      history: this.history,
      signal,
      say: (text) => this.speaker.say(text, turn, signal),
      tools: this.toolContext(turn, signal),
      endingReason: () => this.endingReason,
      silence: () => !this.turnTaking.inTurn && this.speaker.lastTurnAsked < turn,
    });
    const reason = this.endingReason;
    // end_call: the goodbye was the reply's last clause; the BYE goes when it has been played.
    if (reason) void this.speaker.whenIdle().then(() => this.closed || this.control.hangUp(`end_call: ${reason}`));
    // Cut by a barge-in (its record says what was heard), superseded, or the call ended.
    if (response.aborted) return this.endTurn(turn, response.spoken, true);
    this.history.push({ role: "assistant", content: response.spoken });
    this.endTurn(turn, response.spoken);
  }

  private async sayAndEnd(line: string, turn: number, signal: AbortSignal): Promise<void> {
    await this.speaker.say(line, turn, signal);
    this.endTurn(turn, line);
  }

  private toolContext(turn: number, signal: AbortSignal): ToolContext {
    return {
      signal,
      now: () => this.clock.date(),
      // The goodbye is said once the tool round is over; the BYE goes when it has been played.
      endCall: (reason: string) => void (this.endingReason = reason),
      transfer: () => this.transferForModel(turn, signal),
    };
  }

  /**
   * A transfer: the announcement is played in full, then the person's phone rings; once they
   * answer, the agent joins the calls and closes this pipeline. null: not started.
   */
  private async transfer(turn: number, signal: AbortSignal): Promise<TransferResult | null> {
    const settings = this.profile.transfer;
    if (!settings) return null;
    await this.speaker.say(settings.announcement, turn, signal);
    await this.speaker.whenIdle();
    if (signal.aborted || this.closed) return null;
    return this.control.transfer(settings.target, settings.ringTimeoutMs);
  }

  /** transfer_call's result, in words for the model. */
  private async transferForModel(turn: number, signal: AbortSignal): Promise<string> {
    if (!this.profile.transfer) return "No transfer target is configured for this line.";
    const result = await this.transfer(turn, signal);
    if (!result) return "The caller spoke before the transfer started; it was not started.";
    return result.ok
      ? "The caller is now connected to a person."
      : `The transfer failed (${result.reason}). Tell the caller that nobody can take the call right now, and offer to help.`;
  }

  /** A key press or the fallback: end the call with the goodbye, or transfer (saying so when nobody answers). */
  private async act(action: CallAction, turn: number, signal: AbortSignal, cause: string): Promise<void> {
    if (action === "end-call") {
      await this.sayAndEnd(this.profile.goodbye, turn, signal);
      if (signal.aborted) return;
      await this.speaker.whenIdle();
      if (!this.closed) this.control.hangUp(`${cause}: goodbye`);
      return;
    }
    const result = await this.transfer(turn, signal);
    if (result?.ok) return this.endTurn(turn, this.profile.transfer!.announcement);
    await this.sayAndEnd(this.profile.transfer?.unavailable ?? this.profile.apology, turn, signal);
  }

  /** Barge-in: silence from the next frame on, until the caller's words are known. */
  private pause(onsetAgoMs: number): void {
    const now = this.clock.now();
    const reply = this.speaker.pause();
    const turn = reply.turn ?? this.newTurn();
    this.events.emit({ type: "barge-in", turn, onsetAt: now - onsetAgoMs, at: now, lastPacketAt: reply.lastPacketAt, heard: reply.heard });
    this.paused = { turn, heard: reply.heard };
    if (reply.turn === null) this.endTurn(turn, ""); // a record of its own: no reply's record will carry it
  }

  /** The caller took the turn: the reply's turn is interrupted (its requests and queued clauses go), only the heard words stay. */
  private stopReply(paused: { turn: number; heard: string }): void {
    this.paused = null;
    // Before the queue empties: the record is written then, and says what was heard.
    this.events.emit({ type: "reply-cut", turn: paused.turn, heard: paused.heard });
    this.turnAbort.abort();
    this.speaker.resume();
    const last = this.history[this.history.length - 1];
    if (last?.role === "assistant") last.content = paused.heard;
    else this.history.push({ role: "assistant", content: paused.heard });
  }

  // ----- turn numbers (the trace observer keeps the records)

  private newTurn(fields: { dtmf?: string; idle?: string; ttsFailed?: string } = {}): number {
    const turn = this.turnIndex++;
    this.events.emit({ type: "turn", turn, at: this.clock.now(), date: this.clock.date(), ...fields });
    return turn;
  }

  /**
   * A turn of the caller's speech, decided at `decidedAt`: when the frame that ended the hangover
   * arrived, or, when the early transcript decided it, between frames. Its speech ended
   * end.silenceMs (whole frames of silence) before the last frame arrived. Counted back from the
   * decision instead, a turn decided between frames had its end of speech placed up to a frame
   * late, and its decision (and the filler's timer, which runs from the end of speech) as much
   * too soon.
   */
  private newSpeechTurn(end: TurnEnd, wav: Buffer, decidedAt: number): SpeechTurn {
    const turn = this.turnIndex++;
    const speechEndAt = this.lastCallerFrameAt - end.silenceMs;
    const date = new Date(this.clock.date().getTime() - (this.clock.now() - speechEndAt));
    const speech = { speechMs: end.speechMs, decidedAfterMs: Math.round(decidedAt - speechEndAt), durationMs: (end.audio.length / SAMPLE_RATE) * 1000, wav };
    this.events.emit({ type: "turn", turn, at: speechEndAt, date, speech });
    return { turn, speechEndAt };
  }

  /** superseded: the turn was not answered (a newer turn or a key took over, or the call ended). */
  private endTurn(turn: number, spoken: string, superseded = false): void {
    this.events.emit({ type: "turn-end", turn, spoken, ...(superseded ? { superseded } : {}) });
  }
}

interface SpeechTurn {
  turn: number;
  /** When the caller's speech ended (clock). */
  speechEndAt: number;
}
