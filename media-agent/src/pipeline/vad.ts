/**
 * Voice activity per 20 ms frame, and turns from it. The detector is libfvad (the WebRTC VAD,
 * as WASM from @echogarden/fvad-wasm): chosen over a plain energy gate because it keeps its
 * accuracy in noise at a few microseconds per frame (figures: `npm run bench -- vad`; README, "Voice pipeline" → "VAD choice").
 * Turns: speech starts after minSpeechMs of voiced frames (with pre-roll so the first syllable
 * is kept) and ends after hangoverMs of silence; a turn shorter than minSpeechMs is no turn.
 *
 * libfvad keeps saying "speech" for 60–100 ms after a word ends (its overhang, meant to keep
 * soft word endings). For the pause that starts the STT early that is time lost on every turn,
 * so a voiced frame far below the turn's speech level (TRAILING_DROP_DB, or digital silence)
 * counts toward the pause; the hangover that ends a turn still counts only libfvad's silence,
 * so a noisy line (where the level never drops that far) behaves exactly as libfvad alone. An
 * early end (endTurnNow) waits for libfvad's silence too: a caller going on very softly is not
 * cut off, and by the time a transcript is back libfvad has usually caught up.
 */
import fvadModule from "@echogarden/fvad-wasm";
import { FRAME_MS, FRAME_SAMPLES, FrameRing, SAMPLE_RATE, SampleRun, type PcmFrame } from "../audio/frames.js";

export interface FrameClassifier {
  isSpeech(frame: PcmFrame): boolean;
  close?(): void;
}

interface FvadWasm {
  _fvad_new(): number;
  _fvad_free(inst: number): void;
  _fvad_set_mode(inst: number, mode: number): number;
  _fvad_set_sample_rate(inst: number, rate: number): number;
  _fvad_process(inst: number, ptr: number, length: number): number;
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  HEAP16: Int16Array;
}

let wasm: Promise<FvadWasm> | null = null;
let loaded: FvadWasm | null = null;

/** libfvad; mode 0 (least aggressive) … 3 (most aggressive about calling noise non-speech). */
export class WebRtcVad implements FrameClassifier {
  private constructor(
    private readonly m: FvadWasm,
    private readonly inst: number,
    private readonly buffer: number,
  ) {}

  static async create(mode: 0 | 1 | 2 | 3 = 2): Promise<WebRtcVad> {
    wasm ??= fvadModule() as Promise<FvadWasm>;
    loaded = await wasm;
    return WebRtcVad.createLoaded(mode);
  }

  /** Once create() has loaded the WASM module: a detector without waiting (per call). */
  static createLoaded(mode: 0 | 1 | 2 | 3 = 2): WebRtcVad {
    if (!loaded) throw new Error("libfvad is not loaded yet: await WebRtcVad.create() once at start");
    const m = loaded;
    const inst = m._fvad_new();
    if (!inst || m._fvad_set_mode(inst, mode) !== 0 || m._fvad_set_sample_rate(inst, SAMPLE_RATE) !== 0) {
      throw new Error(`libfvad refused mode ${mode} at ${SAMPLE_RATE} Hz`);
    }
    return new WebRtcVad(m, inst, m._malloc(FRAME_SAMPLES * 2));
  }

  isSpeech(frame: PcmFrame): boolean {
    this.m.HEAP16.set(frame, this.buffer >> 1);
    return this.m._fvad_process(this.inst, this.buffer, FRAME_SAMPLES) === 1;
  }

  close(): void {
    this.m._free(this.buffer);
    this.m._fvad_free(this.inst);
  }
}

/** The baseline the benchmark compares with: a fixed level gate. */
export class EnergyVad implements FrameClassifier {
  constructor(private readonly thresholdDbfs = -40) {}

  isSpeech(frame: PcmFrame): boolean {
    return frameLevelDbfs(frame) > this.thresholdDbfs;
  }
}

export interface TurnOptions {
  /** Silence that ends a turn. */
  hangoverMs: number;
  /** Voiced time before a turn counts as started (and the shortest turn). */
  minSpeechMs: number;
  /** Audio kept from before the start, so the first syllable is not cut. */
  preRollMs: number;
  /**
   * Silence after which the turn so far is sent to the STT ahead of the turn's end ("pause"):
   * when the hangover then passes without more speech, that transcript is the turn's, and the
   * STT's time overlaps the rest of the hangover. At hangoverMs or more: no early STT.
   * Default 20, the first quiet frame: the turn is decided ~20 ms sooner than at 40, for about
   * one more dropped STT request per five prompts (bench/latency.ts: 1.7–1.9 requests per
   * prompt instead of 1.5). A profile whose STT server is short of capacity sets more.
   */
  sttAfterMs: number;
}

export const DEFAULT_TURNS: TurnOptions = { hangoverMs: 400, minSpeechMs: 200, preRollMs: 200, sttAfterMs: 20 };

/** A voiced frame this far below the turn's running speech level is a word's end, not speech. */
const TRAILING_DROP_DB = 30;
/** Below this a frame is silence whatever the VAD says (a codec's idle noise is lower still). */
const SILENCE_DBFS = -60;

/** A frame's level, dB relative to full scale (−Infinity for digital silence). */
export function frameLevelDbfs(frame: PcmFrame): number {
  let energy = 0;
  for (let i = 0; i < frame.length; i++) energy += frame[i] * frame[i];
  return 10 * Math.log10(energy / frame.length / (32768 * 32768));
}

