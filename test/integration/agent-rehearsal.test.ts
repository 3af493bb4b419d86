/**
 * The start-up rehearsal (media-agent/src/calls/rehearsal.ts), from outside: a media agent with
 * a voice profile calls itself once per codec before its SIP listener opens, with the real VAD,
 * espeak-ng and RTP, and leaves nothing behind (no call in its list, no call metrics, no trace,
 * no temp dir, no request to the engines, its RTP ports free for the first real call). A
 * rehearsal that fails is logged with the step it reached and the agent starts anyway. Its
 * private SIP socket answers nobody but the rehearsal caller, and the caller hears nobody but it.
 */
import t from "tap";
import { createSocket } from "node:dgram";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { freePort, freePortRange } from "../../build/ports.js";
import { MediaAgent } from "../../media-agent/src/agent.js";
import { startApi } from "../../media-agent/src/api/http.js";
import { rehearse } from "../../media-agent/src/calls/rehearsal.js";
import { parseAgentConfig, type AgentConfig } from "../../media-agent/src/config.js";
import { parseVoiceProfiles } from "../../media-agent/src/pipeline/voice-profiles.js";
import { EspeakTts } from "../../media-agent/src/pipeline/tts.js";
import { buildResponse, parseSipMessage, serializeSipMessage, type SipMessage } from "../../media-agent/src/sip/message.js";
import { startOllamaDouble } from "../../doubles/ollama-double.js";
import { startSttDouble } from "../../doubles/stt-double.js";
import { tempDir } from "../support/temp-dir.js";
import type { Teardown } from "../../build/teardown.js";

t.setTimeout(120_000);

const QUESTION = "What time is it?";

interface LogLine {
  msg: string;
  level: number;
  rehearsal?: boolean;
  calls?: Array<{ codec: string; ok: boolean; reached: string; error?: string }>;
}

/** The agent's settings with a voice profile on the engine doubles; its log lines as they are written. */
async function voiceAgentSettings(t: Teardown, extra: Record<string, string> = {}) {
  const dir = tempDir(t, "wa-rehearsal-");
  // The STT double recognises the rehearsal's question: had the rehearsal sent it, the double would say so.
  const question = (await new EspeakTts({ voice: "en-us", speed: 165 }).synthesize(QUESTION, AbortSignal.timeout(10_000))).samples;
  const stt = await startSttDouble(t, { phrases: [{ text: QUESTION, samples16k: question }] });
  const ollama = await startOllamaDouble(t, { script: () => ({ text: "It is noon." }) });
  const profiles = join(dir, "voice.json");
  writeFileSync(profiles, JSON.stringify({
    weather: { greeting: "Hello, this is the weather line.", systemPrompt: "Weather line.", language: "en", stt: { url: stt.url }, llm: { url: ollama.url, model: "llama3.2:3b" }, tts: { engine: "espeak-ng" } },
  }));
  const ports = await freePortRange(20);
  const kamailioPort = await freePort();
  const traceDir = join(dir, "traces");
  const env = {
    AGENT_SIP: `127.0.0.1:${await freePort()}`,
    AGENT_KAMAILIO: `127.0.0.1:${kamailioPort}`,
    AGENT_RTP_PORTS: `${ports.min}-${ports.max}`,
    AGENT_API: `127.0.0.1:${await freePort()}`,
    AGENT_PROFILES: "echo=echo",
    AGENT_VOICE_PROFILES: profiles,
    AGENT_DEFAULT_PROFILE: "weather",
    AGENT_CODECS: "opus,PCMU",
    AGENT_TRACE_DIR: traceDir,
    ...extra,
  };
  const parsed = parseAgentConfig(env);
  if (!parsed.ok) throw new Error(parsed.errors.join("; "));
  const lines: LogLine[] = [];
  const log = pino({ level: "info" }, new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(JSON.parse(chunk.toString()) as LogLine), done()) }));
  return { config: parsed.config, log, lines, stt, ollama, kamailioPort, traceDir, dir };
}

/** This test's own temp dir as the process's (os.tmpdir reads TMPDIR on each call): what the rehearsal leaves there shows. */
function ownTmpdir(t: Teardown): string {
  const dir = tempDir(t, "wa-rehearsal-tmp-");
  const before = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  t.teardown(() => (before === undefined ? delete process.env.TMPDIR : (process.env.TMPDIR = before)));
  return dir;
}

