/**
 * Callback-rule state shared by several Kamailio nodes, in Redis (WA_STATE_REDIS_URL; ndb_redis
 * server "wa_state", one connection per Kamailio process: kamailio.cfg). Each pair has two keys,
 * in one hash slot ({pair}) so that a Redis Cluster keeps them together:
 *
 *   wa:cb:{business|user}        the lasting state (JSON, policy/callback-rules.ts lastingPairState),
 *                                expiring when nothing in it matters any more (lastingUntil): the
 *                                24 h of a connected call, the 7 days of a temporary permission
 *   wa:cb:{business|user}:call   the Call-ID of the pair's call in progress, expiring with the
 *                                longest call (WA_MAX_CALL_SECONDS): a node that dies mid-call
 *                                blocks the pair no longer than the call could have lasted
 *
 * Every change is optimistic and atomic across nodes: WATCH both keys, read them, apply the pure
 * rules, then MULTI … EXEC. When another node changed the pair in between, Redis discards the
 * EXEC and the change is made again on the new state, so two nodes deciding for one pair at the
 * same moment never both pass "one active call" or the daily limit.
 *
 * Trust: Redis is ours (loopback or the site's private network); what it holds was written by
 * this routing. A Redis that does not answer fails the step (stateUnavailable): a new call is
 * refused with 503, the permission API answers 503, and nothing is decided on a guess.
 */
import {
  applyPairEvent, callbackDecision, emptyPairState, isEmptyPairState, lastingPairState, lastingUntil,
  type CallbackDecision, type CallbackLimits, type PairEvent, type PairState,
} from "../policy/callback-rules";
import { routingConfig } from "../config";
import { isStateUnavailable, nowSeconds, parsePairState, stateUnavailable, type CallbackStore } from "./callback-store";

/** ndb_redis's server name (build/kamailio.ts redisServerDefinition) and this file's reply container. */
const SERVER = "wa_state";
const REPLY = "wa_state";
/** hiredis reply types, as $redis(…=>type) gives them. */
const REDIS_REPLY_ARRAY = 2;
const REDIS_REPLY_NIL = 4;
const REDIS_REPLY_ERROR = 6;
/** Tries before a pair that keeps changing under us is given up (each try is a few loopback round trips). */
const TRIES = 8;
/** A Call-ID key lives this much longer than the longest call (the dialog's own BYE comes first). */
const CALL_KEY_MARGIN_S = 60;

const PREFIX = "wa:cb:{";

function lastingKey(pair: string): string {
  return `${PREFIX}${pair}}`;
}

function callKey(pair: string): string {
  return `${PREFIX}${pair}}:call`;
}

function replyField(field: string): string | number | null {
  return KSR.pv.get(`$redis(${REPLY}=>${field})`);
}

/** Runs one command (the reply is in REPLY); a failure or an error reply throws. */
function redis(what: string, rc: number): void {
  if (rc < 0) throw stateUnavailable(`Redis did not answer ${what} (the ndb_redis error before this names the cause)`);
  if (replyField("type") === REDIS_REPLY_ERROR) throw stateUnavailable(`Redis refused ${what}: ${String(replyField("value"))}`);
}

interface Stored {
  state: PairState | null;
}

/** Reads both keys of a pair (MGET). */
function load(pair: string): Stored {
  redis("MGET", KSR.ndb_redis.redis_cmd_p2(SERVER, "MGET %s %s", lastingKey(pair), callKey(pair), REPLY));
  const lasting = replyField("type[0]") === REDIS_REPLY_NIL ? null : parsePairState(pair, replyField("value[0]"));
  const call = replyField("type[1]") === REDIS_REPLY_NIL ? null : String(replyField("value[1]"));
  if (lasting === null && call === null) return { state: null };
  const state = lasting || emptyPairState();
  state.activeCall = call;
  return { state };
}

/** Queues the writes that make the pair's keys say `next` (inside MULTI). */
function queueWrites(pair: string, next: PairState, now: number): void {
  const lasting = lastingPairState(next);
  const until = lastingUntil(lasting);
  if (isEmptyPairState(lasting) || (until !== null && until <= now)) {
    redis("DEL", KSR.ndb_redis.redis_cmd_p1(SERVER, "DEL %s", lastingKey(pair), REPLY));
  } else if (until === null) {
    redis("SET", KSR.ndb_redis.redis_cmd_p2(SERVER, "SET %s %s", lastingKey(pair), JSON.stringify(lasting), REPLY));
  } else {
    redis("SET EX", KSR.ndb_redis.redis_cmd_p3(SERVER, "SET %s %s EX %s", lastingKey(pair), JSON.stringify(lasting), String(until - now), REPLY));
  }
  if (next.activeCall === null) {
    redis("DEL", KSR.ndb_redis.redis_cmd_p1(SERVER, "DEL %s", callKey(pair), REPLY));
  } else {
    const cfg = routingConfig();
    const ttl = (cfg ? cfg.maxCallSeconds : 14400) + CALL_KEY_MARGIN_S;
    redis("SET EX", KSR.ndb_redis.redis_cmd_p3(SERVER, "SET %s %s EX %s", callKey(pair), next.activeCall, String(ttl), REPLY));
  }
}

