/**
 * The SIP edge tried as an attacker would, black-box: our real Kamailio with the real bundle and
 * rtpengine, the independent Meta-edge peer carrying a real call from SIPp (the WhatsApp user)
 * to a UAS playing the media agent, and raw SIP written by the test from other loopback
 * addresses: 127.0.0.2 is in WA_META_PREFIXES (what Meta's edge may send from), 127.0.0.3 an
 * outsider on the TLS listener, 127.0.0.5 a stranger on the internal UDP listener. A trap
 * listener stands for any third host. Every attack must be refused, reach neither the agent
 * nor the trap, and leave the live call, its dialog and its media as they were.
 */
import t from "tap";
import { runSipp } from "../support/sipp.js";
import { META_CALL_ID, userCallsBusiness } from "../support/wa-scenarios.js";
import { BUSINESS, EDGE_IP, OUTSIDER_IP, startInterconnect, WA_USER, grantPermission, type Interconnect } from "../support/wa-interconnect.js";
import { agentUas, newBranch, newTag, rawRequest, sleep, tlsPeer, trap, udpPeer, type RawSipPeer } from "../support/sip-peer.js";
import { sipFixture, withHeader } from "../support/fixtures.js";
import { listCalls } from "../../build/rtpengine-ng.js";
import { header, headerValues, type SipMessage } from "../../media-agent/src/sip/message.js";

const STRANGER_IP = "127.0.0.5";

/** Waits for `check`; on timeout the error says what `meanwhile` found (what the peers got). */
async function until(what: string, check: () => boolean, timeoutMs = 10_000, meanwhile: () => string = () => ""): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) {
      const found = meanwhile();
      throw new Error(`timed out waiting for ${what}${found && `; meanwhile ${found}`}`);
    }
    await sleep(20);
  }
}

/** The answers a peer got for a Call-ID, e.g. "100 Trying (INVITE), 503 Service Unavailable (INVITE)". */
function answersTo(peer: RawSipPeer, callId: string): string {
  const answers = peer.received.filter((m) => m.kind === "response" && header(m, "Call-ID") === callId);
  return answers.map((m) => `${m.status} ${m.reason} (${(header(m, "CSeq") ?? "").split(" ")[1]})`).join(", ") || "no answer";
}

async function activeDialogs(w: Interconnect): Promise<number> {
  const out = await w.us.kamailio.rpc("stats.get_statistics", "active_dialogs");
  return parseInt(/active_dialogs = (\d+)/.exec(out)?.[1] ?? "NaN", 10);
}

/** The WhatsApp user calls the business through the edge and holds the call for holdMs. */
function userCall(w: Interconnect, holdMs: number) {
  return runSipp({
    scenarioXml: userCallsBusiness("meta", holdMs),
    target: w.edgeUdp,
    workDir: w.us.workDir,
    service: BUSINESS,
    keys: { biz_domain: "sip.example.com", caller: WA_USER },
    callIdFormat: META_CALL_ID,
    timeoutS: 30,
  });
}

/** What an attacker who saw the call's INVITE can write: its Call-ID, tags and route set. */
function callFacts(invite: SipMessage, uas: { toTag: string; contact: string }) {
  const rr = headerValues(invite, "Record-Route");
  return {
    callId: header(invite, "Call-ID")!,
    from: header(invite, "From")!,
    to: `${header(invite, "To")};tag=${uas.toTag}`,
    /** Our two Record-Routes as Meta's side uses them (TLS side first), and as the agent's side does. */
    oursFromMeta: [rr[1], rr[0]],
    oursFromAgent: [rr[0], rr[1]],
    metaRoutes: rr.slice(2),
    agentContact: uas.contact,
    metaContact: /<([^>]+)>/.exec(header(invite, "Contact")!)![1],
  };
}

function inDialog(method: string, uri: string, via: string, routes: string[], from: string, to: string, callId: string, cseq: number): string {
  return rawRequest(method, uri, [
    ["Via", via], ["Max-Forwards", "70"], ["Route", routes.join(", ")], ["From", from], ["To", to], ["Call-ID", callId], ["CSeq", `${cseq} ${method}`],
  ]);
}

const viaOf = (p: RawSipPeer, transport: "TLS" | "UDP" | "TCP") => `SIP/2.0/${transport} ${p.local.host}:${p.local.port};branch=${newBranch()};rport`;

