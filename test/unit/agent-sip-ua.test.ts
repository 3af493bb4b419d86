/**
 * The media agent's SIP side over real UDP on loopback, with the test playing Kamailio:
 * INVITE → 100/180/200 with SDP and RTP at once, retransmissions, ACK, BYE both ways,
 * CANCEL, OPTIONS, malformed input, strangers, RTP timeout and maximum duration, and the
 * outbound call API.
 */
import t from "tap";
import { execFileSync } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import { writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { tempDir } from "../support/temp-dir.js";
import { pino } from "pino";
import { freePort, freePortRange } from "../../build/ports.js";
import { sleep } from "../../build/kamailio.js";
import { MediaAgent } from "../../media-agent/src/agent.js";
import { Call } from "../../media-agent/src/calls/call.js";
import { startApi } from "../../media-agent/src/api/http.js";
import { parseAgentConfig } from "../../media-agent/src/config.js";
import { header, parseSipMessage, type SipMessage } from "../../media-agent/src/sip/message.js";
import { SipTransport } from "../../media-agent/src/sip/transport.js";
import { parseRtp } from "../../media-agent/src/rtp/packet.js";
import { traceFileOf } from "../../media-agent/src/pipeline/turn-trace.js";
import { createCodec, type AudioCodec } from "../../media-agent/src/codecs/codec.js";
import { DEFAULT_OPUS_COMPLEXITY, releaseEncoder, setOpusSettings, takeEncoder } from "../../media-agent/src/codecs/opus.js";

interface Peer {
  socket: Socket;
  port: number;
  received: SipMessage[];
  raw: string[];
  send(text: string, to?: number): void;
  next(pred: (m: SipMessage) => boolean, timeoutMs?: number): Promise<SipMessage>;
}

async function udpPeer(t: { teardown(fn: () => unknown): void }, agentPort: () => number): Promise<Peer> {
  const socket = createSocket("udp4");
  const port = await freePort();
  await new Promise<void>((done) => socket.bind(port, "127.0.0.1", done));
  t.teardown(() => socket.close());
  const peer: Peer = {
    socket,
    port,
    received: [],
    raw: [],
    send(text, to = agentPort()) {
      socket.send(text.replace(/\r?\n/g, "\r\n"), to, "127.0.0.1");
    },
    async next(pred, timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const i = peer.received.findIndex(pred);
        if (i >= 0) return peer.received.splice(i, 1)[0];
        if (Date.now() > deadline) throw new Error(`no matching message; got: ${peer.raw.map((r) => r.split("\r\n")[0]).join(" | ")}`);
        await sleep(10);
      }
    },
  };
  socket.on("message", (buf) => {
    peer.raw.push(buf.toString());
    peer.received.push(parseSipMessage(buf.toString()));
  });
  return peer;
}

async function rtpSink(t: { teardown(fn: () => unknown): void }): Promise<{ port: number; packets: Buffer[]; firstAt: number | null }> {
  const socket = createSocket("udp4");
  const port = 2 * Math.floor((await freePort()) / 2);
  const sink = { port, packets: [] as Buffer[], firstAt: null as number | null };
  await new Promise<void>((done) => socket.bind(port, "127.0.0.1", done));
  socket.on("message", (b) => {
    sink.firstAt ??= Date.now();
    sink.packets.push(b);
  });
  t.teardown(() => socket.close());
  return sink;
}

async function startAgent(t: { teardown(fn: () => unknown): void }, kamailioPort: number, extra: Record<string, string> = {}) {
  const ports = await freePortRange(20);
  const parsed = parseAgentConfig({
    AGENT_SIP: `127.0.0.1:${await freePort()}`,
    AGENT_KAMAILIO: `127.0.0.1:${kamailioPort}`,
    AGENT_RTP_PORTS: `${ports.min}-${ports.max}`,
    AGENT_API: `127.0.0.1:${await freePort()}`,
    AGENT_PROFILES: "sales=echo,default=echo",
    ...extra,
  });
  if (!parsed.ok) throw new Error(parsed.errors.join("; "));
  const agent = await MediaAgent.start(parsed.config, pino({ level: "silent" }));
  t.teardown(() => agent.stop());
  return agent;
}

function offer(rtpPort: number, formats = "111 8 0 126"): string {
  return [
    "v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
    `m=audio ${rtpPort} RTP/AVP ${formats}`, "a=rtpmap:111 opus/48000/2", "a=rtpmap:8 PCMA/8000", "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:126 telephone-event/8000", "a=rtcp:" + (rtpPort + 1), "a=ptime:20", "a=sendrecv", "",
  ].join("\r\n");
}

