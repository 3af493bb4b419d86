/**
 * A double of Kamailio's KSR object for routing unit tests, built from the same
 * app_jsdt.api_list as the declarations (types/kamailio-kemi/api.json): every exported
 * function exists with its arity, nothing else does.
 *
 * It answers from a real SIP message given as text (parsed, never hand-filled) plus the
 * transport it "arrived" on, and records what Kamailio would have done: replies, relays,
 * header changes, rtpengine calls, exit/drop, log lines. Functions it does not simulate
 * throw, so a test never passes on a made-up answer; give one with `answers`.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { REPO_ROOT } from "../../build/bundle.js";
import type { KemiApi, KemiFunction } from "../../build/gen-kemi.js";
import { EXIT_SENTINEL } from "../../routing/runtime/route-end.js";
import { header, headerValues, parseNameAddr, parseSipMessage, parseUri, type SipMessage } from "../../media-agent/src/sip/message.js";

const api: KemiApi = JSON.parse(readFileSync(resolve(REPO_ROOT, "types/kamailio-kemi/api.json"), "utf8"));

export interface Transport {
  proto: "udp" | "tcp" | "tls";
  srcIp: string;
  srcPort: number;
  rcvIp: string;
  rcvPort: number;
}

export interface DoubleOptions {
  /** The SIP message as it would arrive on the wire. */
  message: string;
  transport?: Partial<Transport>;
  /** cfg defines visible through KSR.kx.get_def / ifdef. */
  defines?: Record<string, string>;
  /** Host names and addresses Kamailio considers its own (alias, listen). */
  myself?: string[];
  /** Environment visible through KSR.kx.get_env (the WA_* routing settings). */
  env?: Record<string, string>;
  /** Active dialogs per profile value, e.g. { "calls_per_number/+15550001111": 3 }. */
  dialogProfiles?: Record<string, number>;
  /** htable contents by table name; changes are visible in `htables` afterwards. */
  htables?: Record<string, Record<string, string>>;
  /** A transaction already exists for this message (CANCEL/ACK matching). */
  transactionExists?: boolean;
  /** Pseudo-variables already set (AVPs an earlier route of the transaction left). */
  vars?: Record<string, string | number>;
  /**
   * A dialog the dialog module holds: found (is_known_dlg, $dlg(…), $dlg_var(…)) when the
   * message's Call-ID and tags match it as Kamailio's match_dialog does.
   */
  dialog?: DialogRecord;
  /**
   * The dialog module's own events (ksr_dialog_event): `dialog` is the event's dialog whatever
   * the message (dialog sets it as the context; the message may be Kamailio's faked OPTIONS).
   */
  dialogInContext?: boolean;
  /**
   * The dispatcher's agents (set 1) and whether each answers its probes; ds_select_dst puts $du
   * on the first that does, ds_next_dst on the next. Default: one agent, up, at WA_AGENT_URI's default.
   */
  agents?: Array<{ uri: string; up: boolean }>;
  /** $du as the route starts (in a failure route: where the failed branch went). */
  dstUri?: string;
  /** Overrides or additions: "module.name" (core functions: "name") → implementation. */
  answers?: Record<string, (...args: unknown[]) => unknown>;
}

export interface DialogRecord {
  callId: string;
  fromTag: string;
  /** The callee's tag; unset while the dialog is early. */
  toTag?: string;
  /** $dlg(from_rs), $dlg(to_rs), $dlg(from_contact), $dlg(to_contact). */
  fromRs?: string;
  toRs?: string;
  fromContact?: string;
  toContact?: string;
  /** $dlg_var(name) values. */
  vars?: Record<string, string>;
  /** $dlg(dflags): dialog's flags (1 << 10: expired, its timeout reached). */
  flags?: number;
}

export interface Reply {
  code: number;
  reason: string;
  /** Headers added with KSR.hdr.append_to_reply before this reply. */
  headers: string[];
  via: string;
}