t.test("a live call survives in-dialog spoofing, relay attempts and strangers", async (t) => {
  const w = await startInterconnect(t);
  const uas = await agentUas(t, w.agent);
  const third = await trap(t);
  const thirdHop = `<sip:${third.host}:${third.port};lr>`;
  const user = userCall(w, 8000);
  await until("the call to be answered and acknowledged", () => uas.of("ACK").length === 1);
  const c = callFacts(uas.of("INVITE")[0], uas);
  const asMeta = (method: string, p: RawSipPeer, routes: string[], cseq: number, uri = c.agentContact) =>
    inDialog(method, uri, viaOf(p, "TLS"), routes, c.from, c.to, c.callId, cseq);
  const asAgent = (method: string, p: RawSipPeer, routes: string[], cseq: number) =>
    inDialog(method, c.metaContact, viaOf(p, "UDP"), routes, c.to, c.from, c.callId, cseq);

  const outsider = await tlsPeer(t, OUTSIDER_IP, w.us.tls);
  const forgedMeta = await tlsPeer(t, EDGE_IP, w.us.tls);
  const stranger = await udpPeer(t, STRANGER_IP, w.us.internal);
  const internal = await udpPeer(t, "127.0.0.1", w.us.internal);

  const attacks: Array<{ name: string; peer: RawSipPeer; method: string; message: string; code: number; reason: RegExp }> = [
    { name: "outsider BYE with the call's Call-ID, tags and our Route", peer: outsider, method: "BYE", message: asMeta("BYE", outsider, c.oursFromMeta, 20), code: 403, reason: /Not A Party To This Call/ },
    { name: "outsider INFO through our Route to a third host", peer: outsider, method: "INFO", message: asMeta("INFO", outsider, [...c.oursFromMeta, thirdHop], 21), code: 403, reason: /Not A Party To This Call/ },
    { name: "outsider re-INVITE", peer: outsider, method: "INVITE", message: asMeta("INVITE", outsider, c.oursFromMeta, 22), code: 403, reason: /Not A Party To This Call/ },
    { name: "a Meta address relaying through our Route to a third host", peer: forgedMeta, method: "INFO", message: asMeta("INFO", forgedMeta, [...c.oursFromMeta, thirdHop], 23), code: 403, reason: /Route Leaves This Call/ },
    { name: "a Meta address sending to a third host as Request-URI", peer: forgedMeta, method: "INFO", message: asMeta("INFO", forgedMeta, c.oursFromMeta, 24, `sip:${third.host}:${third.port}`), code: 403, reason: /Route Leaves This Call/ },
    { name: "a Meta address posing as the agent's side", peer: forgedMeta, method: "BYE", message: asAgent("BYE", forgedMeta, [...c.oursFromMeta, ...c.metaRoutes], 25).replace("SIP/2.0/UDP", "SIP/2.0/TLS"), code: 403, reason: /Not A Party To This Call/ },
    { name: "stranger on the internal listener sending the agent's BYE", peer: stranger, method: "BYE", message: asAgent("BYE", stranger, [...c.oursFromAgent, ...c.metaRoutes], 26), code: 403, reason: /Not An Internal Source/ },
    { name: "internal source relaying through our Route to a third host", peer: internal, method: "INFO", message: asAgent("INFO", internal, [...c.oursFromAgent, thirdHop], 27), code: 403, reason: /Route Leaves This Call/ },
    { name: "a BYE for a call that does not exist", peer: forgedMeta, method: "BYE", message: asMeta("BYE", forgedMeta, c.oursFromMeta, 28).replace(c.callId, `${c.callId}-other`).replace(c.callId, `${c.callId}-other`), code: 481, reason: /Does Not Exist/ },
  ];
  for (const a of attacks) {
    a.peer.send(a.message);
    const callId = /\r\nCall-ID: ([^\r]+)/.exec(a.message)![1];
    const answer = await a.peer.answer(callId, a.method);
    t.equal(answer?.status, a.code, `${a.name}: answered ${a.code}`);
    t.match(answer?.reason, a.reason, `${a.name}: ${answer?.reason}`);
  }

  t.same(third.received.map((b) => b.toString().split("\r\n")[0]), [], "nothing reached the third host");
  t.same(uas.requests.map((r) => r.method), ["INVITE", "ACK"], "nothing of it reached the agent");
  t.equal((await listCalls(w.us.rtpengine.ng)).length, 1, "the call's media session is still there");
  t.equal(await activeDialogs(w), 1, "the call's dialog is still there");
  t.match(w.us.kamailio.logText(), /refused BYE .* from tls:127\.0\.0\.3:\d+ with 403 Forbidden - Not A Party To This Call: user-initiated call: its caller is on the Meta/);

  const real = await user;
  t.equal(real.exitCode, 0, `the real caller's BYE still ends the call with 200: ${real.output}`);
  t.equal(uas.of("BYE").length, 1, "the agent got the caller's BYE, once");
  await sleep(500);
  t.same(await listCalls(w.us.rtpengine.ng), [], "no rtpengine session left");
  t.equal(await activeDialogs(w), 0, "no dialog left");
  t.notMatch(w.us.kamailio.logText(), /routing error in/);
});

