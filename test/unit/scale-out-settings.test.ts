/** The scale-out settings: the agents' dispatcher list, Redis's server definition, state expiry, rtpengine sets. */
import t from "tap";
import { agentAlgorithm, dispatcherList, parseAgentUris, ROUND_ROBIN, tryNextAgent, WEIGHTED } from "../../routing/policy/agent-pool.js";
import { redisServerDefinition } from "../../build/kamailio.js";
import { DAY, emptyPairState, lastingUntil, TEMPORARY_PERMISSION_SECONDS } from "../../routing/policy/callback-rules.js";
import { loadSiteConfig } from "../../build/site-config.js";

t.test("WA_AGENT_URI becomes dispatcher's list: set 1, weights as shares of 100", async (t) => {
  const errors: string[] = [];
  const agents = parseAgentUris("sip:10.0.0.5:5080;weight=3, sip:10.0.0.6:5080", errors);
  t.same(errors, []);
  t.equal(
    dispatcherList(agents).split("\n").filter((l) => !l.startsWith("#")).join("\n"),
    "1 sip:10.0.0.5:5080 0 0 weight=75\n1 sip:10.0.0.6:5080 0 0 weight=25\n",
  );
  t.equal(agentAlgorithm(agents), WEIGHTED, "different weights: each agent its share");
  t.equal(agentAlgorithm(parseAgentUris("sip:10.0.0.5:5080, sip:10.0.0.6:5080", [])), ROUND_ROBIN, "equal weights: in turn");
});

t.test("only an agent that could not take the call hands it on", async (t) => {
  t.same([408, 500, 503, 599].map((s) => tryNextAgent(s, false)), [true, true, true, true]);
  t.same([404, 480, 486, 488, 603].map((s) => tryNextAgent(s, false)), [false, false, false, false, false]);
  t.equal(tryNextAgent(503, true), false, "not once the caller has hung up");
});

t.test("WA_STATE_REDIS_URL becomes ndb_redis's server definition; a malformed one names the key", async (t) => {
  t.equal(redisServerDefinition("redis://10.0.0.9"), "name=wa_state;addr=10.0.0.9;port=6379;db=0");
  t.equal(redisServerDefinition("redis://:p%40ss@redis.internal:6380/3"), "name=wa_state;addr=redis.internal;port=6380;db=3;pass=p@ss");
  for (const bad of ["10.0.0.9:6379", "redis://", "rediss://10.0.0.9", "redis://10.0.0.9:6379/x"]) {
    t.throws(() => redisServerDefinition(bad), /^WA_STATE_REDIS_URL: /, bad);
  }
});

t.test("a pair's Redis key lives as long as something in it matters", async (t) => {
  const now = 1_800_000_000;
  const s = emptyPairState();
  t.equal(lastingUntil({ ...s, permission: "temporary", permissionExpires: now + TEMPORARY_PERMISSION_SECONDS }), now + TEMPORARY_PERMISSION_SECONDS, "a temporary permission: 7 days");
  t.equal(lastingUntil({ ...s, connected: [now - 3600, now] }), now + DAY, "connected calls: 24 h after the last");
  t.equal(lastingUntil({ ...s, blockedUntil: now + 5 }), now + 5, "Meta's block: until it lifts");
  t.equal(lastingUntil({ ...s, permission: "permanent", connected: [now] }), null, "a permanent permission: for good");
  t.equal(lastingUntil({ ...s, unanswered: 1 }), null, "unanswered calls: until the user calls");
});

t.test("WA_RTPENGINE_SOCK may name a set; a malformed one names the key", async (t) => {
  const env = (sock: string) => ({ WA_NUMBERS: "+15550001111=sales", WA_RTPENGINE_SOCK: sock });
  t.equal(loadSiteConfig(undefined, env("udp:127.0.0.1:2223 udp:10.0.0.8:2223=2")).WA_RTPENGINE_SOCK, "udp:127.0.0.1:2223 udp:10.0.0.8:2223=2");
  t.throws(() => loadSiteConfig(undefined, env("udp:127.0.0.1")), /WA_RTPENGINE_SOCK/);
  t.throws(() => loadSiteConfig(undefined, { ...env("udp:127.0.0.1:2223"), WA_STATE_REDIS_URL: "10.0.0.9:6379" }), /WA_STATE_REDIS_URL/);
});