export interface Relay {
  via: string;
  ruri: string;
  duri: string | null;
  failureRoute: string | null;
  replyRoute: string | null;
}

export interface KsrDouble {
  KSR: typeof KSR;
  message: SipMessage;
  calls: Array<{ fn: string; args: unknown[] }>;
  replies: Reply[];
  relays: Relay[];
  headerOps: Array<{ op: string; args: string[] }>;
  rtpengine: Array<{ fn: string; flags: string }>;
  logs: Array<{ level: string; text: string }>;
  ended: "exit" | "drop" | null;
  flags: Set<number>;
  vars: Map<string, string | number | null>;
  /** htable contents (the double's shared memory), by table and key. */
  htables: Record<string, Record<string, string>>;
  /** Queries sent with KSR.sqlops.sql_query, in order. */
  sql: Array<{ con: string; query: string }>;
  /** dlg_manage() called, and the profiles the call was put in ("profile/value"). */
  dialog: { managed: boolean; profiles: string[] };
  /** xhttp_prom counters as increased: "name{label,label} → total". */
  counters: Map<string, number>;
  /** tm's timers as the route set them for the next relay (t_set_fr), in ms; 0: tm's default. */
  timers: { frInv: number; fr: number } | null;
}

type Impl = (...args: any[]) => unknown;

