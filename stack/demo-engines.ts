/**
 * Stand-ins for the AI engines in `npm start`'s demo call, used only when no AGENT_VOICE_PROFILES
 * is configured (no engines can be downloaded here). Each says what it is in the logs and in the
 * greeting:
 *  - DEMO speech-to-text: the OpenAI-compatible double from the tests; it recognises only the demo
 *    caller's own lines, by comparing the audio it receives with them, so a broken media path
 *    still shows up as "not recognised".
 *  - DEMO "LLM": Ollama's streaming /api/chat protocol driven by three rules, not a language model:
 *    a city named → get_weather; a tool result → read it back; goodbye → end_call.
 *  - DEMO weather API: Open-Meteo's geocoding and forecast for two cities.
 * The voice is real: the built-in espeak-ng TTS.
 */
import { startOllamaDouble, type ChatMessages, type ScriptedReply } from "../doubles/ollama-double.js";
import { startSttDouble } from "../doubles/stt-double.js";
import { startWeatherDouble } from "../doubles/weather-double.js";
import type { Teardown } from "../build/teardown.js";

export const DEMO_PROFILE = "demo";
export const DEMO_VOICE = { voice: "en-us", speed: 165 };

/** The rules of the demo "LLM", given the conversation so far. */
export function demoLlmReply(messages: ChatMessages): ScriptedReply {
  const last = messages[messages.length - 1];
  if (last?.role === "tool") {
    if (last.tool_name !== "get_weather") return { text: "" };
    const spoken = last.content.replace(/°C/g, "degrees").replace(/km\/h/g, "kilometres an hour");
    return { text: `Here is the weather for ${spoken} Anything else?` };
  }
  const said = last?.content ?? "";
  if (/\b(bye|goodbye|that is all)\b/i.test(said)) return { toolCalls: [{ function: { name: "end_call", arguments: { reason: "the caller said goodbye" } } }] };
  const city = /\bweather in ([\p{L}][\p{L} -]*)/iu.exec(said)?.[1]?.trim();
  if (city) return { toolCalls: [{ function: { name: "get_weather", arguments: { city } } }] };
  return { text: "I am only the demo assistant. Ask me about the weather in Berlin or Dusseldorf." };
}

export interface DemoEngines {
  profilesJson: string;
  /** How many of the caller's turns the demo STT recognised as one of its lines. */
  recognisedLines(): number;
}

/** Starts the three stand-ins on loopback; `lines` are the demo caller's lines as 16 kHz audio. */
export async function startDemoEngines(t: Teardown, lines: Map<string, Int16Array>): Promise<DemoEngines> {
  const stt = await startSttDouble(t, { phrases: [...lines].map(([text, samples16k]) => ({ text: ` ${text}`, samples16k })), models: ["demo-stand-in"] });
  const llm = await startOllamaDouble(t, { script: demoLlmReply });
  const weather = await startWeatherDouble(t);
  const profiles = {
    [DEMO_PROFILE]: {
      greeting: "Hello, this is the demo voice agent on Kamailio. Speech recognition and the language model are demo stand-ins today. Ask me about the weather.",
      systemPrompt: "You are the weather line. Answer in one or two short sentences.",
      language: "en",
      stt: { url: stt.url, model: "demo-stand-in" },
      llm: { url: llm.url, model: "demo-rules" },
      tts: { engine: "espeak-ng", ...DEMO_VOICE },
      tools: ["get_weather", "end_call"],
      weather: { geocodingUrl: weather.url, forecastUrl: weather.url },
      goodbye: "Thank you for trying the demo. Goodbye!",
    },
  };
  return {
    profilesJson: JSON.stringify(profiles, null, 2),
    recognisedLines: () => stt.requests.filter((r) => r.matched !== null).length,
  };
}
