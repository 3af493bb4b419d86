/**
 * The supervised stack (stack/supervisor.ts, as `npm start` runs it, here on free ports in a temp
 * dir): Kamailio, rtpengine and the media agent are separate processes. During a call each is
 * SIGKILLed in turn (the whole process group, as a crash or the OOM killer would): the exit and
 * the restart are logged, the daemon is back within 2 s (OPTIONS to Kamailio answered within 5 s),
 * the other daemons keep their pids, a new call through the Meta-edge peer into the agent works,
 * and the callback-rule state (a permission granted through the permission API) outlives
 * Kamailio's restart.
 */
import t, { type Test } from "tap";
import { sleep } from "../../build/kamailio.js";
import { ngCommand } from "../../build/rtpengine-ng.js";
import { sipPing } from "../../build/sip-ping.js";
import type { CallRecord } from "../../media-agent/src/calls/call.js";
import { header } from "../../media-agent/src/sip/message.js";
import { DAEMONS } from "../../stack/stack.js";
import type { RestartEvent } from "../../stack/supervisor.js";
import { runSipp, startSipp } from "../support/sipp.js";
import { startSupervisedSite } from "../support/supervised-site.js";
import { tempDir } from "../support/temp-dir.js";
import { BUSINESS, WA_USER } from "../support/wa-interconnect.js";
import { META_CALL_ID, userCallsBusiness } from "../support/wa-scenarios.js";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