export function createKsrDouble(opts: DoubleOptions): KsrDouble {
  const message = parseSipMessage(opts.message);
  const transport: Transport = {
    proto: "udp",
    srcIp: "127.0.0.1",
    srcPort: 5060,
    rcvIp: "127.0.0.1",
    rcvPort: 5060,
    ...opts.transport,
  };
  const d: KsrDouble = {
    KSR: {} as typeof KSR,
    message,
    calls: [],
    replies: [],
    relays: [],
    headerOps: [],
    rtpengine: [],
    logs: [],
    ended: null,
    flags: new Set(),
    vars: new Map(Object.entries(opts.vars ?? {})),
    dialog: { managed: false, profiles: [] },
    counters: new Map(),
    timers: null,
    htables: opts.htables ?? {},
    sql: [],
  };
  const iterators: Record<string, { keys: string[]; table: string; at: number }> = {};
  const agents = opts.agents ?? [{ uri: "sip:127.0.0.1:5080", up: true }];
  /** The first agent from `from` on that is up becomes $du. */
  const selectAgent = (set: number, from: number): number => {
    if (set !== 1) return -1;
    for (let i = from; i < agents.length; i++) {
      if (!agents[i].up) continue;
      duri = agents[i].uri;
      return 1;
    }
    return -1;
  };
  const table = (name: string) => (d.htables[name] ??= {});
  /** sqlops result containers: rows of column values, as $dbr(name=>[row,column]) reads them. */
  const sqlResults: Record<string, string[][]> = {};
  let pendingReplyHeaders: string[] = [];
  let ruri = message.uri;
  let duri: string | null = opts.dstUri ?? null;
  let failureRoute: string | null = null;
  let replyRoute: string | null = null;

  const hdr = (name: string) => header(message, name);
  /** Each header line's whole value, as $(hdr(name)[i]) and $hdrc(name) see them. */
  const headerLines = (name: string) => message.headers.filter((h) => h.name.toLowerCase() === name.toLowerCase()).map((h) => h.value);
  const from = () => parseNameAddr(hdr("From") ?? "");
  const to = () => parseNameAddr(hdr("To") ?? "");
  const uriPart = (uri: string, part: "user" | "host" | "port") => {
    try {
      return parseUri(uri)[part] || null;
    } catch {
      return null;
    }
  };
  const cseq = () => (hdr("CSeq") ?? "").split(/\s+/);
  const methodIs = (m: string) => message.kind === "request" && message.method.toUpperCase() === m;
  const knownDialog = (): DialogRecord | null => {
    const dlg = opts.dialog;
    if (dlg && opts.dialogInContext) return dlg;
    if (!dlg || hdr("Call-ID") !== dlg.callId) return null;
    const ftag = from().params.tag ?? "";
    const ttag = to().params.tag ?? "";
    if (!dlg.toTag) return ftag === dlg.fromTag || ttag === dlg.fromTag ? dlg : null;
    return (ftag === dlg.fromTag && ttag === dlg.toTag) || (ftag === dlg.toTag && ttag === dlg.fromTag) ? dlg : null;
  };
  const dlgFields: Record<string, (dlg: DialogRecord) => string | undefined> = {
    callid: (dlg) => dlg.callId,
    from_tag: (dlg) => dlg.fromTag,
    to_tag: (dlg) => dlg.toTag,
    from_rs: (dlg) => dlg.fromRs,
    to_rs: (dlg) => dlg.toRs,
    from_contact: (dlg) => dlg.fromContact,
    to_contact: (dlg) => dlg.toContact,
    dflags: (dlg) => String(dlg.flags ?? 0),
  };

  /** Pseudo-variables, named as in Kamailio's pv module. */
  const pvGet = (name: string): string | number | null => {
    const hdrMatch = name.match(/^\$hdr\(([^)]+)\)$/);
    if (hdrMatch) return hdr(hdrMatch[1]) ?? null;
    const hdrIdx = name.match(/^\$\(hdr\(([^)]+)\)\[(-?\d+)\]\)$/);
    if (hdrIdx) return headerLines(hdrIdx[1]).at(parseInt(hdrIdx[2], 10)) ?? null;
    const dlgMatch = name.match(/^\$dlg\(([a-z_]+)\)$/);
    if (dlgMatch) {
      const field = dlgFields[dlgMatch[1]];
      if (!field) throw new Error(`KSR double: ${name} is not simulated`);
      const dlg = knownDialog();
      return (dlg && field(dlg)) ?? null;
    }
    const dlgVar = name.match(/^\$dlg_var\(([^)]+)\)$/);
    if (dlgVar && !d.vars.has(name)) return knownDialog()?.vars?.[dlgVar[1]] ?? null;
    const hdrcMatch = name.match(/^\$hdrc\(([^)]+)\)$/);
    if (hdrcMatch) return headerLines(hdrcMatch[1]).length;
    const dbr = name.match(/^\$dbr\(([^=]+)=>\[(\d+),(\d+)\]\)$/);
    if (dbr) return sqlResults[dbr[1]]?.[parseInt(dbr[2], 10)]?.[parseInt(dbr[3], 10)] ?? null;
    const itKey = name.match(/^\$shtitkey\(([^)]+)\)$/);
    if (itKey) {
      const it = iterators[itKey[1]];
      return it ? it.keys[it.at] ?? null : null;
    }
    if (/^\$(var|avp|xavp|dlg_var)\(/.test(name)) return d.vars.has(name) ? d.vars.get(name)! : name.startsWith("$var(") ? 0 : null;
    const simple: Record<string, () => string | number | null> = {
      $rm: () => (message.kind === "request" ? message.method : (cseq()[1] ?? null)),
      $ru: () => ruri,
      $rU: () => uriPart(ruri, "user"),
      $rd: () => uriPart(ruri, "host"),
      $rp: () => uriPart(ruri, "port") ?? 5060,
      $du: () => duri,
      $fu: () => from().uri,
      $fU: () => uriPart(from().uri, "user"),
      $fd: () => uriPart(from().uri, "host"),
      $fn: () => from().display || null,
      $ft: () => from().params.tag ?? null,
      $tu: () => to().uri,
      $tU: () => uriPart(to().uri, "user"),
      $td: () => uriPart(to().uri, "host"),
      $tt: () => to().params.tag ?? null,
      $ci: () => hdr("Call-ID") ?? null,
      $cs: () => parseInt(cseq()[0], 10),
      $ua: () => hdr("User-Agent") ?? null,
      $au: () => (hdr("Proxy-Authorization") ?? hdr("Authorization") ?? "").match(/username="([^"]*)"/)?.[1] ?? null,
      $ct: () => hdr("Contact") ?? null,
      $rb: () => message.body,
      $mb: () => opts.message,
      $cl: () => message.body.length,
      $rs: () => (message.kind === "response" ? message.status : null),
      $rr: () => (message.kind === "response" ? message.reason : null),
      $mt: () => (message.kind === "request" ? 1 : 2),
      $si: () => transport.srcIp,
      $sp: () => transport.srcPort,
      $Ri: () => transport.rcvIp,
      $Rp: () => transport.rcvPort,
      $pr: () => transport.proto,
      $proto: () => transport.proto,
    };
    const fn = simple[name];
    if (!fn) throw new Error(`KSR double: pseudo-variable ${name} is not simulated (test/support/ksr-double.ts)`);
    return fn();
  };
  const pvSet = (name: string, value: string | number) => {
    if (name === "$ru") ruri = String(value);
    else if (name === "$du") duri = String(value);
    else if (/^\$(var|avp|xavp|dlg_var)\(/.test(name)) d.vars.set(name, value);
    else throw new Error(`KSR double: setting ${name} is not simulated`);
    d.headerOps.push({ op: "set", args: [name, String(value)] });
    return 1;
  };

  const end = (how: "exit" | "drop") => {
    d.ended = how;
    throw EXIT_SENTINEL;
  };
  const count = (name: string, labels: string[], n: number) => {
    const key = `${name}{${labels.join(",")}}`;
    d.counters.set(key, (d.counters.get(key) ?? 0) + n);
    return 1;
  };
  const reply = (code: number, reason: string) => {
    d.replies.push({ code, reason, headers: pendingReplyHeaders, via: "sl" });
    pendingReplyHeaders = [];
    return 1;
  };
  const relay = (via: string) => {
    d.relays.push({ via, ruri, duri, failureRoute, replyRoute });
    return 1;
  };
  const log = (level: string) => (text: string) => {
    d.logs.push({ level, text });
  };
  const isMyself = (uri: string) => {
    const host = uriPart(uri, "host");
    return host !== null && (opts.myself ?? []).includes(host);
  };

  const impl: Record<string, Impl> = {
    dbg: log("dbg"), info: log("info"), notice: log("notice"), warn: log("warn"), err: log("err"), crit: log("crit"),
    log: (level: string, text: string) => log(level)(text),
    setflag: (f: number) => (d.flags.add(f), true),
    resetflag: (f: number) => (d.flags.delete(f), true),
    isflagset: (f: number) => d.flags.has(f),
    is_method_in: (letters: string) => letters.split("").some((c) => methodIs(METHOD_LETTERS[c] ?? "")),
    is_UDP: () => transport.proto === "udp",
    is_TCP: () => transport.proto === "tcp",
    is_TLS: () => transport.proto === "tls",
    is_WS: () => false, is_WSS: () => false, is_WSX: () => false, is_SCTP: () => false,
    is_IPv4: () => !transport.srcIp.includes(":"),
    is_IPv6: () => transport.srcIp.includes(":"),
    is_myself: (uri: string) => isMyself(uri),
    is_myself_ruri: () => isMyself(ruri),
    is_myself_furi: () => isMyself(from().uri),
    is_myself_turi: () => isMyself(to().uri),
    is_myself_srcip: () => (opts.myself ?? []).includes(transport.srcIp),
    seturi: (u: string) => pvSet("$ru", u),
    setdsturi: (u: string) => pvSet("$du", u),

    "pv.get": pvGet,
    "pv.gete": (n: string) => pvGet(n) ?? "",
    "pv.getw": (n: string) => pvGet(n) ?? "<null>",
    "pv.geti": (n: string) => Number(pvGet(n) ?? 0),
    "pv.sets": pvSet,
    "pv.seti": pvSet,
    "pv.unset": (n: string) => (d.vars.delete(n), 1),
    "pv.is_null": (n: string) => pvGet(n) === null,

    "hdr.get": (n: string) => hdr(n) ?? null,
    "hdr.gete": (n: string) => hdr(n) ?? "",
    "hdr.getw": (n: string) => hdr(n) ?? "<null>",
    "hdr.is_present": (n: string) => (hdr(n) === undefined ? -1 : 1),
    "hdr.append": (h: string) => (d.headerOps.push({ op: "append", args: [h] }), 1),
    "hdr.insert": (h: string) => (d.headerOps.push({ op: "insert", args: [h] }), 1),
    "hdr.remove": (n: string) => (d.headerOps.push({ op: "remove", args: [n] }), hdr(n) === undefined ? -1 : 1),
    "hdr.append_to_reply": (h: string) => (pendingReplyHeaders.push(h.replace(/\r\n$/, "")), 1),

    "kx.get_method": () => pvGet("$rm"),
    "kx.get_ruri": () => ruri,
    "kx.get_ruser": () => pvGet("$rU"),
    "kx.get_rhost": () => pvGet("$rd"),
    "kx.get_furi": () => pvGet("$fu"),
    "kx.get_fuser": () => pvGet("$fU"),
    "kx.get_fhost": () => pvGet("$fd"),
    "kx.get_turi": () => pvGet("$tu"),
    "kx.get_tuser": () => pvGet("$tU"),
    "kx.get_thost": () => pvGet("$td"),
    "kx.get_callid": () => pvGet("$ci"),
    "kx.get_ua": () => pvGet("$ua"),
    "kx.get_body": () => message.body,
    "kx.get_srcip": () => transport.srcIp,
    "kx.get_srcport": () => transport.srcPort,
    // As Kamailio's get_src_uri writes it: no transport parameter for UDP, IPv6 in brackets.
    "kx.get_srcuri": () =>
      `sip:${transport.srcIp.includes(":") ? `[${transport.srcIp}]` : transport.srcIp}:${transport.srcPort}${transport.proto === "udp" ? "" : `;transport=${transport.proto}`}`,
    "kx.get_rcvip": () => transport.rcvIp,
    "kx.get_rcvport": () => transport.rcvPort,
    "kx.get_proto": () => transport.proto,
    "kx.get_def": (n: string) => opts.defines?.[n] ?? null,
    "kx.get_env": (n: string) => opts.env?.[n] ?? null,
    "kx.ifdef": (n: string) => opts.defines?.[n] !== undefined,
    "kx.ifndef": (n: string) => opts.defines?.[n] === undefined,

    "sl.sl_send_reply": reply,
    "sl.send_reply": reply,
    "sl.sl_reply_error": () => reply(500, "Server Internal Error (sl_reply_error)"),
    "tm.t_reply": reply,
    "tm.t_send_reply": reply,
    "tm.t_newtran": () => 1,
    "xhttp_prom.counter_inc_l0": (name: string, n: number) => count(name, [], n),
    "xhttp_prom.counter_inc_l1": (name: string, n: number, a: string) => count(name, [a], n),
    "xhttp_prom.counter_inc_l2": (name: string, n: number, a: string, b: string) => count(name, [a, b], n),
    "xhttp_prom.counter_inc_l3": (name: string, n: number, a: string, b: string, c: string) => count(name, [a, b, c], n),
    "tm.t_check_trans": () => (opts.transactionExists ? 1 : -1),
    "tm.t_relay": () => relay("t_relay"),
    "tm.t_on_failure": (name: string) => ((failureRoute = name), 1),
    "tm.t_on_reply": (name: string) => ((replyRoute = name), 1),

    "siputils.has_totag": () => (to().params.tag ? 1 : -1),
    "rr.loose_route": () => {
      const route = headerValues(message, "Route")[0];
      return route && isMyself(parseNameAddr(route).uri) ? 1 : -1;
    },
    "uac.uac_replace_from_uri": (uri: string) => (d.headerOps.push({ op: "replace_from", args: [uri] }), 1),
    "uac.uac_replace_to_uri": (uri: string) => (d.headerOps.push({ op: "replace_to", args: [uri] }), 1),
    "rr.record_route": () => (d.headerOps.push({ op: "record_route", args: [] }), 1),

    "dialog.dlg_manage": () => ((d.dialog.managed = true), 1),
    "dialog.is_known_dlg": () => (knownDialog() ? 1 : -1),
    "dialog.set_dlg_profile": (profile: string, value: string) => (d.dialog.profiles.push(`${profile}/${value}`), 1),
    "dialog.get_profile_size": (profile: string, value: string, pv: string) =>
      pvSet(pv, opts.dialogProfiles?.[`${profile}/${value}`] ?? 0),

    "htable.sht_get": (t: string, k: string) => table(t)[k] ?? null,
    "htable.sht_sets": (t: string, k: string, v: string) => ((table(t)[k] = v), 1),
    "htable.sht_rm": (t: string, k: string) => (delete table(t)[k], 1),
    "htable.sht_lock": () => 1,
    "htable.sht_unlock": () => 1,
    // Records the query; SQLite answers PRAGMA journal_mode=X with the mode in force (X here).
    "sqlops.sql_query": (con: string, query: string, res: string) => {
      d.sql.push({ con, query });
      const journal = query.match(/^PRAGMA journal_mode=(\w+)$/i);
      sqlResults[res] = journal ? [[journal[1].toLowerCase()]] : [];
      return 0;
    },
    "htable.sht_iterator_start": (it: string, t: string) => ((iterators[it] = { keys: Object.keys(table(t)), table: t, at: -1 }), 1),
    "htable.sht_iterator_next": (it: string) => (++iterators[it].at < iterators[it].keys.length ? 1 : -1),
    "htable.sht_iterator_end": (it: string) => (delete iterators[it], 1),

    "maxfwd.process_maxfwd": (limit: number) => {
      const raw = hdr("Max-Forwards");
      if (raw === undefined) return (d.headerOps.push({ op: "append", args: [`Max-Forwards: ${limit}`] }), 2);
      if (!/^\d{1,3}$/.test(raw)) return -2;
      const value = parseInt(raw, 10);
      if (value === 0) return -1;
      d.headerOps.push({ op: "set", args: ["Max-Forwards", String(value - 1)] });
      return 1;
    },
    "sanity.sanity_check": () => sanity(message, reply),
    "sanity.sanity_reply": () => 1,
    "pike.pike_check_req": () => 1,
    "auth.auth_challenge": (realm: string, flags: number) => reply(407, `Proxy Authentication Required (realm ${realm}, flags ${flags})`),
    "auth.consume_credentials": () => (d.headerOps.push({ op: "remove", args: ["Proxy-Authorization"] }), 1),

    ...Object.fromEntries(
      ["rtpengine_offer", "rtpengine_answer", "rtpengine_delete", "rtpengine_manage"].map((fn) => [
        `rtpengine.${fn}`,
        (flags: string) => (d.rtpengine.push({ fn, flags }), 1),
      ]),
    ),
    "dispatcher.ds_select_dst": (set: number) => selectAgent(set, 0),
    // The last used address is the one $du names (the failed branch's, in a failure route).
    "dispatcher.ds_next_dst": () => (duri === null ? -1 : selectAgent(1, agents.findIndex((a) => a.uri === duri) + 1)),
    "tm.t_set_fr": (frInv: number, fr: number) => ((d.timers = { frInv, fr }), 1),
    "rtpengine.rtpengine_delete0": () => (d.rtpengine.push({ fn: "rtpengine_delete", flags: "" }), 1),
    "textops.remove_hf_exp": (match: string, skip: string) => (d.headerOps.push({ op: "remove_hf_exp", args: [match, skip] }), 1),
    // Kamailio sets the drop flags here; the route ends when the sentinel is thrown (runRoute).
    set_drop: () => {
      d.ended = "drop";
    },
    "textops.has_body_type": (type: string) =>
      message.body.length > 0 && (hdr("Content-Type") ?? "").split(";")[0].trim().toLowerCase() === type.toLowerCase() ? 1 : -1,
  };
  for (const method of Object.values(METHOD_LETTERS)) impl[`is_${method}`] = () => methodIs(method);
  Object.assign(impl, opts.answers ?? {});

  const ksr: Record<string, any> = {};
  for (const f of api.functions) {
    const target = f.module ? (ksr[f.module] ??= {}) : ksr;
    target[f.name] = exported(f, impl[f.module ? `${f.module}.${f.name}` : f.name], d);
  }
  ksr.x = {
    exit: () => end("exit"),
    drop: () => end("drop"),
    modf: (...args: unknown[]) => {
      throw new Error(`KSR double: KSR.x.modf(${args.join(", ")}) is not simulated`);
    },
  };
  d.KSR = ksr as typeof KSR;
  return d;
}

