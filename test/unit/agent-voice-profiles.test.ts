/** AGENT_VOICE_PROFILES: defaults filled in, and every error names the profile and the field. */
import t from "tap";
import { parseVoiceProfiles, preparedLinesOf, voiceProfile } from "../../media-agent/src/pipeline/voice-profiles.js";

const minimal = {
  greeting: "Hello.",
  systemPrompt: "Be brief.",
  language: "de",
  stt: { url: "http://127.0.0.1:8000" },
  llm: { url: "http://127.0.0.1:11434", model: "qwen2.5:3b" },
  tts: { engine: "espeak-ng" },
};

t.test("a minimal profile gets the documented defaults", async (t) => {
  const spec = parseVoiceProfiles(JSON.stringify({ line: minimal }), "profiles.json").line;
  t.match(spec, {
    stt: { model: "Systran/faster-whisper-small", timeoutMs: 4000 },
    llm: { keepAlive: -1, numPredict: 160, timeoutMs: 6000 },
    tts: { engine: "espeak-ng", voice: "en-us", speed: 165 },
    tools: [],
    turns: { hangoverMs: 400, minSpeechMs: 200 },
    bargeIn: { minSpeechMs: 200, echoGuardMs: 250, backchannels: ["mhm", "mm", "hmm", "uh huh", "okay", "ok", "yes", "yeah", "right", "sure", "ja", "genau"] },
    transcriptFilter: { noSpeechProb: 0.6, avgLogprob: -1, compressionRatio: 2.4, realSpeechMs: 700 },
    maxToolRounds: 2,
  });
  const running = voiceProfile(spec, "/tmp/traces");
  t.match(running, { stt: { config: { language: "de" } }, llm: { config: { baseUrl: "http://127.0.0.1:11434", model: "qwen2.5:3b" } }, tools: [] });
  t.equal(running.tts.name, "espeak-ng");
});

t.test("only the tools a profile names are offered", async (t) => {
  const spec = parseVoiceProfiles(JSON.stringify({ line: { ...minimal, tools: ["get_time", "end_call"] } }), "p.json").line;
  t.same(voiceProfile(spec, "/tmp").tools.map((x) => x.spec.function.name), ["get_time", "end_call"]);
});

t.test("the lines kept in memory: the filler and the apology, and with a transfer target its announcement", async (t) => {
  const plain = parseVoiceProfiles(JSON.stringify({ line: { ...minimal, filler: "Hm.", apology: "Sorry." } }), "p.json").line;
  t.same(preparedLinesOf(plain), ["Hm.", "Sorry."]);
  const withTransfer = parseVoiceProfiles(JSON.stringify({ line: { ...minimal, dtmf: { "0": "transfer" }, transfer: { target: "sip:desk@pbx.example.com" } } }), "p.json").line;
  t.same(preparedLinesOf(withTransfer), ["One moment.", "Sorry, I have a technical problem right now. Please try again in a moment.", "Please hold, I am connecting you to a colleague."]);
});

t.test("errors name the file, the profile and the field", async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ line: { ...minimal, language: "English" } }, /p\.json: line\.language: .*ISO 639-1/],
    [{ line: { ...minimal, tools: ["get_stock_price"] } }, /line\.tools\.0: /],
    [{ line: { ...minimal, tts: { engine: "piper" } } }, /line\.tts\.url: /],
    [{ line: { ...minimal, llm: { url: "not a url", model: "x" } } }, /line\.llm\.url: /],
    [{ line: { ...minimal, bargeIn: { minSpeechMs: 10 } } }, /line\.bargeIn\.minSpeechMs: /],
    [{ line: { ...minimal, bargeIn: { minSpeechMs: 160 } } }, /line\.bargeIn\.minSpeechMs: must be at least turns\.minSpeechMs \(200\)/],
    [{ line: { ...minimal, transcriptFilter: { noSpeechProb: 3 } } }, /line\.transcriptFilter\.noSpeechProb: /],
    [{ line: { ...minimal, greeting: undefined } }, /line\.greeting: /],
  ];
  for (const [json, message] of cases) t.throws(() => parseVoiceProfiles(JSON.stringify(json), "p.json"), { message }, String(message));
  t.throws(() => parseVoiceProfiles("{ nope", "p.json"), { message: /^AGENT_VOICE_PROFILES: p\.json is not JSON/ });
});

t.test("llm.keepAlive is checked as Ollama reads it: a number is seconds, a string a Go duration", async (t) => {
  const keepAlive = (value: unknown) => parseVoiceProfiles(JSON.stringify({ line: { ...minimal, llm: { ...minimal.llm, keepAlive: value } } }), "p.json").line.llm.keepAlive;
  for (const value of [-1, 300, 0, 1.5, "5m", "1h30m", "-1s", "300ms", "1.5h", ".5h", "2h45m30.5s", "10us", "10µs", "0", "-0", "+5m"]) t.equal(keepAlive(value), value, `${JSON.stringify(value)} is taken`);
  const cases: Array<[unknown, RegExp]> = [
    ["-1", /^AGENT_VOICE_PROFILES: p\.json: line\.llm\.keepAlive: '-1' is not a Go duration such as "5m", "1h30m" or "-1s" \(Ollama would answer every request with 400\); use the number -1 to keep the model loaded$/],
    ["5", /line\.llm\.keepAlive: '5' is not a Go duration .*; use the number 5 for seconds$/],
    ["5 minutes", /line\.llm\.keepAlive: '5 minutes' is not a Go duration .*; or a number of seconds \(-1 keeps the model loaded\)$/],
    ["", /line\.llm\.keepAlive: '' is not a Go duration/],
    ["5d", /line\.llm\.keepAlive: '5d' is not a Go duration/],
    ["m", /line\.llm\.keepAlive: 'm' is not a Go duration/],
    ["1h-5m", /line\.llm\.keepAlive: '1h-5m' is not a Go duration/],
    ["9999999999h", /line\.llm\.keepAlive: '9999999999h' is not a Go duration/],
    [true, /line\.llm\.keepAlive: /],
  ];
  for (const [value, message] of cases) t.throws(() => keepAlive(value), { message }, `${JSON.stringify(value)} is refused`);
});
