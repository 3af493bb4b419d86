/**
 * The callback state's writes to its database: one row per changed pair, written under the
 * pair's lock, SQL-escaped. The queries the routing sends (recorded by the KSR double) are run
 * on a real SQLite database made from kamailio/callback-state.sql, which must then hold what
 * the htable holds.
 */
import t from "tap";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { REPO_ROOT } from "../../build/bundle.js";
import type { Teardown } from "../../build/teardown.js";
import { admitCall, pairKey, recordPermission, updatePair } from "../../routing/wa/callback-state.js";
import { createKsrDouble, runRoute, type KsrDouble } from "../support/ksr-double.js";
import { sipFixture } from "../support/fixtures.js";
import { tempDir } from "../support/temp-dir.js";

const KEY = pairKey("+15550001111", "+15551234567");
const LIMITS = { dailyLimit: 5, unansweredLimit: 2 };
const PERMITTED = JSON.stringify({ permission: "permanent", permissionExpires: null, connected: [], unanswered: 0, blockedUntil: null, activeCall: null });

/** `active`: calls in progress (pair → Call-ID), the htable wa_callactive. */
function double(table: Record<string, string> = {}, active: Record<string, string> = {}): KsrDouble {
  return createKsrDouble({ message: sipFixture("meta-invite"), htables: { wa_callback: { ...table }, wa_callactive: { ...active } } });
}

function inKamailio<T>(d: KsrDouble, work: () => T): T {
  let result: T | undefined;
  runRoute(d, () => {
    result = work();
  });
  return result as T;
}

/** A database made from the schema, as the launcher makes it, with the given rows. */
function stateDb(t: Teardown, rows: Record<string, string> = {}): string {
  const file = join(tempDir(t, "wa-callback-state-"), "callback.sqlite");
  const inserts = Object.entries(rows).map(([k, v]) => `INSERT INTO wa_callback (key_name,key_type,value_type,key_value,expires) VALUES ('${k}',0,0,'${v}',0);\n`);
  sqlite(file, readFileSync(resolve(REPO_ROOT, "kamailio/callback-state.sql"), "utf8") + inserts.join(""));
  return file;
}

function sqlite(file: string, input: string): string {
  return execFileSync("sqlite3", ["-bail", file], { input, encoding: "utf8" });
}

/** Runs what the routing sent on the database and returns the table as htable would load it. */
function applyTo(file: string, d: KsrDouble): Record<string, string> {
  sqlite(file, d.sql.map((q) => `${q.query};\n`).join(""));
  const json = sqlite(file, ".mode json\nSELECT key_name, key_type, value_type, key_value, expires FROM wa_callback;\n").trim();
  const out: Record<string, string> = {};
  for (const row of json ? (JSON.parse(json) as Array<Record<string, string | number>>) : []) {
    if (row.key_type !== 0 || row.value_type !== 0 || row.expires !== 0) throw new Error(`row ${row.key_name} is not a plain string entry`);
    out[String(row.key_name)] = String(row.key_value);
  }
  return out;
}