/**
 * One atomic change of a pair: `decide` gets the current state and returns the next one (null:
 * nothing to write) and its result. Retried on the new state when another change got in first.
 */
function change<R>(pair: string, decide: (current: PairState | null, now: number) => { next: PairState | null; result: R }): R {
  for (let attempt = 1; attempt <= TRIES; attempt++) {
    redis("WATCH", KSR.ndb_redis.redis_cmd_p2(SERVER, "WATCH %s %s", lastingKey(pair), callKey(pair), REPLY));
    const now = nowSeconds();
    const decision = decide(load(pair).state, now);
    if (decision.next === null) {
      redis("UNWATCH", KSR.ndb_redis.redis_cmd(SERVER, "UNWATCH", REPLY));
      return decision.result;
    }
    redis("MULTI", KSR.ndb_redis.redis_cmd(SERVER, "MULTI", REPLY));
    try {
      queueWrites(pair, decision.next, now);
    } catch (e) {
      KSR.ndb_redis.redis_cmd(SERVER, "DISCARD", REPLY);
      throw e;
    }
    redis("EXEC", KSR.ndb_redis.redis_cmd(SERVER, "EXEC", REPLY));
    if (replyField("type") === REDIS_REPLY_ARRAY) return decision.result;
    // Nil: a WATCHed key changed since it was read (another node or worker): decide again.
  }
  throw stateUnavailable(`callback state for ${pair} changed under us ${TRIES} times in a row`);
}

function recordPermission(pair: string, event: PairEvent): PairState {
  return change(pair, (current, now) => {
    const next = applyPairEvent(current, event, now);
    return { next, result: next };
  });
}

/**
 * A call's outcome, from a reply route or a dialog event: the call is over either way, so a
 * Redis that does not answer costs the pair this event (logged, naming it), not the SIP flow.
 */
function updatePair(pair: string, event: PairEvent, onlyExisting = false): void {
  try {
    change(pair, (current, now) => ({ next: onlyExisting && current === null ? null : applyPairEvent(current, event, now), result: undefined }));
  } catch (e) {
    if (!isStateUnavailable(e)) throw e;
    KSR.err(`callback state: event '${event.type}' for ${pair} is lost: ${e.message}\n`);
  }
}

function admitCall(pair: string, callId: string, limits: CallbackLimits): CallbackDecision {
  try {
    return change(pair, (current, now) => {
      const verdict = callbackDecision(current, now, limits);
      return { next: verdict.allow ? applyPairEvent(current, { type: "call-started", callId }, now) : null, result: verdict };
    });
  } catch (e) {
    if (!isStateUnavailable(e)) throw e;
    return { allow: false, code: 503, reason: "Service Unavailable - Callback State Unavailable", cause: e.message };
  }
}

function allPairs(): Array<{ key: string; state: PairState }> {
  // KEYS walks the whole keyspace at once: fine for an operator's listing of a dedicated
  // database, and the reply is one flat array (SCAN's nested reply is beyond $redis()).
  redis("KEYS", KSR.ndb_redis.redis_cmd_p1(SERVER, "KEYS %s", `${PREFIX}*`, REPLY));
  const pairs: string[] = [];
  const size = Number(replyField("size"));
  for (let i = 0; i < size; i++) {
    const key = String(replyField(`value[${i}]`));
    const pair = key.slice(PREFIX.length, key.lastIndexOf("}"));
    if (pairs.indexOf(pair) < 0) pairs.push(pair);
  }
  const out: Array<{ key: string; state: PairState }> = [];
  for (let i = 0; i < pairs.length; i++) {
    const state = load(pairs[i]).state;
    if (state) out.push({ key: pairs[i], state });
  }
  return out;
}

export const redisStore: CallbackStore = {
  readPair: (pair) => load(pair).state,
  updatePair: (pair, event) => updatePair(pair, event),
  // Redis acknowledges EXEC once the change is in memory; its own persistence (AOF, replicas)
  // is the site's Redis setting (README "Scaling out").
  recordPermission,
  updateExistingPair: (pair, event) => updatePair(pair, event, true),
  admitCall,
  allPairs,
};
