/**
 * SIP edge hardening: the real Kamailio (kamailio/kamailio.cfg, the real bundle) under malformed
 * SIP with connection churn over TLS from Meta's prefixes (127.0.0.2), malformed datagrams and a
 * flood on the internal UDP listener, and slow/idle TLS connections, all at once; then the same
 * corpus at a running media agent. Kamailio 5.6.3 with OpenSSL 3 used to lose TLS workers here
 * ("qm_free(): BUG: freeing already freed pointer ... ser_free", "exited by a signal"; see
 * docs "TLS hardening"): nothing of that may appear, and both listeners must still answer.
 */
import t from "tap";
import { spawn } from "node:child_process";
import { join, resolve } from "node:path";
import { REPO_ROOT } from "../../build/bundle.js";
import { freePort, freePortRange } from "../../build/ports.js";
import { malformedCorpus, validOptions } from "../support/malformed-corpus.js";
import { startRoutingUnderTest } from "../support/routing-under-test.js";
import { tempDir } from "../support/temp-dir.js";
import { churnTls, sendUdp, tlsRequest, udpRequest } from "../support/tls-churn.js";
import { trap } from "../support/sip-peer.js";

const META = "127.0.0.2";
const SEED = 20261202;
const TLS_MESSAGES = 4600;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Retries until a final status comes back: pike may still hold a flooding source for a few seconds. */
async function eventually(ask: () => Promise<number | null>, withinMs: number): Promise<number | null> {
  const deadline = Date.now() + withinMs;
  let last: number | null = null;
  while (Date.now() < deadline) {
    last = await ask();
    if (last === 200) return last;
    await sleep(500);
  }
  return last;
}

t.setTimeout(110_000);

t.test("Kamailio survives malformed SIP with TLS connection churn, floods and slow connections", async (t) => {
  // The agent and the transfer proxy are traps: no malformed request may reach either (no
  // business number is configured, so even a well-formed INVITE from Meta's prefix is refused).
  const agent = await trap(t);
  const pbx = await trap(t);
  const k = await startRoutingUnderTest(t, {
    env: {
      WA_META_PREFIXES: `${META}/32`,
      WA_AGENT_URI: `sip:${agent.host}:${agent.port}`,
      WA_TRANSFER_PROXY: `sip:${pbx.host}:${pbx.port}`,
    },
  });
  const started = Date.now();
  const [churn, slow, udpMalformed, udpFlood] = await Promise.all([
    churnTls({
      target: k.tls, localAddress: META, corpus: malformedCorpus(TLS_MESSAGES, SEED),
      concurrency: 24, maxDurationMs: 60_000, seed: SEED,
    }),
    // Slow writers and idle connections held alongside the churn.
    churnTls({
      target: k.tls, localAddress: META, corpus: malformedCorpus(80, SEED + 1), messages: 80,
      concurrency: 30, maxDurationMs: 20_000, seed: SEED + 1,
      modes: { "send-wait-close": 0, "send-close": 0, "send-destroy": 0, "half-close": 0, reset: 0, "handshake-close": 0, "handshake-reset": 0, garbage: 0, "truncated-hello": 0, "partial-message": 1, slow: 3, idle: 2 },
      slowMs: 3000, idleMs: 3000,
    }),
    sendUdp({ target: k.internal, datagrams: malformedCorpus(1500, SEED + 2).map((c) => c.data), maxDurationMs: 20_000 }),
    // A few seconds of valid OPTIONS as fast as they go.
    sendUdp({ target: k.internal, datagrams: [validOptions({ via: "SIP/2.0/UDP 127.0.0.1:9;received=127.0.0.1", callId: "flood" })], repeat: 30_000, maxDurationMs: 3000, burst: 100 }),
  ]);
  const seconds = (Date.now() - started) / 1000;
  t.comment(
    `TLS churn from ${META}: ${churn.messagesSent} malformed messages on ${churn.connections} connections ` +
      `(${churn.handshakes} handshakes, ${churn.replies} SIP replies, ${churn.timedOut} timed out) in ${(churn.durationMs / 1000).toFixed(1)} s; ` +
      `modes ${JSON.stringify(churn.byMode)}`,
  );
  t.comment(`slow/idle TLS: ${slow.connections} connections, ${slow.messagesSent} messages, ${slow.replies} replies, ${slow.timedOut} timed out`);
  t.comment(`internal UDP: ${udpMalformed.sent} malformed datagrams (${udpMalformed.replies} replies), flood ${udpFlood.sent} OPTIONS in ${(udpFlood.durationMs / 1000).toFixed(1)} s (${udpFlood.replies} replies)`);
  t.comment(`all load phases together: ${seconds.toFixed(1)} s`);

  t.ok(churn.messagesSent >= 4500, `at least 4,500 malformed messages over TLS (${churn.messagesSent})`);
  t.notOk(churn.cutShort, "the churn sent its whole corpus within its time limit (no hang)");
  t.ok(churn.connections >= 1000, `with connection churn (${churn.connections} connections)`);
  t.equal(churn.timedOut, 0, "no TLS connection hung until the per-connection limit");
  t.ok(udpFlood.sent > 1000, `a flood went out (${udpFlood.sent} datagrams)`);

  t.ok(k.kamailio.running, "Kamailio is still running");
  const tlsStatus = await eventually(() => tlsRequest(k.tls, validOptions({ via: `SIP/2.0/TLS ${META}:5061` }), { localAddress: META, timeoutMs: 3000 }), 20_000);
  t.equal(tlsStatus, 200, "a valid OPTIONS over TLS from Meta's prefix is answered 200");
  const udpStatus = await eventually(() => udpRequest(k.internal, (l) => validOptions({ via: `SIP/2.0/UDP ${l.host}:${l.port}` })), 20_000);
  t.equal(udpStatus, 200, "a valid OPTIONS on the internal UDP listener is answered 200");

  // The log is large: compare line counts (tap's own diff of the whole text overflows the stack).
  const lines = k.kamailio.logText().split("\n");
  const matching = (re: RegExp) => lines.filter((l) => re.test(l));
  t.same(matching(/exited by a signal/), [], "no Kamailio process exited by a signal");
  t.same(matching(/BUG:/).slice(0, 5), [], "no memory BUG (double free) in the log");
  t.same(matching(/SIGSEGV|SIGABRT/).slice(0, 5), [], "no SIGSEGV/SIGABRT");
  t.same(matching(/routing error in/).slice(0, 5), [], "no request made the routing throw");
  t.same(agent.received.map((b) => b.toString("latin1").split("\r\n")[0]).slice(0, 5), [], "nothing reached the agent");
  t.same(pbx.received.map((b) => b.toString("latin1").split("\r\n")[0]).slice(0, 5), [], "nothing reached the transfer proxy");
});

