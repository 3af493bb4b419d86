/**
 * Callback-rule state of a single node (the default): one JSON entry per business+user pair in the htable
 * wa_callback (shared by all workers, loaded from the SQLite database WA_STATE_DB_URL at
 * start), changed only under the pair's htable lock. The rules themselves are
 * policy/callback-rules.ts.
 *
 * The pair's call in progress is not in that JSON but in an entry of its own (htable
 * wa_callactive, memory only, changed under the same lock): a call's start and end, two of the
 * three changes a call makes, then only set and remove a Call-ID, with no JSON to parse or write.
 *
 * A change writes that pair's row, and only that row, to the database (sqlops connection
 * "wa_state" to the same database, kamailio.cfg) while the pair's lock is still held: the row
 * always holds the pair's latest state, and an older state never lands after a newer one. The
 * row leaves out the call in progress (lastingPairState): dialogs do not survive a restart, so
 * after one no call is in progress, and a call's start and end alone write nothing. A pair
 * whose state records nothing has no entry and no row.
 */
import {
  applyPairEvent, callbackDecision, emptyPairState, isEmptyPairState, lastingPairState, sameLastingState,
  type CallbackLimits, type PairEvent, type PairState,
} from "../policy/callback-rules";
import { nowSeconds, parsePairState, type CallbackStore } from "./callback-store";

/** The htable's name and the database table it loads from (kamailio.cfg, callback-state.sql). */
export const CALLBACK_TABLE = "wa_callback";
/** The htable of calls in progress: pair → Call-ID (kamailio.cfg; no database: no call survives a restart). */
export const ACTIVE_CALL_TABLE = "wa_callactive";
/** sqlops connection to WA_STATE_DB_URL (kamailio.cfg) and the result container its answers go to. */
const STATE_DB = "wa_state";
const STATE_RESULT = "wa_state";

/** The pair's state: its lasting entry with its call in progress; null when neither exists. */
function readPair(key: string): PairState | null {
  const lasting = parsePairState(key, KSR.htable.sht_get(CALLBACK_TABLE, key));
  const call = KSR.htable.sht_get(ACTIVE_CALL_TABLE, key);
  const activeCall = call === null || call === "" ? null : String(call);
  if (lasting === null && activeCall === null) return null;
  const state = lasting || emptyPairState();
  state.activeCall = activeCall;
  return state;
}

function locked<T>(key: string, work: () => T): T {
  KSR.htable.sht_lock(CALLBACK_TABLE, key);
  try {
    return work();
  } finally {
    KSR.htable.sht_unlock(CALLBACK_TABLE, key);
  }
}

