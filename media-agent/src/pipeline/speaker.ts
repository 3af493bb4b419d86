/**
 * The speaker stage: text to speech and the playback queue the media session drains one 20 ms
 * frame at a time. A clause takes its place in the queue when it is sent to the TTS, so clauses
 * synthesised in parallel still play in order, and it plays from its first synthesised frame on.
 * It tells the others what happens as events (clause started/audible/played, playback done, the
 * agent's voice on or off) instead of being polled. A clause's own signal (its turn's) removes
 * it from the queue when the turn is interrupted.
 */
import { FRAME_MS, FRAME_SAMPLES, type PcmFrame } from "../audio/frames.js";
import { attachOpusPayload, copyPayloads, payloadAt, type PackedPayloads } from "../codecs/opus.js";
import { heardText, type SpokenPiece } from "./barge-in.js";
import type { Clock, TtsEngine } from "./engines.js";
import type { PipelineEvent } from "./events.js";

/**
 * A piece of a clause's audio as the engine handed it over, copied and padded to whole frames.
 * Its 20 ms frames are views made as they are played: made when the piece arrived, every frame
 * (and its Opus payload) was an object kept until played, most of the agent's long-lived
 * memory while 50 calls speak and much of what each scavenge copied.
 */
interface Piece {
  samples: Int16Array;
  frames: number;
  /** One Opus payload per frame (an Opus call's, from the speech worker); null: the call encodes the frames itself. */
  opus: PackedPayloads | null;
}

interface Clause extends SpokenPiece {
  id: number;
  turn: number;
  /** Its audio so far: pieces arrive while the engine still synthesises (streamed). */
  pieces: Piece[];
  frames: number;
  played: number;
  /** The piece the next frame to play is in, and that frame's index in it. */
  piece: number;
  frameInPiece: number;
  /** Synthesis is over (or failed): when played to the end, the next clause follows. */
  done: boolean;
  audible: boolean;
  /** Frames up to its last audible one (0: none yet): what plays after them is the clause's trailing silence. */
  voiceFrames: number;
  /** Removes it from the queue when its turn is interrupted; unhooked once it has been played. */
  drop: () => void;
}

/** What the caller had heard of the reply when it was paused. */
export interface PausedReply {
  /** The turn whose reply it is; null when nothing of a reply was queued. */
  turn: number | null;
  heard: string;
  /** When its last packet went out. */
  lastPacketAt: number;
}

/** −40 dBFS: the first frame a caller would hear, not the clause's leading silence. */
const AUDIBLE = 328;

function isAudible(frame: PcmFrame): boolean {
  for (let i = 0; i < frame.length; i++) if (frame[i] > AUDIBLE || frame[i] < -AUDIBLE) return true;
  return false;
}

