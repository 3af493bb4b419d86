/**
 * The recogniser stage: speech to text and the transcript filter. The STT may start early, at
 * the caller's short pause (turns.sttAfterMs): when that transcript is a usable sentence that ends
 * like one (Whisper punctuates) and the caller is still silent, the turn ends then instead of
 * after the whole hangover; when the turn ends in the same pause, the early request is the
 * turn's. A newer pause, the turn's interruption or the call's end aborts a request.
 */
import { SAMPLE_RATE } from "../audio/frames.js";
import { writeWav } from "../audio/wav.js";
import type { Clock, SpeechToText } from "./engines.js";
import type { PipelineEvent } from "./events.js";
import type { SttResult } from "./stt-client.js";
import { judgeTranscript, type FilterThresholds, type TranscriptVerdict } from "./transcript-filter.js";

export type Recognised = { kind: "verdict"; verdict: TranscriptVerdict } | { kind: "error" } | { kind: "aborted" };

/** The turn so far, sent to the STT when the caller paused. */
interface EarlyRequest {
  pauseId: number;
  wav: Buffer;
  requestAt: Date;
  result: Promise<SttResult>;
  abort: AbortController;
}

/** A turn's audio as the STT gets it, and the early request it may already have. */
export interface TurnAudio {
  wav: Buffer;
  early: EarlyRequest | null;
}

export class Recogniser {
  private early: EarlyRequest | null = null;

  constructor(
    private readonly stt: SpeechToText,
    private readonly filter: FilterThresholds,
    private readonly clock: Clock,
    private readonly emit: (event: PipelineEvent) => void,
  ) {}

  /**
   * The caller paused: the STT starts on the turn so far. `endTurn` is called when its transcript
   * is a complete sentence and `stillInPause(pauseId)` says the caller has not gone on.
   */
  onPause(pauseId: number, audio: Int16Array, speechMs: number, stillInPause: (pauseId: number) => boolean, endTurn: () => void): void {
    this.early?.abort.abort();
    const abort = new AbortController();
    const wav = writeWav(audio, SAMPLE_RATE);
    const result = this.stt.transcribe(wav, abort.signal);
    const early: EarlyRequest = { pauseId, wav, requestAt: this.clock.date(), result, abort };
    this.early = early;
    // Awaited (and errors reported) by the turn that takes it; here only a look at the text.
    result.then(
      (r) => {
        if (this.early !== early || !stillInPause(pauseId)) return;
        if (!/[.?!]["')\]]*$/.test(r.text.trim())) return;
        if (judgeTranscript(r.segments, speechMs, this.filter).kind === "use") endTurn();
      },
      () => undefined,
    );
  }

  /**
   * The caller spoke on after the pause: its transcript cannot be the turn's, so the request is
   * dropped now rather than at the next pause (the STT server stops working on it sooner).
   */
  callerWentOn(openPause: number | null): void {
    if (!this.early || this.early.pauseId === openPause) return;
    this.early.abort.abort();
    this.early = null;
  }

  /** The ending turn's audio: the last pause's request is the turn's (the same silence ended it). */
  takeTurnAudio(audio: Int16Array): TurnAudio {
    const early = this.early;
    this.early = null;
    return { wav: early?.wav ?? writeWav(audio, SAMPLE_RATE), early };
  }

  /** The turn's transcript and the filter's verdict, emitted as "stt"; never throws. */
  async recognise(turn: number, audio: TurnAudio, speechMs: number, signal: AbortSignal): Promise<Recognised> {
    const { early } = audio;
    const requestAt = early?.requestAt ?? this.clock.date();
    try {
      let pending: Promise<SttResult>;
      if (early) {
        // The turn's interruption (a new turn, the call's end) aborts the early request as its own.
        if (signal.aborted) early.abort.abort();
        else signal.addEventListener("abort", () => early.abort.abort(), { once: true });
        pending = early.result;
      } else pending = this.stt.transcribe(audio.wav, signal);
      const result = await pending;
      const verdict = judgeTranscript(result.segments, speechMs, this.filter);
      const { text, segments } = result;
      this.emit({ type: "stt", turn, requestAt, responseMs: Math.round(result.requestMs), text, segments, dropped: verdict.dropped, verdict: verdict.kind });
      return { kind: "verdict", verdict };
    } catch (err) {
      if (signal.aborted) return { kind: "aborted" };
      const responseMs = this.clock.date().getTime() - requestAt.getTime();
      this.emit({ type: "stt", turn, requestAt, responseMs, text: "", segments: [], dropped: [], verdict: "error", error: String((err as Error).message) });
      return { kind: "error" };
    }
  }

  close(): void {
    this.early?.abort.abort();
    this.early = null;
  }
}
