/**
 * What speech recognition returned, judged before anything reaches the LLM
 * (shared/docs/voice-agent.md, "Hallucination vs. asking back"). Whisper invents text on
 * silence and noise ("Thank you.", "Thanks for watching"); such segments are dropped with the
 * reason kept for the turn trace. A turn that held real speech but yields nothing usable asks
 * the caller to repeat; a turn of mere noise is ignored.
 */

export interface SttSegment {
  start: number;
  end: number;
  text: string;
  avg_logprob: number;
  compression_ratio: number;
  no_speech_prob: number;
}

export interface DroppedSegment {
  text: string;
  reason: string;
}

export type TranscriptVerdict =
  | { kind: "use"; text: string; dropped: DroppedSegment[] }
  /** Real speech, nothing usable: the agent asks the caller to say it again. */
  | { kind: "ask-to-repeat"; dropped: DroppedSegment[] }
  /** No real speech (noise, a cough, silence): nothing happens. */
  | { kind: "ignore"; dropped: DroppedSegment[] };

export interface FilterThresholds {
  noSpeechProb: number;
  avgLogprob: number;
  compressionRatio: number;
  /** Speech at least this long (VAD) counts as real speech. */
  realSpeechMs: number;
  /** Plausible speaking rate, words per second of segment time. */
  maxWordsPerSecond: number;
}

export const DEFAULT_THRESHOLDS: FilterThresholds = {
  noSpeechProb: 0.6,
  avgLogprob: -1.0,
  compressionRatio: 2.4,
  realSpeechMs: 700,
  maxWordsPerSecond: 6,
};

/** Whisper's well-known inventions on silence, compared without case and punctuation. */
export const SILENCE_PHRASES = [
  "thank you", "thank you very much", "thanks for watching", "thank you for watching",
  "please subscribe", "subtitles by the amara org community", "you", "bye", "okay",
  "vielen dank", "untertitel im auftrag des zdf", "merci", "gracias",
].map(normaliseText);

/** Lower case, no punctuation, single spaces: how transcripts are compared with word lists. */
export function normaliseText(text: string): string {
  return text.toLowerCase().replace(/[^\p{L}\p{N}\s]/gu, " ").replace(/\s+/g, " ").trim();
}

function segmentProblem(s: SttSegment, speechMs: number, t: FilterThresholds): string | null {
  const text = normaliseText(s.text);
  if (!text) return "empty";
  if (s.no_speech_prob > t.noSpeechProb && s.avg_logprob < t.avgLogprob) {
    return `no_speech_prob ${s.no_speech_prob.toFixed(2)} > ${t.noSpeechProb} with avg_logprob ${s.avg_logprob.toFixed(2)} < ${t.avgLogprob}`;
  }
  if (s.compression_ratio > t.compressionRatio) return `compression_ratio ${s.compression_ratio.toFixed(2)} > ${t.compressionRatio} (repetition)`;
  if (SILENCE_PHRASES.includes(text) && (speechMs < t.realSpeechMs || s.no_speech_prob > 0.1)) {
    return `known silence phrase with ${speechMs} ms of speech, no_speech_prob ${s.no_speech_prob.toFixed(2)}`;
  }
  const seconds = Math.max(0.2, s.end - s.start);
  const words = text.split(" ").length;
  if (words / seconds > t.maxWordsPerSecond) return `${words} words in ${seconds.toFixed(1)} s is not speech`;
  return null;
}

/** speechMs: how long the VAD heard speech in this turn. */
export function judgeTranscript(segments: SttSegment[], speechMs: number, t: FilterThresholds = DEFAULT_THRESHOLDS): TranscriptVerdict {
  const dropped: DroppedSegment[] = [];
  const kept: string[] = [];
  for (const s of segments) {
    const problem = segmentProblem(s, speechMs, t);
    if (problem) dropped.push({ text: s.text.trim(), reason: problem });
    else kept.push(s.text.trim());
  }
  if (kept.length > 0) return { kind: "use", text: kept.join(" "), dropped };
  return speechMs >= t.realSpeechMs ? { kind: "ask-to-repeat", dropped } : { kind: "ignore", dropped };
}