/** Letters of KSR.is_method_in, as in Kamailio's core. */
const METHOD_LETTERS: Record<string, string> = {
  I: "INVITE", A: "ACK", B: "BYE", C: "CANCEL", R: "REGISTER", O: "OPTIONS", S: "SUBSCRIBE", P: "PUBLISH",
  N: "NOTIFY", U: "UPDATE", F: "REFER", E: "INFO", M: "MESSAGE", K: "KDMQ", G: "GET", T: "POST", V: "PUT", D: "DELETE",
};

function exported(f: KemiFunction, implementation: Impl | undefined, d: KsrDouble): Impl {
  const label = f.module ? `KSR.${f.module}.${f.name}` : `KSR.${f.name}`;
  return (...args: unknown[]) => {
    if (args.length !== f.params.length) {
      throw new TypeError(`${label} takes ${f.params.length} parameter(s) (${f.params.join(", ")}), got ${args.length}`);
    }
    f.params.forEach((type, i) => {
      const ok = type === "int" ? Number.isInteger(args[i]) : typeof args[i] === "string";
      if (!ok) throw new TypeError(`${label}: parameter ${i + 1} must be ${type}, got ${JSON.stringify(args[i])}`);
    });
    d.calls.push({ fn: label.slice(4), args });
    if (!implementation) {
      throw new Error(`KSR double: ${label} is not simulated; pass it in 'answers' or add it to test/support/ksr-double.ts`);
    }
    return implementation(...args);
  };
}