// The connection is set up once per process, as in each Kamailio process: this test runs first.
t.test("the first write sets the connection up, then writes the pair's row", async (t) => {
  const file = stateDb(t);
  const d = double();
  inKamailio(d, () => updatePair(KEY, { type: "granted", kind: "temporary" }));
  t.equal(JSON.parse(String(d.htables.wa_callback[KEY])).permission, "temporary");
  t.same(
    d.sql.map((q) => q.query.split(" ")[0] === "PRAGMA" ? q.query : q.query.split(" ")[0]),
    ["PRAGMA busy_timeout=5000", "PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "REPLACE"],
  );
  t.ok(d.sql.every((q) => q.con === "wa_state"), "over the sqlops connection kamailio.cfg defines");
  t.same(applyTo(file, d), d.htables.wa_callback, "the database holds what memory holds");
});

t.test("a change rewrites only that pair's row, in place, without the call in progress", async (t) => {
  const other = pairKey("+15550001111", "+15557654321");
  const file = stateDb(t, { [KEY]: PERMITTED, [other]: PERMITTED });
  const d = double({ [KEY]: PERMITTED, [other]: PERMITTED });
  const idBefore = sqlite(file, `SELECT id FROM wa_callback WHERE key_name='${KEY}';\n`);
  t.same(inKamailio(d, () => admitCall(KEY, "call-1", LIMITS)), { allow: true });
  t.same(d.sql, [], "a call's start alone is not written: no call is in progress after a restart");
  t.equal(d.htables.wa_callback[KEY], PERMITTED, "nor is the lasting state in memory touched");
  t.equal(d.htables.wa_callactive[KEY], "call-1", "the call in progress has its own entry");
  inKamailio(d, () => updatePair(KEY, { type: "answered", callId: "call-1" }));
  t.equal(d.sql.length, 1, "one query");
  const rows = applyTo(file, d);
  t.match(JSON.parse(d.htables.wa_callback[KEY]), { activeCall: null, connected: [Number] }, "memory");
  t.equal(d.htables.wa_callactive[KEY], "call-1", "still in progress");
  t.same(JSON.parse(rows[KEY]), JSON.parse(d.htables.wa_callback[KEY]), "the row: the same");
  t.equal(rows[other], PERMITTED, "the other pair untouched");
  t.equal(sqlite(file, `SELECT id FROM wa_callback WHERE key_name='${KEY}';\n`), idBefore, "same row");
  t.equal(sqlite(file, "SELECT count(*) FROM wa_callback;\n").trim(), "2");
  const lastingBefore = d.htables.wa_callback[KEY];
  inKamailio(d, () => updatePair(KEY, { type: "ended", callId: "call-1" }));
  t.equal(d.sql.length, 1, "nor is its end");
  t.notOk(KEY in d.htables.wa_callactive, "the pair is free for its next call");
  t.equal(d.htables.wa_callback[KEY], lastingBefore, "its lasting state untouched");
  t.same(applyTo(file, d), d.htables.wa_callback, "memory and database agree again");
});

t.test("quotes are escaped: the row holds the exact key and state", async (t) => {
  const key = pairKey("+15550001111", `x'); DROP TABLE wa_callback; --'"\\`);
  const file = stateDb(t);
  const d = double();
  inKamailio(d, () => updatePair(key, { type: "granted", kind: "permanent" }));
  t.same(applyTo(file, d), { [key]: d.htables.wa_callback[key] });
});

t.test("nothing is written when the state did not change or the call is refused", async (t) => {
  const d = double({ [KEY]: PERMITTED }, { [KEY]: "call-1" });
  inKamailio(d, () => updatePair(KEY, { type: "ended", callId: "another-call" }));
  t.match(inKamailio(d, () => admitCall(KEY, "call-2", LIMITS)), { allow: false, code: 486 });
  t.same(d.sql, []);
  t.equal(d.htables.wa_callback[KEY], PERMITTED);
  t.equal(d.htables.wa_callactive[KEY], "call-1", "another call's end does not free the pair");
});

t.test("a call in progress outlasting its pair's lasting entry is still the pair's state", async (t) => {
  const d = double({ [KEY]: PERMITTED });
  t.same(inKamailio(d, () => admitCall(KEY, "call-1", LIMITS)), { allow: true });
  inKamailio(d, () => recordPermission(KEY, { type: "revoked" }));
  t.notOk(KEY in d.htables.wa_callback, "nothing lasting is left");
  t.match(inKamailio(d, () => admitCall(KEY, "call-2", LIMITS)), { allow: false, code: 403 });
  inKamailio(d, () => recordPermission(KEY, { type: "granted", kind: "permanent" }));
  t.match(inKamailio(d, () => admitCall(KEY, "call-2", LIMITS)), { allow: false, code: 486 }, "one call per user, still");
  inKamailio(d, () => updatePair(KEY, { type: "ended", callId: "call-1" }));
  t.same(inKamailio(d, () => admitCall(KEY, "call-2", LIMITS)), { allow: true });
});

t.test("revoking a permission updates the row; a pair left with no state loses entry and row", async (t) => {
  const counted = PERMITTED.replace('"connected":[]', `"connected":[${Math.floor(Date.now() / 1000) - 60}]`);
  const file = stateDb(t, { [KEY]: counted, "+15550001111|+15550000001": PERMITTED });
  const d = double({ [KEY]: counted, "+15550001111|+15550000001": PERMITTED });
  inKamailio(d, () => recordPermission(KEY, { type: "revoked" }));
  const revoked = inKamailio(d, () => recordPermission("+15550001111|+15550000001", { type: "revoked" }));
  t.equal(revoked.permission, null, "the API still shows the pair's (empty) state");
  t.notOk("+15550001111|+15550000001" in d.htables.wa_callback, "no entry for a pair with nothing recorded");
  const rows = applyTo(file, d);
  t.same(rows, d.htables.wa_callback);
  t.match(JSON.parse(rows[KEY]), { permission: null, connected: [Number] }, "today's connected call still counts");
  t.match(d.sql.map((q) => q.query), [/^PRAGMA synchronous=FULL$/, /^REPLACE /, /^PRAGMA synchronous=NORMAL$/, /^PRAGMA synchronous=FULL$/, /^DELETE /, /^PRAGMA synchronous=NORMAL$/], "permission changes are fsynced");
  const none = double();
  inKamailio(none, () => recordPermission(KEY, { type: "revoked" }));
  t.same(none.sql, [], "revoking a pair never seen writes nothing");
});

t.test("a failed write is logged with its cause; memory keeps the new state", async (t) => {
  const d = createKsrDouble({ message: sipFixture("meta-invite"), htables: { wa_callback: { [KEY]: PERMITTED }, wa_callactive: { [KEY]: "call-1" } }, answers: { "sqlops.sql_query": () => -1 } });
  inKamailio(d, () => updatePair(KEY, { type: "unanswered", callId: "call-1" }));
  t.match(JSON.parse(d.htables.wa_callback[KEY]), { unanswered: 1, activeCall: null });
  t.notOk(KEY in d.htables.wa_callactive);
  t.match(d.logs.find((l) => l.level === "err")?.text, /callback state database: query failed .*REPLACE INTO wa_callback/);
});
