/** The media agent's settings: defaults, and errors that name the key. */
import t from "tap";
import { parseAgentConfig } from "../../media-agent/src/config.js";

t.test("defaults: loopback SIP 5080 behind Kamailio 5070, Opus first, echo profile", async (t) => {
  const r = parseAgentConfig({});
  if (!r.ok) throw new Error(r.errors.join("; "));
  t.same(r.config.AGENT_SIP, { host: "127.0.0.1", port: 5080 });
  t.same(r.config.AGENT_KAMAILIO, { host: "127.0.0.1", port: 5070 });
  t.same(r.config.AGENT_CODECS, ["opus", "PCMA", "PCMU"]);
  t.same(r.config.AGENT_PROFILES, { default: { kind: "echo" } });
  t.same(r.config.AGENT_RTP_PORTS, { min: 31000, max: 31999 });
  t.equal(r.config.AGENT_OPUS_COMPLEXITY, 5);
});

t.test("AGENT_OPUS_COMPLEXITY: a whole number 0–10; anything else is named", async (t) => {
  for (const good of ["0", "1", "10"]) t.match(parseAgentConfig({ AGENT_OPUS_COMPLEXITY: good }), { ok: true, config: { AGENT_OPUS_COMPLEXITY: Number(good) } }, good);
  for (const bad of ["11", "-1", "2.5", "low"]) {
    const r = parseAgentConfig({ AGENT_OPUS_COMPLEXITY: bad });
    t.same(r.ok ? [] : r.errors, ["AGENT_OPUS_COMPLEXITY: expected a whole number 0–10"], bad);
  }
});

t.test("profiles and codecs are parsed; every bad value is reported with its key", async (t) => {
  const ok = parseAgentConfig({ AGENT_PROFILES: "sales=play-record:/srv/hello.wav, support=echo", AGENT_DEFAULT_PROFILE: "support", AGENT_CODECS: "PCMA" });
  t.ok(ok.ok);
  if (ok.ok) t.same(ok.config.AGENT_PROFILES.sales, { kind: "play-record", prompt: "/srv/hello.wav" });
  const bad = parseAgentConfig({
    AGENT_SIP: "localhost",
    AGENT_CODECS: "opus,G729",
    AGENT_RTP_PORTS: "31001-31000",
    AGENT_PROFILES: "sales=play-record",
    AGENT_RTP_TIMEOUT_S: "soon",
  });
  t.notOk(bad.ok);
  if (!bad.ok) {
    const text = bad.errors.join("\n");
    for (const key of ["AGENT_SIP", "AGENT_CODECS", "AGENT_RTP_PORTS", "AGENT_PROFILES", "AGENT_RTP_TIMEOUT_S"]) t.match(text, new RegExp(`${key}:`), key);
  }
  const noDefault = parseAgentConfig({ AGENT_PROFILES: "sales=echo" });
  t.same(noDefault.ok ? [] : noDefault.errors, ["AGENT_DEFAULT_PROFILE: not one of the names in AGENT_PROFILES"]);
});