t.test("CANCEL of a ringing call only from the INVITE's sender; its replies only from the callee", async (t) => {
  const w = await startInterconnect(t);
  const uas = await agentUas(t, w.agent, { answerAfterMs: 3000 });
  const user = userCall(w, 300);
  await until("the INVITE at the agent", () => uas.of("INVITE").length === 1);
  const invite = uas.of("INVITE")[0];
  // The CANCEL that matches our INVITE transaction: the branch of the edge's Via (below ours),
  // same Call-ID, From, To and CSeq number: what the edge itself would send, from elsewhere.
  const edgeVia = headerValues(invite, "Via").filter((v) => !v.includes(`:${w.us.internal.port}`))[0];
  const branch = /;branch=([^;]+)/.exec(edgeVia)![1];
  const cancel = (p: RawSipPeer, transport: "TLS" | "UDP") =>
    rawRequest("CANCEL", invite.uri, [
      ["Via", `SIP/2.0/${transport} ${p.local.host}:${p.local.port};branch=${branch};rport`],
      ["Max-Forwards", "70"], ["From", header(invite, "From")!], ["To", header(invite, "To")!], ["Call-ID", header(invite, "Call-ID")!], ["CSeq", "1 CANCEL"],
    ]);
  const outsider = await tlsPeer(t, OUTSIDER_IP, w.us.tls);
  const internal = await udpPeer(t, "127.0.0.1", w.us.internal);
  for (const [p, transport] of [[outsider, "TLS"], [internal, "UDP"]] as const) {
    p.send(cancel(p, transport));
    const answer = await p.answer(header(invite, "Call-ID")!, "CANCEL");
    t.equal(answer?.status, 403, `CANCEL from ${p.local.host}: ${answer?.status} ${answer?.reason}`);
  }
  t.equal((await listCalls(w.us.rtpengine.ng)).length, 1, "the ringing call's media is untouched");

  // tm matches replies by Via branch alone: an outsider who learnt the branch of our INVITE to
  // the agent answers it "200 OK" with its own Contact and SDP. It must never get that far.
  const forged = [
    "SIP/2.0 200 OK",
    ...headerValues(invite, "Via").map((v) => `Via: ${v}`),
    `From: ${header(invite, "From")}`, `To: ${header(invite, "To")};tag=${newTag()}`, `Call-ID: ${header(invite, "Call-ID")}`, "CSeq: 1 INVITE",
    `Contact: <sip:evil@${OUTSIDER_IP}:${outsider.local.port};transport=tls>`, "Content-Type: application/sdp", "",
  ].join("\r\n");
  const sdp = `v=0\r\no=- 1 1 IN IP4 ${OUTSIDER_IP}\r\ns=-\r\nc=IN IP4 ${OUTSIDER_IP}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n`;
  outsider.send(`${forged.replace(/\r\n$/, "")}\r\nContent-Length: ${sdp.length}\r\n\r\n${sdp}`);
  await w.us.kamailio.waitForLog(/dropped reply 200 OK from tls:127\.0\.0\.3:\d+: a TLS peer outside WA_META_PREFIXES answers no request of ours/);
  const real = await user;
  t.equal(real.exitCode, 0, `the call is answered and ends normally: ${real.output}`);
  t.same(uas.of("CANCEL"), [], "no CANCEL reached the agent");
});