t.test("supervised daemons: each one SIGKILLed during a call comes back while the others keep running", async (t) => {
  const dir = tempDir(t, "wa-supervisor-");
  const lines: string[] = [];
  const { stack, edge, internal, ng, apiPort, agentUrl } = await startSupervisedSite(t, dir, (line) => lines.push(line));
  const everyPid = new Set(stack.supervisor.names.map((n) => stack.supervisor.pid(n)!));

  const agentCalls = async (): Promise<CallRecord[]> => ((await (await fetch(`${agentUrl}/calls`)).json()) as { calls: CallRecord[] }).calls;
  const pairUrl = `http://127.0.0.1:${apiPort}/permissions/${encodeURIComponent(BUSINESS)}/${encodeURIComponent(WA_USER)}`;
  const sippCall = { target: edge.udp, workDir: dir, service: BUSINESS, keys: { biz_domain: "sip.example.com", caller: WA_USER }, callIdFormat: META_CALL_ID };

  /** A whole new call: WhatsApp user (SIPp) → edge → our Kamailio → rtpengine → the agent, and BYE. */
  async function newCallWorks(t: Test, label: string): Promise<void> {
    const run = await runSipp({ ...sippCall, scenarioXml: userCallsBusiness(), timeoutS: 15 });
    t.equal(run.exitCode, 0, `${label}: INVITE → 200 → ACK → BYE → 200`);
    if (run.exitCode !== 0) t.comment(run.output);
    const callId = /^Call-ID: (.*)$/m.exec(run.sent[0] ?? "")?.[1]?.trim();
    let record: CallRecord | undefined;
    for (let i = 0; i < 20 && record?.status !== "ended"; i++) {
      record = (await agentCalls()).find((c) => c.callId === callId);
      if (record?.status !== "ended") await sleep(100);
    }
    t.match(record, { status: "ended", endReason: "remote BYE" }, `${label}: the agent answered the call and took the BYE`);
  }

  const grant = await fetch(pairUrl, { method: "PUT", body: JSON.stringify({ kind: "permanent" }) });
  t.equal(grant.status, 200, "permission granted through the permission API");
  await newCallWorks(t, "before any kill");

  for (const name of [DAEMONS.kamailio, DAEMONS.rtpengine, DAEMONS.agent]) {
    await t.test(`${name} SIGKILLed during a call`, async (t) => {
      // A call that holds for 5 s before its BYE, answered by the agent before the kill.
      const before = new Set((await agentCalls()).map((c) => c.callId));
      const call = await startSipp({ ...sippCall, scenarioXml: userCallsBusiness().replace(/<pause milliseconds="\d+"\/>/, '<pause milliseconds="5000"/>'), timeoutS: 20 });
      for (let i = 0; i < 50 && !(await agentCalls()).some((c) => !before.has(c.callId) && c.status === "answered"); i++) await sleep(100);
      t.ok((await agentCalls()).some((c) => !before.has(c.callId) && c.status === "answered"), "a call is up in the agent");

      const victim = stack.supervisor.pid(name)!;
      const others = stack.supervisor.names.filter((n) => n !== name).map((n) => [n, stack.supervisor.pid(n)!] as const);
      const restarted = new Promise<RestartEvent>((done) => {
        const on = (e: RestartEvent) => {
          if (e.name !== name) return;
          stack.supervisor.off("restart", on);
          done(e);
        };
        stack.supervisor.on("restart", on);
      });
      const killedAt = Date.now();
      process.kill(-victim, "SIGKILL");

      // OPTIONS to Kamailio's internal UDP listener is answered again within 5 s.
      let optionsMs = -1;
      while (Date.now() - killedAt < 5000) {
        const answer = await sipPing(internal.host, internal.port, 300).catch(() => null);
        if (answer?.status === 200 && (name !== DAEMONS.kamailio || stack.supervisor.pid(name) !== undefined)) {
          optionsMs = Date.now() - killedAt;
          break;
        }
        await sleep(50);
      }
      t.ok(optionsMs >= 0, `OPTIONS answered again ${optionsMs} ms after the kill`);
      const restart = await Promise.race([restarted, sleep(10_000).then(() => null)]);
      t.ok(restart, `${name} restarted`);
      if (!restart) return;
      t.ok(restart.respawnMs < 2000, `spawned again ${restart.respawnMs} ms after the exit`);
      t.ok(restart.downMs < 5000, `ready again ${restart.downMs} ms after the exit`);
      t.comment(`${name}: respawned after ${restart.respawnMs} ms, ready after ${restart.downMs} ms, OPTIONS answered ${optionsMs} ms after the kill`);
      t.not(restart.pid, victim, "a new process");
      everyPid.add(restart.pid);

      const log = lines.join("\n");
      t.match(log, new RegExp(`${name} \\(pid ${victim}\\) exited \\(killed by SIGKILL\\)`), "the supervisor logged the exit with its signal");
      t.match(log, new RegExp(`${name} restarted \\(pid ${restart.pid}, was ${victim}\\)`), "and the restart");
      for (const [other, pid] of others) {
        t.equal(stack.supervisor.pid(other), pid, `${other} kept its pid ${pid}`);
        t.ok(alive(pid), `${other} is still running`);
      }
      if (name === DAEMONS.rtpengine) t.match(await ngCommand(ng, { command: "ping" }), { result: "pong" }, "rtpengine answers ng ping");
      if (name === DAEMONS.kamailio) {
        const state = await (await fetch(pairUrl)).json();
        t.match(state, { business: BUSINESS, user: WA_USER, permission: "permanent" }, "the callback-rule state outlived Kamailio's restart");
      }
      await newCallWorks(t, `after ${name}'s restart`);

      // The call that was up during the kill sends its BYE after the restart. Kamailio's dialogs
      // and the agent's calls live in their process, so those answer 481; rtpengine's restart
      // loses the call's media session but not its signalling.
      const held = await call.done;
      const byeAnswer = held.received.find((m) => m.kind === "response" && /BYE/.test(header(m, "CSeq") ?? ""));
      t.comment(`the call up during the kill: its BYE was answered ${byeAnswer ? `${byeAnswer.status} ${byeAnswer.reason}` : "not at all"}`);
      if (name === DAEMONS.rtpengine) t.equal(byeAnswer?.status, 200, "the call up while rtpengine restarted still ended with BYE → 200");
    });
  }

  const state = await (await fetch(pairUrl)).json();
  t.match(state, { permission: "permanent" }, "the permission is still there at the end");

  await stack.supervisor.stop();
  await edge.edge.stop();
  t.comment(lines.join("\n"));
  await sleep(200);
  t.same([...everyPid].filter(alive), [], "no daemon process is left once the supervisor has stopped");
});