function invite(kamailioPort: number, callId: string, sdp: string, branch = "z9hG4bK-k1", extra: string[] = []): string {
  return [
    "INVITE sip:+15550001111@127.0.0.1 SIP/2.0",
    `Via: SIP/2.0/UDP 127.0.0.1:${kamailioPort};branch=${branch}`,
    "Via: SIP/2.0/TLS 157.240.19.130:5061;branch=z9hG4bK-meta1",
    `Record-Route: <sip:127.0.0.1:${kamailioPort};r2=on;lr>`,
    "Record-Route: <sip:203.0.113.5:5061;transport=tls;r2=on;lr>",
    "Max-Forwards: 69",
    "From: <sip:+15551234567@wa.meta.vc>;tag=meta1",
    "To: <sip:+15550001111@sip.example.com>",
    `Call-ID: ${callId}`,
    "CSeq: 1 INVITE",
    "Contact: <sip:157.240.19.130:5061;transport=tls>",
    "X-WA-Profile: sales",
    ...extra,
    "Content-Type: application/sdp",
    `Content-Length: ${Buffer.byteLength(sdp)}`,
    "",
    sdp,
  ].join("\r\n");
}

function inDialog(method: string, kamailioPort: number, callId: string, toTag: string, cseq: number, branch: string): string {
  return [
    `${method} sip:agent@127.0.0.1 SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${kamailioPort};branch=${branch}`,
    "Max-Forwards: 69",
    "From: <sip:+15551234567@wa.meta.vc>;tag=meta1",
    `To: <sip:+15550001111@sip.example.com>;tag=${toTag}`,
    `Call-ID: ${callId}`,
    `CSeq: ${cseq} ${method}`,
    "Content-Length: 0",
    "",
    "",
  ].join("\r\n");
}

/** An answered, acknowledged call: the agent's 200 and its To tag. */
async function establish(kamailio: Peer, callId: string, rtpPort: number, branch: string): Promise<{ ok: SipMessage; toTag: string }> {
  kamailio.send(invite(kamailio.port, callId, offer(rtpPort), `z9hG4bK-${branch}-inv`));
  const ok = await kamailio.next((m) => m.status === 200 && header(m, "Call-ID") === callId);
  const toTag = /tag=([^;>\s]+)/.exec(header(ok, "To")!)![1];
  kamailio.send(inDialog("ACK", kamailio.port, callId, toTag, 1, `z9hG4bK-${branch}-ack`));
  return { ok, toTag };
}

t.test("INVITE: 100, 180, 200 with an Opus answer, and the first RTP packet leaves at once", async (t) => {
  let agent!: MediaAgent;
  const kamailio = await udpPeer(t, () => agent.sipAddress.port);
  agent = await startAgent(t, kamailio.port);
  const rtp = await rtpSink(t);
  kamailio.send(invite(kamailio.port, "call-1", offer(rtp.port)));
  await kamailio.next((m) => m.status === 100);
  await kamailio.next((m) => m.status === 180);
  const ok = await kamailio.next((m) => m.status === 200);
  const okAt = Date.now();
  t.match(ok.body, /m=audio \d+ RTP\/AVP 111 126/);
  t.match(ok.body, /a=fmtp:111 maxaveragebitrate=20000;maxplaybackrate=16000;minptime=20;sprop-maxcapturerate=16000;useinbandfec=1/);
  t.equal(ok.headers.filter((h) => h.name === "Record-Route").length, 2, "Record-Route copied into the 200");
  t.match(header(ok, "Contact"), /^<sip:agent@127\.0\.0\.1:\d+>$/);
  await sleep(300);
  t.ok(rtp.firstAt !== null && rtp.firstAt - okAt < 60, `first packet ${rtp.firstAt! - okAt} ms after the 200 OK`);
  const first = parseRtp(rtp.packets[0]);
  t.ok(first.marker, "marker bit on the first packet");
  t.equal(first.payloadType, 111);
  t.ok(rtp.packets.length >= 12 && rtp.packets.length <= 18, `about 15 packets in 300 ms (${rtp.packets.length}): silence keeps flowing`);

  // The 2xx is retransmitted until the ACK arrives.
  const toTag = /tag=([^;>\s]+)/.exec(header(ok, "To")!)![1];
  await kamailio.next((m) => m.status === 200, 1500);
  kamailio.send(inDialog("ACK", kamailio.port, "call-1", toTag, 1, "z9hG4bK-ack1"));
  await sleep(1200);
  kamailio.received.length = 0;
  await sleep(1500);
  t.same(kamailio.received.map((m) => m.status), [], "no retransmission after the ACK");

  const ended = new Promise((done) => agent.once("ended", done));
  kamailio.send(inDialog("BYE", kamailio.port, "call-1", toTag, 2, "z9hG4bK-bye1"));
  const byeOk = await kamailio.next((m) => m.status === 200 && /BYE/.test(header(m, "CSeq")!));
  t.ok(byeOk);
  await ended;
  const count = rtp.packets.length;
  await sleep(200);
  t.equal(rtp.packets.length, count, "RTP stops with the BYE");
  t.equal(agent.calls.get("call-1")?.status, "ended");
});