t.test("headers, the internal side and listeners", async (t) => {
  const w = await startInterconnect(t);
  const uas = await agentUas(t, w.agent, { answerAfterMs: 60_000 });
  const meta = await tlsPeer(t, EDGE_IP, w.us.tls);
  const metaInvite = (callId: string, extra: Array<[string, string]>) => {
    let msg = sipFixture("meta-invite").replace(/^Call-ID: .*$/m, `Call-ID: ${callId}`);
    msg = withHeader(msg, "Via", `SIP/2.0/TLS ${EDGE_IP}:${meta.local.port};branch=${newBranch()};rport`);
    for (const [name, value] of extra) msg = msg.replace("\r\n", `\r\n${name}: ${value}\r\n`);
    return msg;
  };

  t.test("X-FB-External-Domain twice, even with the right value, is refused", async (t) => {
    for (const second of ["wa.meta.vc", "evil.example"]) {
      const callId = `twice-${newTag()}`;
      meta.send(metaInvite(callId, [["X-FB-External-Domain", second]]));
      const answer = await meta.answer(callId, "INVITE");
      t.equal(answer?.status, 403);
      t.equal(answer?.reason, "Bad X-FB-External-Domain");
    }
    t.same(uas.of("INVITE"), [], "neither reached the agent");
  });

  t.test("our X-WA-* headers from the public side are stripped; Meta's own X-WA-Meta-* stay", async (t) => {
    const callId = `forged-${newTag()}`;
    meta.send(metaInvite(callId, [["x-Wa-tRansfer", "someone-elses-call"], ["X-WA-Profile", "admin"]])); // header names are case-insensitive
    // At least one: a loaded machine may delay the UAS's 180 past Kamailio's first retransmission.
    const reached = () => uas.of("INVITE").filter((r) => header(r, "Call-ID") === callId);
    await until("the INVITE at the agent", () => reached().length > 0, 10_000, () => `Meta's side got ${answersTo(meta, callId)}; Kamailio's log ends:\n${w.us.kamailio.logText().slice(-3000)}`);
    const got = reached()[0];
    t.equal(header(got, "X-WA-Transfer"), undefined, "no transfer marker reaches the agent");
    t.same(headerValues(got, "X-WA-Profile"), ["sales"], "only our own profile header");
    t.match(header(got, "x-wa-meta-wacid"), /^wacid\./);
    // The caller gives up: Meta's CANCEL (the INVITE's sender) is relayed and frees the media.
    const invite = metaInvite(callId, []);
    meta.send(rawRequest("CANCEL", invite.split(" ")[1], [
      ["Via", headerValues(got, "Via")[1]], ["Max-Forwards", "70"], ["From", header(got, "From")!], ["To", header(got, "To")!], ["Call-ID", callId], ["CSeq", "1 CANCEL"],
    ]));
    t.equal((await meta.answer(callId, "CANCEL"))?.status, 200, "Meta's own CANCEL is taken");
    t.equal((await meta.answer(callId, "INVITE"))?.status, 487);
    await sleep(300);
    t.same(await listCalls(w.us.rtpengine.ng), [], "and the media is freed");
  });

  t.test("a stranger on the internal listener cannot place calls to Meta, even with a permission", async (t) => {
    await grantPermission(w, WA_USER);
    const stranger = await udpPeer(t, STRANGER_IP, w.us.internal);
    const callId = `stranger-${newTag()}`;
    stranger.send(rawRequest("INVITE", `sip:${WA_USER}@127.0.0.1:${w.us.internal.port}`, [
      ["Via", viaOf(stranger, "UDP")], ["Max-Forwards", "70"], ["From", `<sip:${BUSINESS}@127.0.0.1>;tag=${newTag()}`], ["To", `<sip:${WA_USER}@127.0.0.1>`],
      ["Call-ID", callId], ["CSeq", "1 INVITE"], ["Contact", `<sip:x@${STRANGER_IP}:${stranger.local.port}>`],
    ]));
    const answer = await stranger.answer(callId, "INVITE");
    t.equal(answer?.status, 403);
    t.equal(answer?.reason, "Forbidden - Not An Internal Source");
    await sleep(300);
    t.notMatch(w.edge.logText(), new RegExp(callId), "the Meta edge never saw it");
  });

  t.test("SIP on the permission API's TCP listener is refused", async (t) => {
    const api = new URL(w.us.api);
    const peer = await tlsPeer(t, "127.0.0.1", { host: api.hostname, port: Number(api.port) }, true);
    const callId = `api-${newTag()}`;
    peer.send(rawRequest("OPTIONS", `sip:127.0.0.1:${api.port}`, [
      ["Via", viaOf(peer, "TCP")], ["Max-Forwards", "70"], ["From", `<sip:probe@127.0.0.1>;tag=${newTag()}`], ["To", "<sip:127.0.0.1>"], ["Call-ID", callId], ["CSeq", "1 OPTIONS"],
    ]));
    const answer = await peer.answer(callId, "OPTIONS");
    t.equal(answer?.status, 403);
    t.equal(answer?.reason, "Forbidden - No SIP On This Listener");
  });

  t.test("binary bytes in headers never throw inside the routing", async (t) => {
    const internal = await udpPeer(t, "127.0.0.1", w.us.internal);
    for (const [peer, transport] of [[meta, "TLS"], [internal, "UDP"]] as const) {
      // Five times each: with at most four workers per transport, one worker sees the same bytes
      // again and answers from its memo of checked values (routing/ksr/pv.ts).
      for (const bytes of [[0x46, 0xac, 0x63], [0xc3, 0x28], [0xe2, 0x82], [0x41, 0xe2], [0xff, 0xfe, 0x00, 0x41], [0xed, 0xa0, 0x80], [0xf1, 0x65]].flatMap((b) => [b, b, b, b, b])) {
        const callId = `bytes-${newTag()}`;
        const head = rawRequest("OPTIONS", "sip:sip.example.com", [
          ["Via", viaOf(peer, transport)], ["Max-Forwards", "70"], ["From", `<sip:probe@127.0.0.1>;tag=${newTag()}`], ["To", "<sip:sip.example.com>"],
          ["Call-ID", callId], ["CSeq", "1 OPTIONS"],
        ]).replace("\r\nContent-Length", "\r\nUser-Agent: X\u0001\r\nContent-Length");
        const [before, after] = head.split("X\u0001");
        peer.send(Buffer.concat([Buffer.from(`${before}X`), Buffer.from(bytes), Buffer.from(after)]));
        const answer = await peer.answer(callId, "OPTIONS");
        t.ok(answer && answer.status !== 500, `${transport} User-Agent with bytes ${bytes.map((b) => b.toString(16)).join(" ")}: ${answer?.status}`);
      }
    }
    t.notMatch(w.us.kamailio.logText(), /routing error in/);
  });
});

