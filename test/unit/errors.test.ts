import t from "tap";
import { describeError, sourceLocation } from "../../routing/runtime/errors.js";
import { exportRequestRoute, exportReplyRoute } from "../../routing/runtime/callbacks.js";
import { dropMessage, endRoute } from "../../routing/runtime/route-end.js";
import { createKsrDouble, runRoute } from "../support/ksr-double.js";
import { sipFixture } from "../support/fixtures.js";

const table = { sources: ["routing/a.ts", "routing/b.ts"], runs: [3, 0, 10, 20, 1, 5] };

t.test("bundle lines map to TypeScript file and line", async (t) => {
  t.equal(sourceLocation(3, table), "routing/a.ts:10");
  t.equal(sourceLocation(7, table), "routing/a.ts:14");
  t.equal(sourceLocation(25, table), "routing/b.ts:10");
  t.equal(sourceLocation(1, table), undefined, "before the first run");
  t.equal(sourceLocation(5, undefined), undefined, "no table");
});

t.test("a Duktape stack is rewritten to TypeScript locations, engine frames dropped", async (t) => {
  const err = new TypeError("cannot read property 'x' of null");
  err.stack = [
    "TypeError: cannot read property 'x' of null",
    "    at [anon] (duk_hobject_props.c:2621) internal",
    "    at targetNumber (eval:22)",
    "    at ksr_request_route (eval:4) preventsyield",
  ].join("\n");
  (globalThis as any).__routingLineTable = table;
  try {
    t.equal(
      describeError("ksr_request_route", err),
      "routing error in ksr_request_route: TypeError: cannot read property 'x' of null\n" +
        "    at targetNumber (routing/b.ts:7)\n" +
        "    at ksr_request_route (routing/a.ts:11) preventsyield\n",
    );
  } finally {
    delete (globalThis as any).__routingLineTable;
  }
  t.equal(describeError("ksr_reply_route", "plain string"), "routing error in ksr_reply_route: plain string\n");
});

t.test("an exception in a request route is logged and answered 500 once", async (t) => {
  exportRequestRoute("test_route_throws", () => {
    throw new Error("boom");
  });
  const d = createKsrDouble({ message: sipFixture("meta-invite") });
  runRoute(d, (globalThis as any).test_route_throws);
  t.same(d.replies.map((r) => [r.code, r.reason]), [[500, "Server Internal Error"]]);
  t.match(d.logs.find((l) => l.level === "err")?.text, /^routing error in test_route_throws: Error: boom/);
});

t.test("no second answer when the route had already answered, none for ACK", async (t) => {
  exportRequestRoute("test_route_answers_then_throws", () => {
    KSR.setflag(30);
    KSR.sl.send_reply(200, "OK");
    throw new Error("late");
  });
  const d = createKsrDouble({ message: sipFixture("meta-options") });
  runRoute(d, (globalThis as any).test_route_answers_then_throws);
  t.same(d.replies.map((r) => r.code), [200]);

  exportRequestRoute("test_route_ack_throws", () => {
    throw new Error("ack");
  });
  const ack = sipFixture("meta-options").replace(/OPTIONS/g, "ACK");
  const a = createKsrDouble({ message: ack });
  runRoute(a, (globalThis as any).test_route_ack_throws);
  t.same(a.replies, []);
});

t.test("endRoute() and dropMessage() end a route as KSR.x.exit() and KSR.x.drop() do, through the guard", async (t) => {
  exportRequestRoute("test_route_ends", () => {
    endRoute();
  });
  const ended = createKsrDouble({ message: sipFixture("meta-options") });
  runRoute(ended, (globalThis as any).test_route_ends);
  t.equal(ended.ended, "exit");
  t.same(ended.replies, [], "no 500 from the guard");

  exportRequestRoute("test_route_drops", () => {
    dropMessage();
  });
  const dropped = createKsrDouble({ message: sipFixture("meta-options") });
  runRoute(dropped, (globalThis as any).test_route_drops);
  t.equal(dropped.ended, "drop");
  t.same(dropped.replies, []);
  t.same(dropped.calls.map((c) => c.fn), ["set_drop"], "the drop flags are set with KSR.set_drop(), not through KSR.x.drop() (which compiles a script per call)");

  exportReplyRoute("test_reply_drops", () => {
    dropMessage();
  });
  const reply = createKsrDouble({ message: "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n" });
  runRoute(reply, (globalThis as any).test_reply_drops);
  t.equal(reply.ended, "drop");
  t.same(reply.logs, [], "the end is not logged as an error");
});

t.test("KSR.x.exit() passes through the guard; reply routes only log", async (t) => {
  exportRequestRoute("test_route_exits", () => KSR.x.exit());
  const d = createKsrDouble({ message: sipFixture("meta-options") });
  runRoute(d, (globalThis as any).test_route_exits);
  t.equal(d.ended, "exit");
  t.same(d.replies, []);

  exportReplyRoute("test_reply_throws", () => {
    throw new Error("in reply");
  });
  const r = createKsrDouble({ message: "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n" });
  runRoute(r, (globalThis as any).test_reply_throws);
  t.same(r.replies, []);
  t.match(r.logs[0].text, /routing error in test_reply_throws: Error: in reply/);
});