/** Sends `count` OPTIONS from <kamailio port> to <agent port>: a process of its own (argv: kamailio port, agent port, count). */
const BURST_SENDER = `
const [kamailioPort, agentPort, count] = process.argv.slice(1).map(Number);
const s = require("node:dgram").createSocket("udp4");
s.bind(kamailioPort, "127.0.0.1", async () => {
  for (let i = 0; i < count; i++) {
    const text = ["OPTIONS sip:agent@127.0.0.1 SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:" + kamailioPort + ";branch=z9hG4bK-burst" + i,
      "From: <sip:kamailio@127.0.0.1>;tag=burst" + i, "To: <sip:agent@127.0.0.1>", "Call-ID: burst-" + i, "CSeq: 1 OPTIONS",
      "Max-Forwards: 70", "Content-Length: 0", "", ""].join("\\r\\n");
    await new Promise((done) => s.send(text, agentPort, "127.0.0.1", done));
  }
  s.close();
});`;

t.test("SIP messages read in one poll are handled in order, a few per loop turn: a timer due meanwhile runs between them", async (t) => {
  // 50 INVITEs arriving together (read in one poll), each parsed and its call started in that
  // poll, held every call's frame clock ~25 ms (bench/agent.ts, voice calls at once).
  const kamailioPort = await freePort();
  const handled: string[] = [];
  let timerAfter = -1;
  const transport = await SipTransport.open({
    bind: { host: "127.0.0.1", port: 0 },
    kamailio: { host: "127.0.0.1", port: kamailioPort },
    log: pino({ level: "silent" }),
    onMessage: (msg) => {
      if (handled.length === 0) setTimeout(() => (timerAfter = handled.length), 0);
      handled.push(header(msg, "Call-ID")!);
      const until = performance.now() + 1; // an INVITE's parsing and its call's start
      while (performance.now() < until);
    },
  });
  t.teardown(() => transport.close());
  const count = 20;
  // Sent by another process while this one's loop waits for it: all are read in one poll.
  execFileSync(process.execPath, ["-e", BURST_SENDER, String(kamailioPort), String(transport.local.port), String(count)]);
  for (let waited = 0; handled.length < count && waited < 3000; waited += 5) await sleep(5);
  t.same(handled, Array.from({ length: count }, (_, i) => `burst-${i}`), "every message handled, in the order sent");
  t.ok(timerAfter > 0 && timerAfter < 5, `the timer ran after ${timerAfter} of the ${count} messages`);
});

t.test("BYEs read together: each is answered at once, and the calls' teardowns are spread over later loop turns", async (t) => {
  // A mass hang-up (every BYE read in one poll) must not hold the loop for all its teardowns:
  // the calls still up need their 20 ms ticks in between. Each teardown here takes 2 ms, more
  // than a turn's budget for them (loop-turns.ts), so each gets a turn of its own.
  let agent!: MediaAgent;
  const kamailio = await udpPeer(t, () => agent.sipAddress.port);
  agent = await startAgent(t, kamailio.port);
  const rtp = await rtpSink(t);
  const callIds = ["mass-1", "mass-2", "mass-3", "mass-4"];
  const toTags = new Map<string, string>();
  for (const [i, callId] of callIds.entries()) toTags.set(callId, (await establish(kamailio, callId, rtp.port, `mass${i}`)).toTag);
  await sleep(100);

  // Count event-loop turns (one per check phase) and note the turn each teardown starts in.
  let turn = 0;
  let counting = true;
  const countTurns = () => {
    turn++;
    if (counting) setImmediate(countTurns);
  };
  const endTurns = new Map<string, number>();
  const end = Call.prototype.end;
  t.teardown(() => {
    Call.prototype.end = end;
    counting = false;
  });
  Call.prototype.end = function (this: Call, reason: string) {
    endTurns.set(this.record.callId, turn);
    const until = performance.now() + 2;
    while (performance.now() < until);
    return end.call(this, reason);
  };
  const ended = new Promise<void>((done) => {
    let left = callIds.length;
    agent.on("ended", () => --left === 0 && done());
  });
  setImmediate(countTurns);
  for (const [i, callId] of callIds.entries()) kamailio.send(inDialog("BYE", kamailio.port, callId, toTags.get(callId)!, 2, `z9hG4bK-mass-bye${i}`));
  for (const callId of callIds) await kamailio.next((m) => m.status === 200 && /BYE/.test(header(m, "CSeq")!) && header(m, "Call-ID") === callId);
  await ended;
  t.same(callIds.map((callId) => agent.calls.get(callId)?.status), ["ended", "ended", "ended", "ended"]);
  const turns = callIds.map((callId) => endTurns.get(callId)!);
  t.equal(new Set(turns).size, callIds.length, `each teardown in a turn of its own (turns ${turns.join(", ")})`);
});

