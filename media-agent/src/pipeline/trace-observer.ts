/**
 * The trace observer: listens to the pipeline's events and writes the turn trace (turn-trace.ts),
 * one JSON line per turn and each turn's caller audio as a WAV beside it. A record is written once
 * its turn is over and its reply has been played (or cut), so it holds the first-packet times;
 * records are written in turn order (one finished early waits for the turns before it), and at
 * the call's end all that are left. Those last ones are written in an event-loop turn of their
 * own (../loop-turns.ts): many calls can end at once, and their writing must not hold up the calls
 * still up.
 *
 * Nothing here touches the disk on the event loop: the directory, the records and the WAVs are
 * written by libuv's threads (node:fs/promises), the records one after the other in turn order.
 * The directory is made once per process, not per call (traceDirMade): a call's answer is the
 * busiest moment of the loop, and there the mkdir cost 0.4 ms per call on average (up to 5 ms,
 * the loop's core lent to the libuv thread doing it), a fifth of answering.
 * Each write starts in a later loop turn, spread with the other calls' (../loop-turns.ts,
 * ownLoopTurn): opening a file still costs the loop a fraction of a millisecond, and 50 calls'
 * turns ending in the same tick opened 100 files in one poll of the loop.
 * A synchronous append holds the loop, and every call's frame clock with it, for as long as the
 * file system takes to open the file: in the agent benchmark (50 voice calls, their WAVs being
 * written) the loop's thread was caught in uninterruptible sleep in openat for 220–250 ms.
 */