/** A call as Kamailio would send it (from its address): the INVITE's final answer, then ACK and BYE when it was 200. */
async function callAgent(t: Teardown, kamailioPort: number, agentPort: number, rtpPort: number): Promise<SipMessage> {
  const socket = createSocket("udp4");
  await new Promise<void>((done) => socket.bind(kamailioPort, "127.0.0.1", done));
  t.teardown(() => socket.close());
  const sdp = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0", `m=audio ${rtpPort} RTP/AVP 0`, "a=rtpmap:0 PCMU/8000", "a=sendrecv", ""].join("\r\n");
  const request = (method: string, cseq: number, toTag: string, body = "") =>
    [
      `${method} sip:+4921100000@127.0.0.1:${agentPort} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${kamailioPort};branch=z9hG4bK-${method}-${cseq}`,
      "From: <sip:+4917600000@127.0.0.1>;tag=caller",
      `To: <sip:+4921100000@127.0.0.1>${toTag}`,
      "Call-ID: first-real-call",
      `CSeq: ${cseq} ${method}`,
      `Contact: <sip:caller@127.0.0.1:${kamailioPort}>`,
      ...(body ? ["Content-Type: application/sdp"] : []),
      `Content-Length: ${Buffer.byteLength(body)}`,
      "",
      body,
    ].join("\r\n");
  const finalAnswer = (method: string) =>
    new Promise<SipMessage>((done) => {
      const onMessage = (buf: Buffer) => {
        const msg = parseSipMessage(buf.toString());
        if (msg.kind === "response" && msg.status >= 200 && msg.headers.some((h) => h.name === "CSeq" && h.value.endsWith(method))) {
          socket.off("message", onMessage);
          done(msg);
        }
      };
      socket.on("message", onMessage);
    });
  const answered = finalAnswer("INVITE");
  socket.send(request("INVITE", 1, "", sdp), agentPort, "127.0.0.1");
  const answer = await answered;
  if (answer.status === 200) {
    const toTag = `;tag=${/;tag=([^;]+)/.exec(answer.headers.find((h) => h.name === "To")!.value)![1]}`;
    socket.send(request("ACK", 1, toTag), agentPort, "127.0.0.1");
    const ended = finalAnswer("BYE");
    socket.send(request("BYE", 2, toTag), agentPort, "127.0.0.1");
    await ended;
  }
  return answer;
}