t.test("a BYE stops the call's RTP and frees its ports at once, however late its teardown's loop turn comes", async (t) => {
  // On a loaded agent the teardown's turn (loop-turns.ts) can come hundreds of ms after the BYE;
  // with many calls ending each second, ports held until then ran out for new calls.
  let agent!: MediaAgent;
  const kamailio = await udpPeer(t, () => agent.sipAddress.port);
  agent = await startAgent(t, kamailio.port);
  const rtp = await rtpSink(t);
  const { ok, toTag } = await establish(kamailio, "late-teardown", rtp.port, "late");
  const agentRtpPort = Number(/m=audio (\d+)/.exec(ok.body)![1]);
  await sleep(100);

  // The teardown held back for 1 s, as a busy loop would.
  const end = Call.prototype.end;
  t.teardown(() => {
    Call.prototype.end = end;
  });
  let teardownStarted = false;
  Call.prototype.end = function (this: Call, reason: string) {
    return sleep(1000).then(() => {
      teardownStarted = true;
      return end.call(this, reason);
    });
  };
  kamailio.send(inDialog("BYE", kamailio.port, "late-teardown", toTag, 2, "z9hG4bK-late-bye"));
  await kamailio.next((m) => m.status === 200 && /BYE/.test(header(m, "CSeq")!));
  await sleep(50);
  const count = rtp.packets.length;
  for (const port of [agentRtpPort, agentRtpPort + 1]) {
    const socket = createSocket("udp4");
    const bound = await new Promise<boolean>((done) => {
      socket.once("error", () => done(false));
      socket.bind(port, "127.0.0.1", () => done(true));
    });
    socket.close();
    t.ok(bound, `port ${port} is free again right after the BYE`);
  }
  await sleep(200);
  t.equal(rtp.packets.length, count, "no RTP after the BYE");
  t.notOk(teardownStarted, "while the rest of the teardown still waited");
  await sleep(1000);
  t.equal(agent.calls.get("late-teardown")?.status, "ended", "and the call is ended once it ran");
});

t.test("several Kamailio nodes: answers and in-dialog requests go to the node that holds the call; a Via or Route naming anyone else is not followed", async (t) => {
  let agent!: MediaAgent;
  const home = await udpPeer(t, () => agent.sipAddress.port);
  const node = await udpPeer(t, () => agent.sipAddress.port);
  const stranger = await udpPeer(t, () => agent.sipAddress.port);
  agent = await startAgent(t, home.port, { AGENT_KAMAILIO_PEERS: `127.0.0.1:${node.port}` });
  const rtp = await rtpSink(t);
  // Trusted: the other node's call. Its 200 and the agent's BYE go back there, not home.
  node.send(invite(node.port, "call-node", offer(rtp.port)));
  const ok = await node.next((m) => m.status === 200);
  const toTag = /tag=([^;>\s]+)/.exec(header(ok, "To")!)![1];
  node.send(inDialog("ACK", node.port, "call-node", toTag, 1, "z9hG4bK-n-ack"));
  await sleep(100);
  await agent.hangUp("call-node", "test");
  const bye = await node.next((m) => m.method === "BYE");
  t.match(header(bye, "Route"), new RegExp(`^<sip:127\\.0\\.0\\.1:${node.port};`), "along the route set");
  t.same(home.received.map((m) => m.method || m.status), [], "nothing of that call went to AGENT_KAMAILIO");

  // Someone else tries: a request from a node whose Via and top Record-Route name a stranger.
  const forged = invite(home.port, "call-forged", offer(rtp.port), "z9hG4bK-forged")
    .replace(`Via: SIP/2.0/UDP 127.0.0.1:${home.port};`, `Via: SIP/2.0/UDP 127.0.0.1:${stranger.port};`)
    .replace(`Record-Route: <sip:127.0.0.1:${home.port};r2=on;lr>`, `Record-Route: <sip:127.0.0.1:${stranger.port};r2=on;lr>`);
  home.send(forged);
  const forgedOk = await home.next((m) => m.status === 200);
  const forgedTag = /tag=([^;>\s]+)/.exec(header(forgedOk, "To")!)![1];
  home.send(inDialog("ACK", home.port, "call-forged", forgedTag, 1, "z9hG4bK-f-ack"));
  await sleep(100);
  await agent.hangUp("call-forged", "test");
  await home.next((m) => m.method === "BYE");
  t.same(stranger.received.map((m) => m.method || m.status), [], "the stranger got no answer and no BYE: only Kamailio nodes are ever sent to");
});