t.test("flood control: one Meta address at 200 requests/s is never throttled; an outsider is", async (t) => {
  const w = await startInterconnect(t);
  const rate = async (peer: RawSipPeer, count: number) => {
    const ids: string[] = [];
    const started = Date.now();
    for (let i = 0; i < count; i++) {
      const callId = `rate-${newTag()}-${i}`;
      ids.push(callId);
      peer.send(rawRequest("OPTIONS", "sip:sip.example.com", [
        ["Via", viaOf(peer, "TLS")], ["Max-Forwards", "70"], ["From", `<sip:ping@${peer.local.host}>;tag=${newTag()}`], ["To", "<sip:sip.example.com>"],
        ["Call-ID", callId], ["CSeq", "1 OPTIONS"],
      ]));
      await sleep(Math.max(0, started + (i + 1) * 5 - Date.now()));
    }
    await sleep(1000);
    const answered = new Set(peer.received.filter((m) => m.status === 200).map((m) => header(m, "Call-ID")));
    return { answered: ids.filter((id) => answered.has(id)).length, seconds: (Date.now() - started - 1000) / 1000 };
  };
  const meta = await rate(await tlsPeer(t, EDGE_IP, w.us.tls), 1000);
  t.equal(meta.answered, 1000, `Meta address: 1000 OPTIONS in ${meta.seconds.toFixed(1)} s, all answered`);
  const outsider = await rate(await tlsPeer(t, OUTSIDER_IP, w.us.tls), 400);
  t.ok(outsider.answered < 200, `outsider: ${outsider.answered} of 400 answered in ${outsider.seconds.toFixed(1)} s (pike)`);
  t.match(w.us.kamailio.logText(), /dropped OPTIONS from 127\.0\.0\.3:\d+: request rate of a TLS peer outside WA_META_PREFIXES over the pike limit/);
});
