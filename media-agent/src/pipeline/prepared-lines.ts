/**
 * A profile's filler, apology and transfer announcement (preparedLinesOf), synthesised once and
 * then played from memory.
 *   - The filler is the one line whose moment is set: `fillerAfterMs` after the caller stopped
 *     speaking, the caller should hear it, and until then they hear dead air. Asked of the TTS at
 *     that moment, it came a synthesis later (espeak-ng 40–100 ms, Piper 100–200 ms on a GPU,
 *     more on a busy one). Prepared, its first frame goes out on the next 20 ms tick.
 *   - The apology is what the caller hears when the TTS itself fails (voice-pipeline.ts), and
 *     the announcement what they hear before a transfer: from memory, both are heard with the
 *     TTS down.
 * The lines are the same in every call of the profile, so they are synthesised once per profile
 * (at the agent's start, or when first needed if the engine was down then), with their Opus
 * payloads: ~35 KB per second of audio.
 */
import { copyPayloads, type PackedPayloads } from "../codecs/opus.js";
import type { OnAudio } from "./synthesis-pool.js";
import type { Speech, TtsEngine, WholeSpeech } from "./tts.js";

interface Piece {
  samples: Int16Array;
  /** The piece's Opus payloads when it was synthesised for an Opus call. */
  opus: PackedPayloads | null;
}

export class PreparedLines implements TtsEngine {
  readonly name: string;
  /** Each prepared line's audio, as the engine handed it over. */
  private readonly audio = new Map<string, Piece[]>();

  constructor(
    private readonly engine: TtsEngine,
    private readonly lines: readonly string[],
  ) {
    this.name = engine.name;
  }

  /** Synthesises the lines not in memory yet, with Opus payloads (WhatsApp's calls are Opus); rejects with the engine's error. */
  async prepare(signal: AbortSignal): Promise<void> {
    for (const line of this.lines) if (!this.audio.has(line)) await this.synthesize(line, signal, () => {}, true);
  }

  /** Whether the line is in memory. */
  has(line: string): boolean {
    return this.audio.has(line);
  }

  synthesize(text: string, signal: AbortSignal): Promise<WholeSpeech>;
  synthesize(text: string, signal: AbortSignal, onAudio?: OnAudio, opus?: boolean): Promise<Speech>;
  async synthesize(text: string, signal: AbortSignal, onAudio?: OnAudio, opus = false): Promise<Speech> {
    // Any other text, and a caller that wants the clause whole, go to the engine as they are.
    if (!onAudio || !this.lines.includes(text)) return this.engine.synthesize(text, signal, onAudio, opus);
    const kept = this.audio.get(text);
    if (kept) {
      for (const piece of kept) onAudio(piece.samples, opus ? (piece.opus ?? undefined) : undefined);
      return { samples: null, firstByteMs: 0, synthesisMs: 0 };
    }
    // Copied as they come: a speech worker's pieces are views of its IPC buffer.
    const pieces: Piece[] = [];
    const keep: OnAudio = (samples, payloads) => {
      pieces.push({ samples: samples.slice(), opus: payloads ? copyPayloads(payloads) : null });
      onAudio(samples, payloads);
    };
    const speech = await this.engine.synthesize(text, signal, keep, opus);
    if (!pieces.length && speech.samples) {
      pieces.push({ samples: speech.samples.slice(), opus: null }); // an engine that hands the clause over whole
      onAudio(speech.samples);
    }
    // Only a whole line is kept: an aborted one would play cut short in every later call.
    if (!signal.aborted && pieces.length) this.audio.set(text, pieces);
    return { ...speech, samples: null };
  }
}
