/**
 * Barge-in: while the agent speaks, caller speech that lasts at least minSpeechMs stops it
 * (the caller is taking the turn). Ignored: speech starting within echoGuardMs of the agent
 * starting to speak (the phone leg's echo of our own voice), and shorter bursts (a cough, a
 * "mhm" — backchannels). Driven by the 20 ms frame clock with the VAD's per-frame decision, so
 * the decision lands within one frame of the threshold being reached. Longer acknowledgements
 * ("okay", "yes, yes") are told apart once transcribed (isBackchannel): the agent pauses at the
 * barge-in and goes on if that is all the caller said.
 */
import { normaliseText } from "./transcript-filter.js";

export interface BargeInOptions {
  minSpeechMs: number;
  echoGuardMs: number;
  frameMs: number;
}

/**
 * 200 ms: the same run of speech that opens a turn (turns.minSpeechMs), so every pause has a
 * turn that decides it (stop, or go on after noise or a backchannel). At the caller's ear the
 * agent then stops ~250 ms after they began (the VAD's onset lag, this, the jitter buffer).
 */
export const DEFAULT_BARGE_IN: BargeInOptions = { minSpeechMs: 200, echoGuardMs: 250, frameMs: 20 };

export type BargeInEvent = "barge-in" | null;

export class BargeInDetector {
  private speaking = false;
  private sinceAgentStartMs = 0;
  private speechRunMs = 0;
  /** At the last barge-in: how long before it the caller's speech began. */
  onsetAgoMs = 0;
  private readonly opts: BargeInOptions;

  constructor(opts: Partial<BargeInOptions> = {}) {
    this.opts = { ...DEFAULT_BARGE_IN, ...opts };
  }

  agentStarted(): void {
    this.speaking = true;
    this.sinceAgentStartMs = 0;
    this.speechRunMs = 0;
  }

  agentStopped(): void {
    this.speaking = false;
    this.speechRunMs = 0;
  }

  /** One frame of caller audio, as the VAD judged it. */
  callerFrame(isSpeech: boolean): BargeInEvent {
    if (!this.speaking) return null;
    this.sinceAgentStartMs += this.opts.frameMs;
    // A speech run that began inside the echo guard is taken for echo until it pauses.
    const runStartMs = this.sinceAgentStartMs - this.speechRunMs - this.opts.frameMs;
    if (!isSpeech) {
      this.speechRunMs = 0;
      return null;
    }
    this.speechRunMs += this.opts.frameMs;
    if (runStartMs < this.opts.echoGuardMs) return null;
    if (this.speechRunMs >= this.opts.minSpeechMs) {
      this.onsetAgoMs = this.speechRunMs;
      this.agentStopped();
      return "barge-in";
    }
    return null;
  }
}

/** Default words that acknowledge rather than interrupt. */
export const DEFAULT_BACKCHANNELS = ["mhm", "mm", "hmm", "uh huh", "okay", "ok", "yes", "yeah", "right", "sure", "ja", "genau"];

/**
 * Whether an utterance over the agent was only acknowledgement ("okay", "yes, yes", "mhm"):
 * then the agent's reply goes on where it paused. Compared without case and punctuation.
 */
export function isBackchannel(text: string, backchannels: string[]): boolean {
  const words = normaliseText(text);
  if (!words) return false;
  const known = backchannels.map(normaliseText);
  // "yes yes", "okay right": every part must be a backchannel on its own
  let rest = words;
  while (rest) {
    const hit = known.filter((k) => k && (rest === k || rest.startsWith(`${k} `))).sort((a, b) => b.length - a.length)[0];
    if (!hit) return false;
    rest = rest.slice(hit.length).trim();
  }
  return true;
}

export interface SpokenPiece {
  text: string;
  /** How long its audio is. */
  durationMs: number;
}

/**
 * What the caller heard of a reply cut off after playedMs of audio: whole pieces, then the
 * share of the interrupted piece's words that had been played. This, not the whole reply,
 * goes into the conversation.
 */
export function heardText(pieces: SpokenPiece[], playedMs: number): string {
  const heard: string[] = [];
  let left = playedMs;
  for (const p of pieces) {
    if (left <= 0) break;
    if (left >= p.durationMs) {
      heard.push(p.text);
      left -= p.durationMs;
      continue;
    }
    const words = p.text.split(/\s+/).filter(Boolean);
    const count = Math.floor((words.length * left) / p.durationMs);
    if (count > 0) heard.push(`${words.slice(0, count).join(" ")}…`);
    break;
  }
  return heard.join(" ");
}