/** An SQL string literal: SQLite's literals know one escape, the doubled quote. */
function sqlText(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

function sql(query: string): boolean {
  if (KSR.sqlops.sql_query(STATE_DB, query, STATE_RESULT) >= 0) return true;
  KSR.err(`callback state database: query failed (cause in the sqlops/db_sqlite error before this): ${query}\n`);
  return false;
}

/** This process's connection (each process has its own): its synchronous mode once set up. */
let synchronous: "NORMAL" | "FULL" | null = null;

/**
 * SQLite settings for this process's connection, made on its first write. db_sqlite 5.6 sets
 * none of them from a URL (db_set_journal_mode wants the file path; there is no busy timeout or
 * synchronous parameter), so they are PRAGMAs:
 *  - busy_timeout: the workers write from separate processes; one waits for another's commit
 *    instead of failing with SQLITE_BUSY;
 *  - journal_mode=WAL (kept in the database file): a commit appends to the log instead of
 *    rewriting pages through a rollback journal, and readers (the sqlite3 CLI) never block us;
 *  - synchronous=NORMAL, only once WAL is on (with a rollback journal it risks the file on
 *    power loss): no fsync per commit. Every commit survives Kamailio being killed or
 *    restarted; a power loss or OS crash can lose the commits since the last checkpoint, never
 *    the file's consistency. Permission changes from the API are fsynced all the same.
 */
function prepareConnection(): void {
  if (synchronous !== null) return;
  sql("PRAGMA busy_timeout=5000");
  if (sql("PRAGMA journal_mode=WAL") && String(KSR.pv.get(`$dbr(${STATE_RESULT}=>[0,0])`)).toLowerCase() === "wal") {
    synchronous = "NORMAL";
    sql("PRAGMA synchronous=NORMAL");
  } else {
    synchronous = "FULL";
    KSR.warn("callback state database: no WAL journal; every change is fsynced (slower, as safe)\n");
  }
}

/** Writes the pair's row: its state as htable loads it (a string value, no expiry), or no row. */
function storeRow(key: string, value: string | null, fsync: boolean): void {
  prepareConnection();
  const name = sqlText(key);
  // REPLACE keeps the row's id (found by name), so this works with or without the unique index
  // on key_name that callback-state.sql creates (databases made by earlier versions lack it).
  const query = value === null
    ? `DELETE FROM ${CALLBACK_TABLE} WHERE key_name=${name}`
    : `REPLACE INTO ${CALLBACK_TABLE} (id,key_name,key_type,value_type,key_value,expires) `
      + `VALUES ((SELECT id FROM ${CALLBACK_TABLE} WHERE key_name=${name}),${name},0,0,${sqlText(value)},0)`;
  // A failed write leaves the row behind memory until the pair's next write, which writes the
  // whole state again.
  if (!fsync || synchronous === "FULL") {
    sql(query);
    return;
  }
  sql("PRAGMA synchronous=FULL");
  sql(query);
  sql(`PRAGMA synchronous=${synchronous}`);
}

/** The lasting part of a state as its entry and row hold it; null: no entry or row. */
function lastingValue(s: PairState): string | null {
  const lasting = lastingPairState(s);
  return isEmptyPairState(lasting) ? null : JSON.stringify(lasting);
}

/**
 * Under the pair's lock, with its state as read (`current`): stores the state after the event,
 * the lasting part in memory and on disk only when it changed, the call in progress in its own
 * entry only when that changed.
 */
function apply(key: string, current: PairState | null, event: PairEvent, now: number, fsync = false): PairState {
  const next = applyPairEvent(current, event, now);
  if (!sameLastingState(current, next)) {
    const value = lastingValue(next);
    if (value === null) KSR.htable.sht_rm(CALLBACK_TABLE, key);
    else KSR.htable.sht_sets(CALLBACK_TABLE, key, value);
    storeRow(key, value, fsync);
  }
  const callBefore = current === null ? null : current.activeCall;
  if (next.activeCall !== callBefore) {
    if (next.activeCall === null) KSR.htable.sht_rm(ACTIVE_CALL_TABLE, key);
    else KSR.htable.sht_sets(ACTIVE_CALL_TABLE, key, next.activeCall);
  }
  return next;
}

function updatePair(key: string, event: PairEvent): void {
  locked(key, () => {
    // A call's end changes nothing lasting: only its own entry goes (no JSON read or written).
    if (event.type === "ended") {
      const call = KSR.htable.sht_get(ACTIVE_CALL_TABLE, key);
      if (call !== null && String(call) === event.callId) KSR.htable.sht_rm(ACTIVE_CALL_TABLE, key);
      return;
    }
    apply(key, readPair(key), event, nowSeconds());
  });
}

function recordPermission(key: string, event: Extract<PairEvent, { type: "granted" | "revoked" }>): PairState {
  return locked(key, () => apply(key, readPair(key), event, nowSeconds(), true));
}

function updateExistingPair(key: string, event: PairEvent): void {
  // Most callers have no state: one unlocked read settles that without taking the lock (a pair
  // created meanwhile is ordered after this event, which is then a no-op for it anyway).
  // (A pair with only a call in progress has nothing a user's call could change.)
  const unlocked = KSR.htable.sht_get(CALLBACK_TABLE, key);
  if (unlocked === null || unlocked === "") return;
  locked(key, () => {
    const current = readPair(key);
    if (current !== null) apply(key, current, event, nowSeconds());
  });
}

function admitCall(key: string, callId: string, limits: CallbackLimits) {
  return locked(key, () => {
    const now = nowSeconds();
    const current = readPair(key);
    const verdict = callbackDecision(current, now, limits);
    if (verdict.allow) apply(key, current, { type: "call-started", callId }, now);
    return verdict;
  });
}

/** Every pair with a lasting entry or a call in progress (a call can outlast a revoked permission's entry). */
function allPairs(): Array<{ key: string; state: PairState }> {
  const out: Array<{ key: string; state: PairState }> = [];
  const seen = Object.create(null) as { [key: string]: boolean };
  const tables = [CALLBACK_TABLE, ACTIVE_CALL_TABLE];
  for (let i = 0; i < tables.length; i++) {
    const table = tables[i];
    if (KSR.htable.sht_iterator_start("wa_cb_it", table) < 0) continue;
    while (KSR.htable.sht_iterator_next("wa_cb_it") > 0) {
      const key = String(KSR.pv.get("$shtitkey(wa_cb_it)"));
      if (seen[key]) continue;
      seen[key] = true;
      const state = readPair(key);
      if (state) out.push({ key, state });
    }
    KSR.htable.sht_iterator_end("wa_cb_it");
  }
  return out;
}

/** Permissions are fsynced before the API answers (the backend takes the answer as recorded). */
export const sqliteStore: CallbackStore = { readPair, updatePair, recordPermission, updateExistingPair, admitCall, allPairs };