export class Speaker {
  private readonly queue: Clause[] = [];
  /** The clauses of the reply now playing, for what the caller heard. */
  private reply: Clause[] = [];
  private clauses = 0;
  private lastTurn = -1;
  private speaking = false;
  private paused = false;
  private closed = false;
  private lastPacketAt = 0;
  /** Since the last "playback-done": it is sent once per stretch of playback, not every frame. */
  private sinceIdle = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly tts: TtsEngine,
    private readonly clock: Clock,
    private readonly emit: (event: PipelineEvent) => void,
    /** An Opus call: the engine is asked for each frame's payload too, so the event loop need not encode it. */
    private readonly opus = false,
  ) {}

  /** Something is queued (playing, or being synthesised) or playback is paused. */
  get busy(): boolean {
    return this.queue.length > 0 || this.paused;
  }

  /**
   * Busy, but not with the trailing silence of the last clause (espeak-ng ends each with ~0.33
   * s of it): for the caller, the agent's voice has stopped, and so their silence counts.
   */
  get voicePending(): boolean {
    return this.paused || this.queue.some((c) => !c.done || c.played < c.voiceFrames);
  }

  get isSpeaking(): boolean {
    return this.speaking;
  }

  /** The turn of the last clause asked for (turns count up): whether a turn has said anything yet. */
  get lastTurnAsked(): number {
    return this.lastTurn;
  }

  /**
   * Queues the clause and synthesises it; resolves when synthesis is over. Failures are emitted,
   * never thrown; a failed clause is skipped. `signal` is its turn's: when it aborts, the clause
   * leaves the queue.
   */
  async say(text: string, turn: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted || this.closed) return;
    const clause: Clause = { id: this.clauses++, turn, text, pieces: [], frames: 0, played: 0, piece: 0, frameInPiece: 0, durationMs: 0, done: false, audible: false, voiceFrames: 0, drop: () => this.remove(clause, signal) };
    this.lastTurn = turn;
    const requestAt = this.clock.now();
    this.emit({ type: "tts-request", turn, clause: clause.id, at: requestAt, text, engine: this.tts.name });
    if (this.queue.length === 0 && !this.paused) this.reply = [];
    this.queue.push(clause);
    this.sinceIdle = true;
    this.reply.push(clause);
    signal.addEventListener("abort", clause.drop, { once: true });
    let streamed = false;
    const onAudio = (samples: Int16Array, opus?: PackedPayloads) => {
      if (signal.aborted) return;
      if (!streamed) this.emit({ type: "tts-first-audio", turn, clause: clause.id, at: this.clock.now() });
      streamed = true;
      addPiece(clause, samples, opus);
    };
    try {
      const speech = await this.tts.synthesize(text, signal, onAudio, this.opus);
      this.emit({ type: "tts-done", turn, clause: clause.id, firstByteMs: Math.round(speech.firstByteMs), synthesisMs: Math.round(speech.synthesisMs) });
      if (!streamed && speech.samples) addPiece(clause, speech.samples); // an engine that hands over the whole clause
    } catch (err) {
      if (!signal.aborted) this.emit({ type: "tts-error", turn, clause: clause.id, error: String((err as Error).message) });
    } finally {
      clause.done = true;
    }
  }

  /** The next 20 ms of the agent's voice; null: silence (paused, nothing to play, or an underrun). */
  nextFrame(): PcmFrame | null {
    if (this.paused) return null;
    while (this.queue.length && this.queue[0].done && this.queue[0].played >= this.queue[0].frames) {
      const clause = this.queue.shift()!;
      clause.drop();
      this.emit({ type: "clause-played", turn: clause.turn, clause: clause.id, at: this.clock.now(), audio: playedAudio(clause) });
    }
    const clause = this.queue[0];
    if (!clause || clause.played >= clause.frames) {
      // Nothing to play yet. A clause that has begun and whose next frames are still being
      // synthesised is a moment's underrun, not the end of the agent's speech.
      if (!clause || clause.played === 0) this.setSpeaking(false);
      if (!clause) this.playbackDone();
      return null;
    }
    this.setSpeaking(true);
    const now = (this.lastPacketAt = this.clock.now());
    const frame = takeFrame(clause);
    if (clause.played === 1) this.emit({ type: "clause-started", turn: clause.turn, clause: clause.id, at: now });
    if (!clause.audible && isAudible(frame)) {
      clause.audible = true;
      this.emit({ type: "clause-audible", turn: clause.turn, clause: clause.id, at: now });
    }
    return frame;
  }

  /** Barge-in: silence from the next frame on, until resume() or the reply's turn is interrupted. */
  pause(): PausedReply {
    this.paused = true;
    this.sinceIdle = true;
    this.setSpeaking(false);
    const playedMs = this.reply.reduce((ms, c) => ms + c.played * FRAME_MS, 0);
    const last = this.reply[this.reply.length - 1];
    return { turn: last?.turn ?? null, heard: heardText(this.reply, playedMs), lastPacketAt: this.lastPacketAt };
  }

  /** The reply goes on where it paused (the caller only acknowledged), or, once its turn was interrupted, the next one plays. */
  resume(): void {
    this.paused = false;
    this.reply = this.reply.filter((c) => this.queue.includes(c));
    if (this.queue.length === 0) this.playbackDone();
  }

  /** Resolves when nothing is left to play (not paused), or the call has ended. */
  whenIdle(): Promise<void> {
    if (!this.busy || this.closed) return Promise.resolve();
    return new Promise((done) => this.idleWaiters.push(done));
  }

  close(): void {
    this.closed = true;
    this.queue.length = 0;
    this.reply = [];
    this.releaseWaiters();
  }

  private remove(clause: Clause, signal: AbortSignal): void {
    signal.removeEventListener("abort", clause.drop);
    const i = this.queue.indexOf(clause);
    if (i < 0) return;
    this.queue.splice(i, 1);
    if (clause.played > 0) this.emit({ type: "clause-played", turn: clause.turn, clause: clause.id, at: this.clock.now(), audio: playedAudio(clause) });
  }

  private setSpeaking(speaking: boolean): void {
    if (speaking === this.speaking) return;
    this.speaking = speaking;
    this.emit({ type: "agent-speaking", speaking, at: this.clock.now() });
  }

  private playbackDone(): void {
    if (this.paused || this.queue.length || !this.sinceIdle) return;
    this.sinceIdle = false;
    this.releaseWaiters();
    this.emit({ type: "playback-done", at: this.clock.now() });
  }

  private releaseWaiters(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const done of waiters) done();
  }
}

/**
 * The engine's pieces are whole 20 ms frames but for the last: padded one by one, they give the
 * frames the whole clause gives. Copied: a speech worker's piece is a view of the IPC read
 * buffer it came in. Payloads that do not match the frames one to one are not kept: the call
 * encodes the frames itself.
 */
function addPiece(clause: Clause, samples: Int16Array, opus?: PackedPayloads): void {
  const frames = Math.ceil(samples.length / FRAME_SAMPLES);
  if (frames === 0) return;
  const copy = new Int16Array(frames * FRAME_SAMPLES);
  copy.set(samples);
  const payloads = opus?.ends.length === frames ? copyPayloads(opus) : null;
  for (let f = frames - 1; f >= 0; f--) {
    if (isAudible(copy.subarray(f * FRAME_SAMPLES, (f + 1) * FRAME_SAMPLES))) {
      clause.voiceFrames = clause.frames + f + 1;
      break;
    }
  }
  clause.pieces.push({ samples: copy, frames, opus: payloads });
  clause.frames += frames;
  clause.durationMs = clause.frames * FRAME_MS;
}

/** The clause's next frame (there is one), with its Opus payload attached for the encoder. */
function takeFrame(clause: Clause): PcmFrame {
  const piece = clause.pieces[clause.piece];
  const i = clause.frameInPiece;
  const frame = piece.samples.subarray(i * FRAME_SAMPLES, (i + 1) * FRAME_SAMPLES);
  if (piece.opus) attachOpusPayload(frame, payloadAt(piece.opus, i));
  clause.played++;
  if (++clause.frameInPiece === piece.frames) {
    clause.piece++;
    clause.frameInPiece = 0;
  }
  return frame;
}

/** What has been played of the clause, as pieces of samples. */
function playedAudio(clause: Clause): Int16Array[] {
  const played = clause.pieces.slice(0, clause.piece).map((p) => p.samples);
  if (clause.frameInPiece > 0) played.push(clause.pieces[clause.piece].samples.subarray(0, clause.frameInPiece * FRAME_SAMPLES));
  return played;
}
