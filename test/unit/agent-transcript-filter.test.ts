/** The hallucination filter: a table of what faster-whisper returns and what the agent does with it. */
import t from "tap";
import { judgeTranscript, type SttSegment } from "../../media-agent/src/pipeline/transcript-filter.js";

const seg = (text: string, o: Partial<SttSegment> = {}): SttSegment => ({
  start: 0, end: 2, text, avg_logprob: -0.25, compression_ratio: 1.3, no_speech_prob: 0.02, ...o,
});

const CASES: Array<{ name: string; segments: SttSegment[]; speechMs: number; want: string; text?: string }> = [
  { name: "clear speech is used", segments: [seg(" What's the weather in Düsseldorf?")], speechMs: 1600, want: "use", text: "What's the weather in Düsseldorf?" },
  { name: "'Thank you.' on a silent turn is dropped and ignored", segments: [seg(" Thank you.", { no_speech_prob: 0.7, avg_logprob: -0.9 })], speechMs: 250, want: "ignore" },
  { name: "'Thank you.' after short speech is dropped even when confident", segments: [seg("Thank you.", { no_speech_prob: 0.01 })], speechMs: 400, want: "ignore" },
  { name: "a real 'Thank you' (long speech, confident) is kept", segments: [seg("Thank you.", { no_speech_prob: 0.01, end: 1.2 })], speechMs: 1200, want: "use", text: "Thank you." },
  { name: "Amara.org credits on noise are dropped", segments: [seg("Subtitles by the Amara.org community", { no_speech_prob: 0.4 })], speechMs: 900, want: "ask-to-repeat" },
  { name: "no speech and low log-probability: dropped; real speech heard → ask to repeat", segments: [seg("I I I", { no_speech_prob: 0.8, avg_logprob: -1.4 })], speechMs: 1500, want: "ask-to-repeat" },
  { name: "a repetition loop (compression ratio) is dropped", segments: [seg("the the the the the the the the the the the the", { compression_ratio: 3.1 })], speechMs: 2000, want: "ask-to-repeat" },
  { name: "an implausible word rate is dropped", segments: [seg("one two three four five six seven eight nine ten eleven twelve", { end: 0.8 })], speechMs: 800, want: "ask-to-repeat" },
  { name: "good segments survive beside a dropped one", segments: [seg("I need a taxi", { end: 1.5 }), seg("Thanks for watching!", { start: 1.5, end: 2, no_speech_prob: 0.5 })], speechMs: 1500, want: "use", text: "I need a taxi" },
  { name: "nothing at all after a cough is ignored", segments: [], speechMs: 300, want: "ignore" },
];

for (const c of CASES) {
  t.test(c.name, async (t) => {
    const v = judgeTranscript(c.segments, c.speechMs);
    t.equal(v.kind, c.want);
    if (v.kind === "use") t.equal(v.text, c.text);
    const used = v.kind === "use" ? v.text : "";
    const expectedDropped = c.segments.map((x) => x.text.trim()).filter((x) => !used.includes(x));
    t.same(v.dropped.map((d) => d.text), expectedDropped, "every dropped segment is listed");
    t.ok(v.dropped.every((d) => d.reason.length > 10), "each with its reason");
  });
}