t.test("a voice agent rehearses a call per codec before it listens, and nothing of it stays", async (t) => {
  const tmp = ownTmpdir(t);
  const s = await voiceAgentSettings(t);
  const agent = await MediaAgent.start(s.config, s.log);
  t.teardown(() => agent.stop());

  const done = s.lines.find((l) => l.msg === "rehearsal calls done");
  t.ok(done, "the rehearsal is logged");
  t.match(done?.calls, [{ codec: "opus", ok: true, reached: "ended" }, { codec: "PCMU", ok: true, reached: "ended" }], "one call per codec, each through the greeting, a question, the reply and the BYE");
  t.ok(s.lines.findIndex((l) => l.msg === "rehearsal calls done") < s.lines.findIndex((l) => l.msg === "media agent listening"), "before the SIP listener opens");
  t.same(s.lines.filter((l) => l.rehearsal && l.level >= 40), [], "no warning or error from the rehearsal's calls");
  t.notOk(s.lines.some((l) => /call answered|call ended/.test(l.msg)), "its calls are not logged as calls");

  t.equal(agent.calls.size, 0, "no call in the agent's list");
  const api = await startApi(agent, { host: "127.0.0.1", port: await freePort() });
  t.teardown(() => api.close());
  const metrics = await (await fetch(`http://127.0.0.1:${(api.address() as { port: number }).port}/metrics`)).text();
  t.notMatch(metrics, /^wa_agent_calls_total\{/m, "no call counted in the metrics");
  t.notMatch(metrics, /^wa_agent_rtp_packets_total\{/m, "nor its packets");
  t.notMatch(metrics, /^wa_agent_turn_stage_seconds_count\{stage="stt"\}/m, "nor its turn's stages");
  for (const zero of ["wa_agent_active_calls 0", "wa_agent_frame_lateness_seconds_count 0", "wa_agent_rtp_jitter_seconds_count 0"]) {
    t.ok(metrics.split("\n").includes(zero), `an idle agent's zero series are there, as before any call: ${zero}`);
  }
  t.same(readdirSync(tmp).filter((name) => name.startsWith("wa-agent-rehearsal-")), [], "its temporary trace directory is removed");
  t.same(existsSync(s.traceDir) ? readdirSync(s.traceDir) : [], [], "nothing in the agent's trace directory");
  t.notOk(s.stt.requests.some((r) => r.matched === QUESTION), "the STT never heard the rehearsal's question");
  t.notOk(s.ollama.requests.some((r) => JSON.stringify(r.messages).includes(QUESTION)), "the LLM never got it");

  const sip = agent.sipAddress;
  const answer = await callAgent(t, s.kamailioPort, sip.port, await freePort());
  t.equal(answer.status, 200, "the first real call is answered");
  t.equal(agent.calls.size, 1, "and is the only call in the list");
});

t.test("a rehearsal that fails is logged with the step it reached, and the agent starts and takes calls", async (t) => {
  // One RTP port pair: the rehearsal's caller takes it, so its agent has none for the answer.
  const ports = await freePortRange(4);
  const s = await voiceAgentSettings(t, { AGENT_RTP_PORTS: `${ports.min}-${ports.min + 2}`, AGENT_CODECS: "PCMU" });
  const agent = await MediaAgent.start(s.config, s.log);
  t.teardown(() => agent.stop());

  const failed = s.lines.find((l) => l.msg.startsWith("a rehearsal call failed"));
  t.ok(failed, "logged as a warning");
  t.match(failed?.calls, [{ codec: "PCMU", ok: false, reached: "started", error: /503 Service Unavailable - No RTP Ports/ }], "naming the step and the cause");
  t.ok(s.lines.some((l) => l.msg === "media agent listening"), "the agent starts anyway");
  const answer = await callAgent(t, s.kamailioPort, agent.sipAddress.port, await freePort());
  t.equal(answer.status, 200, "and its RTP pair is free for the first real call");
});

t.test("the rehearsal agent's SIP socket answers only the rehearsal caller (anyone else gets 403), and the caller hears only the rehearsal agent", async (t) => {
  const s = await voiceAgentSettings(t, { AGENT_CODECS: "PCMU" });
  const stranger = createSocket("udp4");
  await new Promise<void>((done) => stranger.bind(0, "127.0.0.1", done));
  t.teardown(() => stranger.close());
  const strangerAnswers: SipMessage[] = [];
  stranger.on("message", (buf) => strangerAnswers.push(parseSipMessage(buf.toString())));
  const spec = parseVoiceProfiles(JSON.stringify({ weather: { greeting: "Hi.", systemPrompt: "x", language: "en", stt: { url: s.stt.url }, llm: { url: s.ollama.url, model: "m" }, tts: { engine: "espeak-ng" } } }), "test").weather;
  let rehearsalAgent: MediaAgent | undefined;
  let forgedAnswers = 0;
  const outcomes = await rehearse(s.config, s.log, { name: "weather", spec }, async (config: AgentConfig, log, hooks) => {
    // The agent the rehearsal would open, without voice profiles of its own (its hooks give the audio).
    rehearsalAgent = await MediaAgent.start({ ...config, AGENT_VOICE_PROFILES: undefined }, log, hooks);
    const { port } = rehearsalAgent.sipAddress;
    // And to the rehearsal caller (its socket is the rehearsal agent's AGENT_KAMAILIO): a forged
    // "486 Busy Here" for each rehearsal INVITE, sent as soon as the agent has it, before its 200.
    rehearsalAgent.ua.on("invite", (invite) => {
      stranger.send(serializeSipMessage(buildResponse(invite.request, 486, "Busy Here")), config.AGENT_KAMAILIO.port, "127.0.0.1");
      forgedAnswers++;
    });
    stranger.send(
      [`INVITE sip:rehearsal@127.0.0.1:${port} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${(stranger.address()).port};branch=z9hG4bK-stranger`, "From: <sip:x@127.0.0.1>;tag=x", "To: <sip:rehearsal@127.0.0.1>", "Call-ID: stranger", "CSeq: 1 INVITE", "Content-Length: 0", "", ""].join("\r\n"),
      port,
      "127.0.0.1",
    );
    return rehearsalAgent;
  });
  t.equal(forgedAnswers, 1, "a forged answer went to the rehearsal caller");
  t.match(outcomes, [{ codec: "PCMU", ok: true, reached: "ended" }], "the rehearsal itself went through: the caller heard only the rehearsal agent");
  t.match(strangerAnswers.map((m) => `${m.status} ${m.reason}`), ["403 Forbidden - Only Kamailio May Talk To The Agent"], "the stranger's INVITE is refused");
  t.equal(rehearsalAgent?.calls.has("stranger"), false, "and made no call");
});