import { appendFile, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { callFileName, concatSamples, SAMPLE_RATE } from "../audio/frames.js";
import { writeWav } from "../audio/wav.js";
import type { PipelineEvent } from "./events.js";
import { inLaterLoopTurn, ownLoopTurn } from "../loop-turns.js";
import { traceFileOf, traceRecord, type TurnTrace } from "./turn-trace.js";

type TtsEntry = TurnTrace["tts"][number];

/** The trace directories this process has made or is making. */
const madeDirs = new Map<string, Promise<void>>();

/** `dir`, made once for every call; made again by the next call when that failed, or when a write found it gone. */
function traceDirMade(dir: string): Promise<void> {
  let made = madeDirs.get(dir);
  if (!made) {
    made = mkdir(dir, { recursive: true }).then(() => undefined);
    madeDirs.set(dir, made);
    made.catch(() => madeDirs.delete(dir));
  }
  return made;
}

/** A write failed: when the directory is gone (an operator removed it), the next call makes it again. */
function noteWriteFailure(dir: string, err: unknown): void {
  if ((err as NodeJS.ErrnoException | null)?.code === "ENOENT") madeDirs.delete(dir);
}

export class TraceObserver {
  private readonly traces = new Map<number, TurnTrace>();
  /** Over, waiting for the playback to end. */
  private readonly finished = new Set<TurnTrace>();
  /** Records ready, written once the turns before them are. */
  private readonly ready = new Map<number, TurnTrace>();
  private nextRecord = 0;
  private closed = false;
  /** After the close: a write is queued; the last one queued. */
  private writeQueued = false;
  private lastJob: Promise<void> = Promise.resolve();
  /** The directory made, then each append of records in order; the first write that failed. */
  private readonly dirMade: Promise<void>;
  private appends: Promise<void>;
  private writeError: unknown = null;
  private readonly file: string;
  /** Per turn: the agent's frames as played, written as the turn's agent WAV with its record. */
  private readonly agentAudio = new Map<number, Int16Array[]>();
  /** The TTS entry of each clause being synthesised, and when it was asked for. */
  private readonly clauses = new Map<number, { entry: TtsEntry; requestAt: number }>();

  constructor(
    private readonly traceDir: string,
    private readonly callId: string,
    /** Whether the speaker still has something to play (then records wait for "playback-done"). */
    private readonly playing: () => boolean,
  ) {
    this.dirMade = traceDirMade(traceDir);
    this.appends = this.dirMade.catch((err: unknown) => {
      this.writeError ??= err;
    });
    this.file = traceFileOf(traceDir, callId);
  }

  readonly handle = (e: PipelineEvent): void => {
    if (e.type === "turn") return this.open(e);
    if (e.type === "playback-done") return this.writeFinished();
    if (e.type === "closed") return this.close();
    if (e.type === "agent-speaking") return;
    if (e.type === "tts-first-audio" || e.type === "tts-done" || e.type === "tts-error") return this.onClause(e);
    const t = this.traces.get(e.turn);
    if (!t) return;
    const ms = (at: number) => Math.round(at - t.t0);
    const round = t.llm[t.llm.length - 1];
    switch (e.type) {
      case "stt":
        t.stt = { requestAt: e.requestAt.toISOString(), responseMs: e.responseMs, text: e.text, segments: e.segments, dropped: e.dropped, verdict: e.verdict, ...(e.error ? { error: e.error } : {}) };
        break;
      case "llm-request":
        t.llm.push({ requestAt: e.date.toISOString(), requestMs: ms(e.at), messages: e.messages, tools: e.tools, text: "", toolCalls: [] });
        break;
      case "llm-text":
      case "llm-tool-calls":
      case "llm-done":
        round.firstTokenMs ??= ms(e.at) - round.requestMs;
        if (e.type === "llm-text") round.text += e.text;
        else if (e.type === "llm-tool-calls") round.toolCalls.push(...e.calls);
        else round.doneMs = ms(e.at) - round.requestMs;
        break;
      case "llm-error":
        if (round) round.error = e.error;
        break;
      case "tool-result":
        t.toolResults.push({ name: e.name, arguments: e.arguments, ok: e.ok, content: e.content, atMs: ms(e.at) });
        break;
      case "tts-request": {
        const entry: TtsEntry = { text: e.text, engine: e.engine, requestMs: ms(e.at) };
        t.tts.push(entry);
        this.clauses.set(e.clause, { entry, requestAt: e.at });
        break;
      }
      case "clause-started":
        t.firstPacketOutMs ??= ms(e.at);
        break;
      case "clause-audible":
        t.firstAudibleOutMs ??= ms(e.at);
        break;
      case "clause-played": {
        this.clauses.delete(e.clause);
        const played = this.agentAudio.get(e.turn) ?? [];
        for (const piece of e.audio) played.push(piece);
        this.agentAudio.set(e.turn, played);
        break;
      }
      case "barge-in":
        // A key press stops the agent from the next frame: its last packet left before the press.
        t.bargeIn = { onsetMs: ms(e.onsetAt), detectedMs: ms(e.at), lastPacketMs: ms(e.lastPacketAt), stopMs: Math.max(0, Math.round(e.lastPacketAt - e.onsetAt)), heard: e.heard };
        break;
      case "barge-in-outcome":
        if (t.bargeIn) t.bargeIn.outcome = e.outcome;
        break;
      case "reply-resumed":
        t.resumedReply = e.reason;
        break;
      case "reply-cut":
        // The record of the cut reply says what was heard, also when it was over (waiting for playback).
        if (this.finished.has(t)) t.spoken = e.heard;
        else this.finish(t, e.heard);
        break;
      case "turn-end":
        if (e.superseded && t.spoken === undefined && !this.closed) t.superseded = true;
        this.finish(t, e.spoken);
        break;
    }
  };

  private open(e: Extract<PipelineEvent, { type: "turn" }>): void {
    const t: TurnTrace = { turn: e.turn, startedAt: e.date.toISOString(), llm: [], toolResults: [], tts: [], t0: e.at };
    if (e.dtmf) t.dtmf = e.dtmf;
    if (e.idle) t.idle = e.idle;
    if (e.ttsFailed) t.ttsFailed = e.ttsFailed;
    if (e.speech) {
      const { speechMs, decidedAfterMs, durationMs, wav } = e.speech;
      const audio = `${callFileName(this.callId)}-turn-${e.turn}.wav`;
      Object.assign(t, {
        speechStart: new Date(e.date.getTime() - durationMs).toISOString(),
        speechEnd: e.date.toISOString(),
        speechMs,
        turnDecidedMs: decidedAfterMs,
        audio,
      });
      // Turns of many calls can end in the same tick, and the frame clock must not wait for the disk.
      this.writeWavBeside(audio, () => wav, t);
    }
    this.traces.set(e.turn, t);
  }

  private onClause(e: Extract<PipelineEvent, { type: "tts-first-audio" | "tts-done" | "tts-error" }>): void {
    const clause = this.clauses.get(e.clause);
    if (!clause) return;
    if (e.type === "tts-first-audio") clause.entry.firstAudioMs = Math.round(e.at - clause.requestAt);
    else if (e.type === "tts-done") Object.assign(clause.entry, { firstByteMs: e.firstByteMs, synthesisMs: e.synthesisMs });
    else clause.entry.error = e.error;
  }

  /** The turn is over; its record is written when nothing is left to play. */
  private finish(t: TurnTrace, spoken: string): void {
    if (t.spoken !== undefined) return;
    t.spoken = spoken;
    if (this.closed) t.endedWithCall = true;
    this.finished.add(t);
    if (!this.playing() || this.closed) this.writeFinished();
  }

  /** Resolves once every record of the closed call is written; rejects if writing failed. */
  written(): Promise<void> {
    return this.lastJob
      .then(() => this.appends)
      .then(() => {
        if (this.writeError) throw this.writeError;
      });
  }

  /** Writes what is finished: at once during the call, in a later loop turn once it has ended. */
  private writeFinished(): void {
    if (!this.closed) return this.writeNow();
    if (this.writeQueued) return;
    this.writeQueued = true;
    this.lastJob = inLaterLoopTurn(() => {
      this.writeQueued = false;
      this.writeNow();
    }).catch((err: unknown) => {
      this.writeError ??= err;
    });
  }

  private writeNow(): void {
    for (const t of this.finished) {
      this.writeAgentAudio(t);
      this.ready.set(t.turn, t);
      this.traces.delete(t.turn);
    }
    this.finished.clear();
    this.flush(this.closed);
  }

  private writeAgentAudio(t: TurnTrace): void {
    const pieces = this.agentAudio.get(t.turn);
    this.agentAudio.delete(t.turn);
    if (!pieces?.length) return;
    const file = `${callFileName(this.callId)}-turn-${t.turn}-agent.wav`;
    t.agentAudio = file;
    // Joined in the write's own loop turn: many calls' turns end together.
    this.writeWavBeside(file, () => writeWav(concatSamples(pieces), SAMPLE_RATE), t);
  }

  /** A turn's WAV into the trace directory, once it is made; a failure is noted in the turn's record (if not yet written). */
  private writeWavBeside(file: string, wav: () => Uint8Array, t: TurnTrace): void {
    this.dirMade
      .then(ownLoopTurn)
      .then(() => writeFile(join(this.traceDir, file), wav()))
      .catch((err: unknown) => {
        noteWriteFailure(this.traceDir, err);
        t.audioError = err instanceof Error ? err.message : String(err);
      });
  }

  /** Records waiting for their playback are written now: the call's end is their end. */
  private close(): void {
    this.closed = true;
    this.writeFinished();
  }

  /** Appends the records that are next in turn order; once the call has ended, all that are ready (late ones too). */
  private flush(all: boolean): void {
    const lines: string[] = [];
    const take = (turn: number) => {
      lines.push(JSON.stringify(traceRecord(this.ready.get(turn)!)));
      this.ready.delete(turn);
    };
    for (; this.ready.has(this.nextRecord); this.nextRecord++) take(this.nextRecord);
    if (all) for (const turn of [...this.ready.keys()].sort((a, b) => a - b)) take(turn);
    if (!lines.length) return;
    const text = `${lines.join("\n")}\n`;
    this.appends = this.appends
      .then(ownLoopTurn)
      .then(() => appendFile(this.file, text))
      .catch((err: unknown) => {
        noteWriteFailure(this.traceDir, err);
        this.writeError ??= err;
      });
  }
}