t.test("the media agent survives the malformed corpus on its SIP port", async (t) => {
  const dir = tempDir(t, "wa-agent-churn-");
  const kamailio = { host: "127.0.0.1", port: await freePort() }; // the test plays Kamailio
  const sip = { host: "127.0.0.1", port: await freePort() };
  const rtp = await freePortRange(20);
  const child = spawn(process.execPath, ["--import=tsx", resolve(REPO_ROOT, "media-agent/src/main.ts")], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      AGENT_SIP: `${sip.host}:${sip.port}`,
      AGENT_KAMAILIO: `${kamailio.host}:${kamailio.port}`,
      AGENT_RTP_PORTS: `${rtp.min % 2 ? rtp.min + 1 : rtp.min}-${rtp.max}`,
      AGENT_API: `127.0.0.1:${await freePort()}`,
      AGENT_PROFILES: "default=echo",
      AGENT_RECORD_DIR: join(dir, "rec"),
      AGENT_TRACE_DIR: join(dir, "trace"),
      AGENT_LOG_LEVEL: "error",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<void>((r) => child.once("exit", (code, signal) => {
    exit = { code, signal };
    r();
  }));
  t.teardown(async () => {
    if (!exit) {
      child.kill("SIGTERM");
      await Promise.race([exited, sleep(5000)]);
      if (!exit) child.kill("SIGKILL");
    }
  });
  const options = () => udpRequest(sip, validOptions({ via: `SIP/2.0/UDP ${kamailio.host}:${kamailio.port}` }), { local: kamailio, timeoutMs: 1000 });
  t.equal(await eventually(options, 20_000), 200, `the agent answers OPTIONS before the corpus ${output}`);

  // From Kamailio's address (the only peer it serves) and from a stranger.
  const fromKamailio = await sendUdp({ target: sip, local: kamailio, datagrams: malformedCorpus(2000, SEED + 3).map((c) => c.data), maxDurationMs: 20_000 });
  const fromStranger = await sendUdp({ target: sip, local: { host: "127.0.0.3" }, datagrams: malformedCorpus(500, SEED + 4).map((c) => c.data), maxDurationMs: 10_000 });
  t.comment(`agent: ${fromKamailio.sent} malformed datagrams from Kamailio's address (${fromKamailio.replies} replies: ${JSON.stringify(fromKamailio.statuses)}), ${fromStranger.sent} from 127.0.0.3 (${fromStranger.replies} replies)`);
  t.equal(exit, undefined, `the agent process is still running ${output.slice(-2000)}`);
  t.equal(await eventually(options, 10_000), 200, "the agent still answers OPTIONS 200");
});