t.test("retransmitted INVITE gets the same answer; CANCEL before the answer gets 200 + 487", async (t) => {
  let agent!: MediaAgent;
  const kamailio = await udpPeer(t, () => agent.sipAddress.port);
  agent = await startAgent(t, kamailio.port);
  const rtp = await rtpSink(t);
  const text = invite(kamailio.port, "call-2", offer(rtp.port, "18"), "z9hG4bK-k2");
  kamailio.send(text);
  const refused = await kamailio.next((m) => m.status === 488);
  t.match(refused.reason, /^Not Acceptable Here - no common codec/);
  kamailio.send(text);
  const again = await kamailio.next((m) => m.status >= 200);
  t.equal(again.status, 488, "the retransmission gets the same final answer");

  // CANCEL: the agent answers at once, so cancel races with the 200; a CANCEL for an unknown
  // transaction gets 481.
  kamailio.send(inDialog("CANCEL", kamailio.port, "call-x", "", 1, "z9hG4bK-nothing").replace(";tag=", ""));
  t.equal((await kamailio.next((m) => /CANCEL/.test(header(m, "CSeq")!))).status, 481);
});

t.test("OPTIONS, unknown methods, malformed messages and strangers", async (t) => {
  let agent!: MediaAgent;
  const kamailio = await udpPeer(t, () => agent.sipAddress.port);
  agent = await startAgent(t, kamailio.port);
  kamailio.send(inDialog("OPTIONS", kamailio.port, "opt-1", "", 1, "z9hG4bK-o1").replace(";tag=", ""));
  const options = await kamailio.next((m) => /OPTIONS/.test(header(m, "CSeq")!));
  t.equal(options.status, 200);
  t.equal(header(options, "Allow"), "INVITE, ACK, BYE, CANCEL, OPTIONS");
  kamailio.send(inDialog("SUBSCRIBE", kamailio.port, "sub-1", "", 1, "z9hG4bK-s1").replace(";tag=", ""));
  t.equal((await kamailio.next((m) => /SUBSCRIBE/.test(header(m, "CSeq")!))).status, 405);

  kamailio.send(inDialog("BYE", kamailio.port, "bad-1", "x", 1, "z9hG4bK-b1").replace("CSeq: 1 BYE", "CSeq: one BYE"));
  const bad = await kamailio.next((m) => m.status === 400);
  t.match(bad.reason, /^Bad Request - .*CSeq/i, `400 names the problem: ${bad.reason}`);
  kamailio.send("\x00\x01garbage that is not SIP\r\n\r\n");
  kamailio.send(inDialog("BYE", kamailio.port, "bad-2", "x", 1, "z9hG4bK-b2").replace("Content-Length: 0", "Content-Length: 50"));
  t.equal((await kamailio.next((m) => m.status === 400 && header(m, "Call-ID") === "bad-2")).status, 400);

  const stranger = await udpPeer(t, () => agent.sipAddress.port);
  stranger.send(inDialog("OPTIONS", stranger.port, "s-1", "", 1, "z9hG4bK-x1").replace(";tag=", ""));
  const refused = await stranger.next(() => true);
  t.equal(refused.status, 403);
  t.equal(refused.reason, "Forbidden - Only Kamailio May Talk To The Agent");
  t.equal(agent.calls.size, 0);
});

t.test("RTP timeout and maximum call duration end the call with a BYE carrying the reason", async (t) => {
  let agent!: MediaAgent;
  const kamailio = await udpPeer(t, () => agent.sipAddress.port);
  agent = await startAgent(t, kamailio.port, { AGENT_RTP_TIMEOUT_S: "1", AGENT_MAX_CALL_S: "30" });
  const rtp = await rtpSink(t);
  kamailio.send(invite(kamailio.port, "call-3", offer(rtp.port)));
  const ok = await kamailio.next((m) => m.status === 200);
  const toTag = /tag=([^;>\s]+)/.exec(header(ok, "To")!)![1];
  kamailio.send(inDialog("ACK", kamailio.port, "call-3", toTag, 1, "z9hG4bK-ack3"));
  const bye = await kamailio.next((m) => m.method === "BYE", 3000);
  t.match(header(bye, "Reason"), /RTP timeout/);
  t.match(bye.uri, /^sip:157\.240\.19\.130:5061;transport=tls$/, "BYE to the caller's Contact");
  t.same(bye.headers.filter((h) => h.name === "Route").map((h) => h.value), [
    `<sip:127.0.0.1:${kamailio.port};r2=on;lr>`, "<sip:203.0.113.5:5061;transport=tls;r2=on;lr>",
  ], "along the route set");
  t.equal(header(bye, "To"), "<sip:+15551234567@wa.meta.vc>;tag=meta1");
  kamailio.send(`SIP/2.0 200 OK\r\n${bye.headers.filter((h) => /^(Via|From|To|Call-ID|CSeq)$/.test(h.name)).map((h) => `${h.name}: ${h.value}`).join("\r\n")}\r\nContent-Length: 0\r\n\r\n`);
  t.equal(agent.calls.get("call-3")?.endReason, "local BYE: RTP timeout");

  agent = await startAgent(t, kamailio.port, { AGENT_MAX_CALL_S: "1" });
  kamailio.send(invite(kamailio.port, "call-4", offer(rtp.port), "z9hG4bK-k4"));
  await kamailio.next((m) => m.status === 200 && header(m, "Call-ID") === "call-4");
  const maxBye = await kamailio.next((m) => m.method === "BYE" && header(m, "Call-ID") === "call-4", 3000);
  t.match(header(maxBye, "Reason"), /maximum call duration/);
});

