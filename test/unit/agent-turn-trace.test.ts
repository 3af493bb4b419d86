/** A turn record's timeline: every moment the record knows of, in time order, from its fields. */
import t from "tap";
import { traceRecord, turnEvents, type TurnTrace } from "../../media-agent/src/pipeline/turn-trace.js";

const SPEECH_END = "2026-12-02T10:00:00.000Z";

function turn(extra: Partial<TurnTrace>): TurnTrace {
  return { turn: 3, llm: [], toolResults: [], tts: [], t0: 0, speechEnd: SPEECH_END, speechMs: 1200, turnDecidedMs: 400, ...extra };
}

t.test("a weather turn: STT from the pause, an LLM round with a tool, the answer, the first audible packet", async (t) => {
  const trace = turn({
    stt: { requestAt: "2026-12-02T10:00:00.200Z", responseMs: 150, text: " Weather in Bonn?", segments: [], dropped: [], verdict: "use" },
    llm: [
      { requestAt: "", requestMs: 402, messages: [], tools: ["get_weather"], firstTokenMs: 180, doneMs: 190, text: "", toolCalls: [{ function: { name: "get_weather", arguments: { city: "Bonn" } } }] },
      { requestAt: "", requestMs: 600, messages: [], tools: [], firstTokenMs: 150, doneMs: 400, text: "Sunny.", toolCalls: [] },
    ],
    toolResults: [{ name: "get_weather", arguments: { city: "Bonn" }, ok: true, content: "sunny", atMs: 598 }],
    tts: [{ text: "Sunny.", engine: "piper", requestMs: 760, firstAudioMs: 120, synthesisMs: 150 }],
    firstPacketOutMs: 885,
    firstAudibleOutMs: 905,
  });
  const events = turnEvents(trace);
  t.same(events.map((e) => [e.ms, e.event]), [
    [0, "caller speech ended"], [200, "STT request"], [350, "STT answer"], [400, "turn decided"], [402, "LLM request"],
    [582, "LLM first token"], [592, "LLM done"], [598, "tool result"], [600, "LLM request"], [750, "LLM first token"],
    [760, "TTS request"], [880, "TTS first audio"], [885, "first packet out"], [905, "first audible packet out"], [910, "TTS done"], [1000, "LLM done"],
  ]);
  t.match(events.find((e) => e.event === "STT answer"), { detail: "use: Weather in Bonn?" });
  t.match(events.find((e) => e.event === "LLM done"), { detail: "tools: get_weather" });
  t.same(traceRecord(trace).events, events, "the record carries its timeline");
});

t.test("a key press that cut a reply, and a silent caller's reprompt", async (t) => {
  const cut = turnEvents(turn({ speechEnd: undefined, turnDecidedMs: undefined, bargeIn: { onsetMs: 1500, detectedMs: 1500, lastPacketMs: 1490, stopMs: 0, heard: "It is" } }));
  t.same(cut.map((e) => e.event), ["last reply packet", "caller began speaking over the reply", "barge-in: reply paused"]);
  const key = turnEvents(turn({ speechEnd: undefined, turnDecidedMs: undefined, dtmf: "0" }));
  t.same(key, [{ ms: 0, event: "key pressed", detail: "0" }]);
  const idle = turnEvents(turn({ speechEnd: undefined, turnDecidedMs: undefined, idle: "reprompt 1", tts: [{ text: "Are you still there?", engine: "espeak-ng", requestMs: 0, synthesisMs: 40 }] }));
  t.same(idle.map((e) => e.event), ["caller silent", "TTS request", "TTS done"]);
});
