/** The real bundle in a real Kamailio, driven by SIPp over UDP on the internal listener. */
import t from "tap";
import { resolve } from "node:path";
import { buildBundle, REPO_ROOT } from "../../build/bundle.js";
import { startRoutingUnderTest, type RoutingUnderTest } from "../support/routing-under-test.js";
import { oneRequestScenario, requestTemplate, runSipp } from "../support/sipp.js";
import { header } from "../../media-agent/src/sip/message.js";

async function exchange(k: RoutingUnderTest, request: string, expectStatus: number) {
  const run = await runSipp({ scenarioXml: oneRequestScenario(request, expectStatus), target: k.internal, workDir: k.workDir, service: "sip" });
  const final = run.received.find((m) => m.status >= 200);
  return { run, final };
}

t.test("routing bundle in real Kamailio", async (t) => {
  const k = await startRoutingUnderTest(t);

  t.test("app_jsdt loaded the bundle and ksr_request_route answers OPTIONS with 200", async (t) => {
    const { run, final } = await exchange(k, requestTemplate("OPTIONS"), 200);
    t.equal(run.exitCode, 0, run.output);
    t.equal(final?.reason, "OK");
    t.equal(final && header(final, "Allow"), "INVITE, ACK, BYE, CANCEL, OPTIONS, NOTIFY");
    t.equal(final && header(final, "Server"), "wa-voice-kamailio");
  });

  t.test("REGISTER is refused 405 with a reason, and the log names the cause", async (t) => {
    const { run, final } = await exchange(k, requestTemplate("REGISTER", { Contact: "<sip:sipp@[local_ip]:[local_port]>" }), 405);
    t.equal(run.exitCode, 0, run.output);
    t.equal(final?.reason, "Method Not Allowed - No Registrar Here");
    t.match(final && header(final, "Allow"), /^INVITE, ACK, BYE/);
    await k.kamailio.waitForLog(/refused REGISTER .* with 405 Method Not Allowed - No Registrar Here: REGISTER is not used/);
  });

  t.test("an unknown method is refused 405 with Allow", async (t) => {
    const { run, final } = await exchange(k, requestTemplate("PUBLISH", { Event: "presence" }), 405);
    t.equal(run.exitCode, 0, run.output);
    t.equal(final?.reason, "Method Not Allowed");
    t.ok(final && header(final, "Allow"));
  });

  t.test("a malformed request (unparsable Expires) is answered 400 by sanity", async (t) => {
    const { run, final } = await exchange(k, requestTemplate("OPTIONS", { Expires: "soon" }), 400);
    t.equal(run.exitCode, 0, run.output);
    t.match(final?.reason, /Expires/);
    await k.kamailio.waitForLog(/malformed OPTIONS from 127\.0\.0\.1:\d+ answered by sanity/);
  });

  t.test("Max-Forwards 0 is answered 483 Too Many Hops", async (t) => {
    const { run, final } = await exchange(k, requestTemplate("OPTIONS", { "Max-Forwards": "0" }), 483);
    t.equal(run.exitCode, 0, run.output);
    t.equal(final?.reason, "Too Many Hops");
  });

  t.test("the bundle is the one Kamailio reports, and it logged no routing errors", async (t) => {
    t.notMatch(k.kamailio.logText(), /routing error in|app_jsdt.*error/i);
  });
});

t.test("a routing exception is logged with a TypeScript stack and still answered 500", async (t) => {
  const k = await startRoutingUnderTest(t, { entry: resolve(REPO_ROOT, "test/fixtures/routing/throwing-main.ts") });
  const { run, final } = await exchange(k, requestTemplate("OPTIONS"), 500);
  t.equal(run.exitCode, 0, run.output);
  t.equal(final?.reason, "Server Internal Error");
  const [logged] = await k.kamailio.waitForLog(/routing error in ksr_request_route: TypeError[^\n]*\n(\s+at [^\n]*\n)+/);
  t.match(logged, /at targetNumber \(test\/fixtures\/routing\/throwing-main\.ts:10\)/, "names the TypeScript function, file and line");
  t.match(logged, /at ksr_request_route|at \[anon\] \(routing\/runtime\/callbacks\.ts:\d+\)/);

  for (const [method, end] of [["INFO", "KSR.x.exit()"], ["MESSAGE", "endRoute()"]]) {
    t.test(`a catch inside routing cannot swallow ${end}`, async (t) => {
      const answered = await runSipp({
        scenarioXml: `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="${method.toLowerCase()}">
  <send><![CDATA[
${requestTemplate(method)}

]]></send>
  <recv response="200" timeout="2000" ontimeout="done"/>
  <label id="done"/>
</scenario>
`,
        target: k.internal,
        workDir: k.workDir,
        service: "sip",
      });
      t.same(answered.received, [], "the route ended: no 500 from the guard, no other answer");
      t.notMatch(k.kamailio.logText(), /swallowed/);
      t.notMatch(k.kamailio.logText(), /error from js|error executing/, "app_jsdt took the sentinel as the script's end");
    });
  }
});

t.test("a rebuilt bundle is picked up by a running Kamailio after app_jsdt.reload", async (t) => {
  const k = await startRoutingUnderTest(t);
  const before = await exchange(k, requestTemplate("OPTIONS"), 200);
  t.equal(before.run.exitCode, 0, before.run.output);
  await buildBundle(resolve(REPO_ROOT, "test/fixtures/routing/throwing-main.ts"), k.bundle);
  t.match(await k.kamailio.rpc("app_jsdt.reload"), /new: 1/);
  for (let i = 0; i < 3; i++) {
    const after = await exchange(k, requestTemplate("OPTIONS"), 500);
    t.equal(after.run.exitCode, 0, `request ${i + 1} runs the new bundle: ${after.run.output}`);
  }
});