t.test("POST /calls places an outbound call: INVITE with an offer, ACK for 200, failed on 486", async (t) => {
  let agent!: MediaAgent;
  const kamailio = await udpPeer(t, () => agent.sipAddress.port);
  agent = await startAgent(t, kamailio.port);
  const api = await startApi(agent, { host: "127.0.0.1", port: await freePort() });
  t.teardown(() => api.close());
  const base = `http://127.0.0.1:${(api.address() as { port: number }).port}`;

  const bad = await fetch(`${base}/calls`, { method: "POST", body: JSON.stringify({ to: "12345", number: "+15550001111" }) });
  t.equal(bad.status, 400);
  t.match(((await bad.json()) as { error: string }).error, /to: expected the WhatsApp user's number as \+E\.164 or their business-scoped user id/);
  const bsuid = await fetch(`${base}/calls`, { method: "POST", body: JSON.stringify({ to: "US.13491208655302741918", number: "+15550001111", profile: "sales" }) });
  t.equal(bsuid.status, 202, "a business-scoped user id is called like a number");
  const toBsuid = await kamailio.next((m) => m.method === "INVITE");
  t.match(toBsuid.uri, /^sip:US\.13491208655302741918@127\.0\.0\.1:\d+$/);
  kamailio.send([
    "SIP/2.0 486 Busy Here", `Via: ${header(toBsuid, "Via")}`, `From: ${header(toBsuid, "From")}`, `To: ${header(toBsuid, "To")};tag=b0`,
    `Call-ID: ${header(toBsuid, "Call-ID")}`, `CSeq: ${header(toBsuid, "CSeq")}`, "Content-Length: 0", "", "",
  ].join("\r\n"));
  await kamailio.next((m) => m.method === "ACK");
  const unknown = await fetch(`${base}/calls`, { method: "POST", body: JSON.stringify({ to: "+15551234567", number: "+15550001111", profile: "nope" }) });
  t.equal(unknown.status, 400);

  const res = await fetch(`${base}/calls`, { method: "POST", body: JSON.stringify({ to: "+15551234567", number: "+15550001111", profile: "sales" }) });
  t.equal(res.status, 202);
  const { callId } = (await res.json()) as { callId: string };
  const inv = await kamailio.next((m) => m.method === "INVITE");
  t.equal(header(inv, "Call-ID"), callId);
  t.match(inv.uri, /^sip:\+15551234567@127\.0\.0\.1:\d+$/);
  t.match(header(inv, "From"), /^<sip:\+15550001111@127\.0\.0\.1>;tag=/);
  t.equal(header(inv, "X-WA-Profile"), "sales");
  t.match(inv.body, /m=audio (\d+) RTP\/AVP 111 8 0 126/);
  const rtp = await rtpSink(t);
  const via = header(inv, "Via")!;
  const answer = offer(rtp.port, "111 126");
  kamailio.send([
    "SIP/2.0 200 OK", `Via: ${via}`, `From: ${header(inv, "From")}`, `To: ${header(inv, "To")};tag=meta9`, `Call-ID: ${callId}`,
    `CSeq: ${header(inv, "CSeq")}`, `Record-Route: <sip:127.0.0.1:${kamailio.port};lr>`, "Contact: <sip:+15551234567@127.0.0.2>",
    "Content-Type: application/sdp", `Content-Length: ${answer.length}`, "", answer,
  ].join("\r\n"));
  const ack = await kamailio.next((m) => m.method === "ACK");
  t.equal(ack.uri, "sip:+15551234567@127.0.0.2");
  t.equal(header(ack, "Route"), `<sip:127.0.0.1:${kamailio.port};lr>`);
  await sleep(200);
  t.ok(rtp.packets.length > 5, "the agent speaks first on the answered call");
  const status = (await (await fetch(`${base}/calls/${encodeURIComponent(callId)}`)).json()) as { status: string; codec: string };
  t.same([status.status, status.codec], ["answered", "opus"]);
  const hangUp = await fetch(`${base}/calls/${encodeURIComponent(callId)}`, { method: "DELETE" });
  t.equal(hangUp.status, 200);
  t.equal((await kamailio.next((m) => m.method === "BYE")).method, "BYE");

  await fetch(`${base}/calls`, { method: "POST", body: JSON.stringify({ to: "+15557654321", number: "+15550001111" }) });
  const inv2 = await kamailio.next((m) => m.method === "INVITE");
  kamailio.send([
    "SIP/2.0 486 Busy Here", `Via: ${header(inv2, "Via")}`, `From: ${header(inv2, "From")}`, `To: ${header(inv2, "To")};tag=b1`,
    `Call-ID: ${header(inv2, "Call-ID")}`, `CSeq: ${header(inv2, "CSeq")}`, "Content-Length: 0", "", "",
  ].join("\r\n"));
  const ack2 = await kamailio.next((m) => m.method === "ACK");
  t.equal(header(ack2, "Via"), header(inv2, "Via"), "ACK for a failure reuses the INVITE's branch");
  await sleep(50);
  t.same([agent.calls.get(header(inv2, "Call-ID")!)?.status, agent.calls.get(header(inv2, "Call-ID")!)?.endReason], ["failed", "486 Busy Here"]);
  const metrics = await fetch(`${base}/metrics`);
  t.match(metrics.headers.get("content-type"), /^text\/plain; version=0\.0\.4/);
  const text = await metrics.text();
  t.match(text, /wa_agent_calls_total\{direction="outbound",profile="default",codec="none",status="failed",end_reason="486 Busy Here"\} [1-9]/, "the failed call is counted with its reason");
  t.match(text, /wa_agent_calls_total\{direction="outbound",profile="sales",codec="opus",status="ended",end_reason="local BYE"\} [1-9]/, "the answered call hung up through the API");
  t.match(text, /^wa_agent_active_calls 0$/m);
});

t.test("the call API keeps calls in progress and the last AGENT_CALL_HISTORY ended ones", async (t) => {
  let agent!: MediaAgent;
  const kamailio = await udpPeer(t, () => agent.sipAddress.port);
  agent = await startAgent(t, kamailio.port, { AGENT_CALL_HISTORY: "2" });
  const api = await startApi(agent, { host: "127.0.0.1", port: await freePort() });
  t.teardown(() => api.close());
  const base = `http://127.0.0.1:${(api.address() as { port: number }).port}`;
  const rtp = await rtpSink(t);
  kamailio.send(invite(kamailio.port, "long-call", offer(rtp.port)));
  await kamailio.next((m) => m.status === 200);

  const failed: string[] = [];
  for (let i = 0; i < 4; i++) {
    await fetch(`${base}/calls`, { method: "POST", body: JSON.stringify({ to: `+1555765432${i}`, number: "+15550001111" }) });
    const inv = await kamailio.next((m) => m.method === "INVITE");
    kamailio.send([
      "SIP/2.0 486 Busy Here", `Via: ${header(inv, "Via")}`, `From: ${header(inv, "From")}`, `To: ${header(inv, "To")};tag=b${i}`,
      `Call-ID: ${header(inv, "Call-ID")}`, `CSeq: ${header(inv, "CSeq")}`, "Content-Length: 0", "", "",
    ].join("\r\n"));
    await kamailio.next((m) => m.method === "ACK");
    failed.push(header(inv, "Call-ID")!);
  }
  await sleep(50);
  const statusOf = async (id: string) => (await fetch(`${base}/calls/${encodeURIComponent(id)}`)).status;
  t.same(await Promise.all(failed.map(statusOf)), [404, 404, 200, 200], "the two oldest ended calls are forgotten");
  t.equal(await statusOf("long-call"), 200, "the call in progress, older than all of them, is kept");
  const list = (await (await fetch(`${base}/calls`)).json()) as { active: number; calls: Array<{ callId: string }> };
  t.equal(list.active, 1);
  t.same(list.calls.map((c) => c.callId), ["long-call", failed[2], failed[3]]);
});

t.test("GET /healthz: 200 when every voice profile's engine answers and RTP ports are left; 503 naming the engine that does not", async (t) => {
  const dir = tempDir(t, "wa-health-");
  const up = createServer((_req, res) => res.end("ok"));
  await new Promise<void>((done) => up.listen(0, "127.0.0.1", done));
  t.teardown(() => up.close());
  const upUrl = `http://127.0.0.1:${(up.address() as { port: number }).port}`;
  const downUrl = `http://127.0.0.1:${await freePort()}`;
  const profiles = join(dir, "voice.json");
  const profile = (stt: string) => ({ greeting: "Hi.", systemPrompt: "x", language: "en", stt: { url: stt }, llm: { url: upUrl, model: "m" }, tts: { engine: "espeak-ng" } });
  writeFileSync(profiles, JSON.stringify({ good: profile(upUrl), bad: profile(downUrl) }));
  const agent = await startAgent(t, await freePort(), { AGENT_VOICE_PROFILES: profiles, AGENT_PROFILES: "default=echo" });
  const api = await startApi(agent, { host: "127.0.0.1", port: await freePort() });
  t.teardown(() => api.close());
  const res = await fetch(`http://127.0.0.1:${(api.address() as { port: number }).port}/healthz`);
  t.equal(res.status, 503);
  const health = (await res.json()) as { ok: boolean; engines: Array<{ profile: string; engine: string; ok: boolean; detail: string }>; rtp: { pairs: number; inUse: number; ok: boolean } };
  t.same(health.engines.filter((e) => !e.ok).map((e) => [e.profile, e.engine]), [["bad", "stt"]]);
  t.match(health.engines.find((e) => !e.ok)?.detail, /ECONNREFUSED/);
  t.same(health.engines.filter((e) => e.ok).map((e) => `${e.profile}/${e.engine}`).sort(), ["bad/llm", "good/llm", "good/stt"]);
  t.match(health.rtp, { pairs: 10, inUse: 0, ok: true });

  const plain = await startAgent(t, await freePort());
  const plainApi = await startApi(plain, { host: "127.0.0.1", port: await freePort() });
  t.teardown(() => plainApi.close());
  const ok = await fetch(`http://127.0.0.1:${(plainApi.address() as { port: number }).port}/healthz`);
  t.equal(ok.status, 200, "no voice profiles: nothing to reach, ports free");
});

t.test("the viewer's routes serve only a known call's own files: its turn audio (no other call's, no paths, no other files) and its trace records", async (t) => {
  const dir = tempDir(t, "wa-viewer-");
  const agent = await startAgent(t, await freePort(), { AGENT_TRACE_DIR: dir });
  const api = await startApi(agent, { host: "127.0.0.1", port: await freePort() });
  t.teardown(() => api.close());
  const base = `http://127.0.0.1:${(api.address() as { port: number }).port}`;
  const callId = "known-call";
  agent.newCall(callId, "inbound", "default", "+15550001111", "+15551234567");
  writeFileSync(join(dir, `${callId}-turn-1.wav`), "RIFF");
  writeFileSync(join(dir, "other-call-turn-1.wav"), "RIFF");
  writeFileSync(join(dir, "secret.txt"), "no");
  t.equal((await fetch(`${base}/calls/${callId}/audio/${callId}-turn-1.wav`)).status, 200, "its own turn audio");
  for (const [label, path] of [
    ["another call's file through this call", `/calls/${callId}/audio/other-call-turn-1.wav`],
    ["a call the agent does not know", `/calls/other-call/audio/other-call-turn-1.wav`],
    ["a path out of the trace directory", `/calls/${callId}/audio/..%2F..%2Fetc%2Fpasswd`],
    ["a file that is not a turn's audio", `/calls/${callId}/audio/secret.txt`],
    ["a name that only starts like one", `/calls/${callId}/audio/${callId}-turn-1.wav.bak`],
  ]) {
    t.equal((await fetch(`${base}${path}`)).status, 404, label);
  }
  t.equal((await fetch(`${base}/calls/${callId}/audio/${callId}-turn-2.wav`)).status, 404, "its own turn's audio that is not there");
  t.equal((await fetch(`${base}/calls/other-call/trace`)).status, 404, "no trace for an unknown call");
  t.same(await (await fetch(`${base}/calls/${callId}/trace`)).json(), [], "a known call without records yet: none");
  writeFileSync(traceFileOf(dir, callId), `${JSON.stringify({ turn: 0, spoken: "Hello." })}\n${JSON.stringify({ turn: 1, spoken: "Bye." })}\n`);
  t.match(await (await fetch(`${base}/calls/${callId}/trace`)).json(), [{ turn: 0, spoken: "Hello." }, { turn: 1, spoken: "Bye." }], "its records, in order");
});

t.test("AGENT_OPUS_COMPLEXITY reaches the encoder of every Opus call the agent carries", async (t) => {
  const frame = new Int16Array(320).map((_, i) => Math.round(8000 * Math.sin(i / 5) + 3000 * Math.sin(i / 1.7)));
  const encoded = (codec: AudioCodec) => Buffer.from(codec.encode(frame)).toString("hex");
  const byEncoder = (complexity: number) => {
    const encoder = takeEncoder({ complexity });
    const payload = Buffer.from(encoder.encode(new Uint8Array(frame.buffer))).toString("hex");
    releaseEncoder(encoder);
    return payload;
  };
  t.teardown(() => setOpusSettings({ complexity: DEFAULT_OPUS_COMPLEXITY }));
  await startAgent(t, await freePort(), { AGENT_OPUS_COMPLEXITY: "1" });
  t.equal(encoded(createCodec("opus")), byEncoder(1), "an Opus call's codec encodes at complexity 1");
  t.not(byEncoder(1), byEncoder(DEFAULT_OPUS_COMPLEXITY), "and that is not what the default makes");
  await startAgent(t, await freePort());
  t.equal(encoded(createCodec("opus")), byEncoder(DEFAULT_OPUS_COMPLEXITY), "unset: the default");
});