export type TurnEvent =
  | { type: "speech-start"; atFrame: number }
  /**
   * The caller paused for sttAfterMs: the turn's audio so far. A "turn" event always comes in the
   * same silence as the last "pause" before it: its speech is that pause's.
   */
  | { type: "pause"; id: number; audio: Int16Array; speechMs: number }
  /** silenceMs: the silence that ended it (the hangover, or less when ended early: endTurnNow). */
  | { type: "turn"; startFrame: number; endFrame: number; audio: Int16Array; speechMs: number; silenceMs: number };

/** Frames in, turns out. One per call; `push` every 20 ms. */
export class TurnDetector {
  private frame = 0;
  private voicedRun = 0;
  /** libfvad's silent frames in a row: what the hangover counts. */
  private silentRun = 0;
  /** Silent or trailing-quiet frames in a row: what the early STT's pause counts. */
  private pauseRun = 0;
  /** Running level (dBFS) of the caller's voiced frames; null until the first. */
  private speechLevel: number | null = null;
  private turnOpen = false;
  private startFrame = 0;
  private voicedFrames = 0;
  /**
   * The last pre-roll + minSpeechMs of the caller, and the open turn's audio: copies, so that
   * no caller frame lives on (every frame of every listening call would otherwise be kept
   * 400 ms and become old-generation garbage).
   */
  private readonly recent: FrameRing;
  private readonly collected = new SampleRun();
  private pauses = 0;
  /** The last pause's silence goes on (no speech since its "pause" event). */
  private pauseOpen = false;
  /** endTurnNow came while libfvad still heard speech: the turn ends at its first silent frame. */
  private endAtSilence = false;
  private readonly opts: TurnOptions;

  constructor(
    private readonly vad: FrameClassifier,
    opts: Partial<TurnOptions> = {},
  ) {
    this.opts = { ...DEFAULT_TURNS, ...opts };
    this.recent = new FrameRing(Math.ceil(this.opts.preRollMs / FRAME_MS) + Math.ceil(this.opts.minSpeechMs / FRAME_MS));
  }

  /** Whether the last frame was speech (for barge-in). */
  lastWasSpeech = false;

  /** The caller is in a turn: speech has started and its end is not decided yet. */
  get inTurn(): boolean {
    return this.turnOpen;
  }

  /** The id of the pause the caller is still silent in, or null. */
  get openPause(): number | null {
    return this.turnOpen && this.pauseOpen ? this.pauses : null;
  }

  /**
   * Ends the turn now, before the hangover has passed: for a caller who is still silent in the
   * pause whose transcript is already known to be complete. null when there is no such pause, or
   * when libfvad still hears the word's end: then `push` returns the turn at its first silent frame.
   */
  endTurnNow(): Extract<TurnEvent, { type: "turn" }> | null {
    if (this.openPause === null) return null;
    if (this.lastWasSpeech) {
      this.endAtSilence = true;
      return null;
    }
    return this.closeTurn(this.frame - 1);
  }

  push(frame: PcmFrame): TurnEvent | null {
    const speech = this.vad.isSpeech(frame);
    this.lastWasSpeech = speech;
    const index = this.frame++;
    this.recent.push(frame);
    const trailing = speech && this.isTrailingQuiet(frame);
    if (!this.turnOpen) {
      this.voicedRun = speech ? this.voicedRun + 1 : 0;
      if (this.voicedRun * FRAME_MS < this.opts.minSpeechMs) return null;
      this.turnOpen = true;
      this.startFrame = index - this.voicedRun + 1;
      this.voicedFrames = this.voicedRun;
      this.silentRun = 0;
      this.pauseRun = 0;
      this.collected.clear();
      for (let i = 0; i < this.recent.length; i++) this.collected.append(this.recent.at(i));
      return { type: "speech-start", atFrame: this.startFrame };
    }
    this.collected.append(frame);
    if (speech) {
      this.voicedFrames++;
      this.silentRun = 0;
    } else this.silentRun++;
    if (speech && !trailing) {
      this.pauseRun = 0;
      this.pauseOpen = false;
      this.endAtSilence = false;
      return null;
    }
    this.pauseRun++;
    if (this.endAtSilence && !speech && this.pauseOpen) return this.closeTurn(index);
    const pauseMs = this.pauseRun * FRAME_MS;
    if (pauseMs === this.opts.sttAfterMs && pauseMs < this.opts.hangoverMs) {
      this.pauseOpen = true;
      return { type: "pause", id: ++this.pauses, audio: this.collected.copy(), speechMs: this.voicedFrames * FRAME_MS };
    }
    if (this.silentRun * FRAME_MS < this.opts.hangoverMs) return null;
    return this.closeTurn(index);
  }

  /** A voiced frame far below the caller's level so far (a word's end in libfvad's overhang); updates the level otherwise. */
  private isTrailingQuiet(frame: PcmFrame): boolean {
    const level = frameLevelDbfs(frame);
    if (level < SILENCE_DBFS || (this.speechLevel !== null && level < this.speechLevel - TRAILING_DROP_DB)) return true;
    this.speechLevel = this.speechLevel === null ? level : this.speechLevel + (level - this.speechLevel) / 8;
    return false;
  }

  private closeTurn(index: number): Extract<TurnEvent, { type: "turn" }> {
    this.turnOpen = false;
    this.pauseOpen = false;
    this.endAtSilence = false;
    this.voicedRun = 0;
    const audio = this.collected.copy();
    this.collected.clear();
    // The caller's speech ended where the pause began (libfvad's overhang included; the pause
    // always holds libfvad's silent run, since any voiced frame that is not quiet ends both).
    return { type: "turn", startFrame: this.startFrame, endFrame: index - this.pauseRun, audio, speechMs: this.voicedFrames * FRAME_MS, silenceMs: this.pauseRun * FRAME_MS };
  }
}