/** The checks of sanity_check(17895, 7) that the routing relies on, answered as sanity does. */
function sanity(message: SipMessage, reply: (code: number, reason: string) => number): number {
  if (message.kind !== "request") return 1;
  const [num, method] = (header(message, "CSeq") ?? "").split(/\s+/);
  if (!/^\d+$/.test(num ?? "")) return reply(400, "Bad CSeq Number"), -1;
  if (method !== message.method) return reply(400, "CSeq method does not match request method"), -1;
  const cl = header(message, "Content-Length");
  if (cl !== undefined && parseInt(cl, 10) !== Buffer.byteLength(message.body)) return reply(400, "Content-Length mis-match"), -1;
  try {
    parseUri(message.uri);
  } catch {
    return reply(400, "Bad Request URI"), -1;
  }
  return 1;
}

/** Runs a routing callback the way app_jsdt does: the exit sentinel ends it quietly. */
export function runRoute(d: KsrDouble, route: () => void): void {
  const g = globalThis as unknown as { KSR?: typeof KSR };
  const previous = g.KSR;
  g.KSR = d.KSR;
  try {
    route();
  } catch (err) {
    if (err !== EXIT_SENTINEL) throw err;
    // The routing throws the sentinel itself (endRoute), as KSR.x.exit() does in app_jsdt.
    d.ended ??= "exit";
  } finally {
    g.KSR = previous;
  }
}
