/**
 * The demo's stand-in engines (`npm start`'s demo) pass the same engine check the agent runs at
 * start and `npm run check:engines` runs: a demo profile that a strict double or the check
 * refuses would give the demo caller the apology instead of the weather.
 */
import t from "tap";
import { checkEngines } from "../../media-agent/src/engine-check.js";
import { parseVoiceProfiles } from "../../media-agent/src/pipeline/voice-profiles.js";
import { startDemoEngines } from "../../stack/demo-engines.js";

t.test("every engine of the demo profile passes the engine check, round trips included", async (t) => {
  const engines = await startDemoEngines(t, new Map([["What is the weather in Dusseldorf?", new Int16Array(16000)]]));
  const rows = await checkEngines(parseVoiceProfiles(engines.profilesJson, "demo"), { timeoutMs: 5000 });
  t.same(rows.filter((r) => !r.ok).map((r) => `${r.engine}: ${r.reason}`), [], "no ✗");
  t.same(rows.map((r) => r.engine).sort(), ["llm", "stt", "tts", "weather"]);
});
