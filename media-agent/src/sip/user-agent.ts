/**
 * The agent's SIP user agent (RFC 3261 over UDP, behind Kamailio): answers INVITE (100, 180,
 * 200 with SDP, 2xx retransmitted until the ACK), takes ACK, BYE, CANCEL and OPTIONS, sends
 * BYE, and places outbound INVITEs. Transactions are kept just long enough to answer
 * retransmissions; everything else is the call's business (agent.ts).
 */
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import {
  buildResponse, formatNameAddr, header, headerValues, parseCSeq, parseNameAddr, type SipHeader, type SipMessage,
} from "./message.js";
import type { SipPeer, SipTransport } from "./transport.js";

/** RFC 3261 timer values for UDP. */
const T1 = 500;
const T2 = 4000;
const TRANSACTION_LIFETIME = 64 * T1;

export const ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS";
const USER_AGENT = "wa-media-agent";

export interface Dialog {
  callId: string;
  localTag: string;
  remoteTag: string;
  /** name-addr values for our From/To in requests we send. */
  localUri: string;
  remoteUri: string;
  remoteTarget: string;
  routeSet: string[];
  localSeq: number;
  direction: "inbound" | "outbound";
}

export interface IncomingInvite {
  request: SipMessage;
  callId: string;
  /** Sends 180 Ringing (no SDP). */
  ringing(): void;
  /** 200 OK with our SDP; the dialog is confirmed when the ACK arrives (or the 2xx times out). */
  accept(sdp: string): Dialog;
  reject(status: number, reason: string): void;
  /** Set when a CANCEL arrived before an answer. */
  readonly canceled: boolean;
}

export interface OutgoingResult {
  status: number;
  reason: string;
  dialog?: Dialog;
  answerSdp?: string;
}

export interface UserAgentEvents {
  invite: [IncomingInvite];
  /** The peer ended the dialog (BYE) or canceled the INVITE before we answered. */
  ended: [callId: string, reason: string];
  /** Our 2xx was never acknowledged. */
  ackTimeout: [callId: string];
}

interface ServerTransaction {
  lastResponse?: SipMessage;
  expires: NodeJS.Timeout;
}

interface PendingInvite {
  request: SipMessage;
  toTag: string;
  answered: boolean;
  canceled: boolean;
  /** Retransmits the 2xx until the ACK comes. */
  retransmit?: NodeJS.Timeout;
  giveUp?: NodeJS.Timeout;
  onCancel?: () => void;
}

interface ClientTransaction {
  request: SipMessage;
  resolve: (response: SipMessage) => void;
  onProvisional?: (response: SipMessage) => void;
  timer?: NodeJS.Timeout;
  deadline: NodeJS.Timeout;
  interval: number;
  gotProvisional: boolean;
}

export class UserAgent extends EventEmitter<UserAgentEvents> {
  private readonly serverTransactions = new Map<string, ServerTransaction>();
  private readonly pendingInvites = new Map<string, PendingInvite>();
  private readonly clientTransactions = new Map<string, ClientTransaction>();
  /** Dialogs by Call-ID (one dialog per call: no forking behind Kamailio toward the agent). */
  readonly dialogs = new Map<string, Dialog>();

  constructor(
    private readonly transport: SipTransport,
    private readonly kamailio: SipPeer,
    private readonly log: Logger,
  ) {
    super();
  }

  get contact(): string {
    const l = this.transport.local;
    return `<sip:agent@${l.host}:${l.port}>`;
  }

  /** Entry for every message the transport accepted. */
  handle(msg: SipMessage): void {
    if (msg.kind === "response") return this.handleResponse(msg);
    if (msg.method === "ACK") return this.handleAck(msg);
    const key = transactionKey(msg);
    const known = this.serverTransactions.get(key);
    if (known) {
      // A retransmission: repeat our last answer (or stay quiet until there is one).
      if (known.lastResponse) this.transport.send(known.lastResponse);
      return;
    }
    this.serverTransactions.set(key, { expires: setTimeout(() => this.serverTransactions.delete(key), TRANSACTION_LIFETIME) });
    switch (msg.method) {
      case "INVITE":
        return this.handleInvite(msg, key);
      case "BYE":
        return this.handleBye(msg, key);
      case "CANCEL":
        return this.handleCancel(msg, key);
      case "OPTIONS":
        this.respond(key, msg, 200, "OK", { headers: [{ name: "Allow", value: ALLOW }, { name: "Accept", value: "application/sdp" }] });
        return;
      default:
        this.respond(key, msg, 405, "Method Not Allowed", { headers: [{ name: "Allow", value: ALLOW }] });
    }
  }

  private respond(
    key: string,
    request: SipMessage,
    status: number,
    reason: string,
    opts: { toTag?: string; headers?: SipHeader[]; body?: string; contentType?: string } = {},
  ): SipMessage {
    const headers = [...(opts.headers ?? []), { name: "User-Agent", value: USER_AGENT }];
    if (request.method === "INVITE" && status >= 101 && status < 300) headers.unshift({ name: "Contact", value: this.contact });
    const response = buildResponse(request, status, reason, { ...opts, headers });
    const tx = this.serverTransactions.get(key);
    if (tx) tx.lastResponse = response;
    this.transport.send(response);
    return response;
  }

  private handleInvite(request: SipMessage, key: string): void {
    const callId = header(request, "Call-ID")!;
    if (parseNameAddr(header(request, "To")!).params.tag) {
      // Kamailio answers re-INVITEs toward Meta itself; one reaching us has nothing to update.
      this.respond(key, request, this.dialogs.has(callId) ? 488 : 481, this.dialogs.has(callId) ? "Not Acceptable Here - No Session Updates" : "Call/Transaction Does Not Exist");
      return;
    }
    this.respond(key, request, 100, "Trying");
    const pending: PendingInvite = { request, toTag: randomToken(8), answered: false, canceled: false };
    this.pendingInvites.set(key, pending);
    const ua = this;
    const invite: IncomingInvite = {
      request,
      callId,
      get canceled() {
        return pending.canceled;
      },
      ringing() {
        if (!pending.answered && !pending.canceled) ua.respond(key, request, 180, "Ringing", { toTag: pending.toTag });
      },
      accept(sdp: string) {
        if (pending.canceled) throw new Error(`call ${callId} was canceled before it was answered`);
        pending.answered = true;
        const ok = ua.respond(key, request, 200, "OK", { toTag: pending.toTag, body: sdp, contentType: "application/sdp" });
        const dialog = ua.dialogAsUas(request, pending.toTag);
        ua.dialogs.set(callId, dialog);
        ua.retransmitUntilAck(pending, ok, key);
        return dialog;
      },
      reject(status: number, reason: string) {
        if (pending.answered || pending.canceled) return;
        pending.answered = true;
        ua.respond(key, request, status, reason, { toTag: pending.toTag });
        ua.pendingInvites.delete(key);
      },
    };
    this.emit("invite", invite);
  }

  /** 2xx retransmission at T1, doubling up to T2, until the ACK or 64·T1 (RFC 3261 §13.3.1.4). */
  private retransmitUntilAck(pending: PendingInvite, ok: SipMessage, key: string): void {
    let interval = T1;
    const again = () => {
      this.transport.send(ok);
      interval = Math.min(interval * 2, T2);
      pending.retransmit = setTimeout(again, interval);
    };
    pending.retransmit = setTimeout(again, interval);
    pending.giveUp = setTimeout(() => {
      clearTimeout(pending.retransmit);
      this.pendingInvites.delete(key);
      const callId = header(pending.request, "Call-ID")!;
      this.log.warn({ callId }, "no ACK for our 200 OK within 32 s");
      this.emit("ackTimeout", callId);
    }, TRANSACTION_LIFETIME);
  }

  private handleAck(ack: SipMessage): void {
    const callId = header(ack, "Call-ID")!;
    for (const [key, pending] of this.pendingInvites) {
      if (header(pending.request, "Call-ID") !== callId) continue;
      clearTimeout(pending.retransmit);
      clearTimeout(pending.giveUp);
      this.pendingInvites.delete(key);
    }
  }

  private handleBye(request: SipMessage, key: string): void {
    const callId = header(request, "Call-ID")!;
    if (!this.dialogs.has(callId)) {
      this.respond(key, request, 481, "Call/Transaction Does Not Exist");
      return;
    }
    this.respond(key, request, 200, "OK");
    this.forgetDialog(callId);
    this.emit("ended", callId, "remote BYE");
  }

  private handleCancel(request: SipMessage, key: string): void {
    const inviteKey = transactionKey(request, "INVITE");
    const pending = this.pendingInvites.get(inviteKey);
    if (!pending) {
      this.respond(key, request, 481, "Call/Transaction Does Not Exist");
      return;
    }
    this.respond(key, request, 200, "OK");
    if (pending.answered) return; // too late: the 200 OK stands, a BYE will follow
    pending.canceled = true;
    pending.answered = true;
    this.respond(inviteKey, pending.request, 487, "Request Terminated", { toTag: pending.toTag });
    this.pendingInvites.delete(inviteKey);
    this.emit("ended", header(request, "Call-ID")!, "CANCEL");
  }

  private dialogAsUas(request: SipMessage, toTag: string): Dialog {
    const from = parseNameAddr(header(request, "From")!);
    const to = parseNameAddr(header(request, "To")!);
    return {
      callId: header(request, "Call-ID")!,
      localTag: toTag,
      remoteTag: from.params.tag ?? "",
      localUri: formatNameAddr({ ...to, params: {} }),
      remoteUri: formatNameAddr({ ...from, params: {} }),
      remoteTarget: parseNameAddr(header(request, "Contact") ?? header(request, "From")!).uri,
      routeSet: headerValues(request, "Record-Route"),
      localSeq: 0,
      direction: "inbound",
    };
  }

  private forgetDialog(callId: string): void {
    this.dialogs.delete(callId);
  }

  // ----- requests we send

  /** Ends a confirmed dialog with BYE; resolves with the final status (408 on timeout). */
  async bye(callId: string, reason?: string): Promise<number> {
    const dialog = this.dialogs.get(callId);
    if (!dialog) return 481;
    this.forgetDialog(callId);
    const extra: SipHeader[] = reason ? [{ name: "Reason", value: reason }] : [];
    const response = await this.sendInDialog(dialog, "BYE", extra);
    return response.status;
  }

  private sendInDialog(dialog: Dialog, method: string, extra: SipHeader[] = []): Promise<SipMessage> {
    dialog.localSeq += 1;
    const request = this.request(method, dialog.remoteTarget, {
      from: `${dialog.localUri};tag=${dialog.localTag}`,
      to: `${dialog.remoteUri};tag=${dialog.remoteTag}`,
      callId: dialog.callId,
      cseq: dialog.localSeq,
      routes: dialog.routeSet,
      extra,
    });
    return this.sendRequest(request);
  }

  private request(
    method: string,
    uri: string,
    p: { from: string; to: string; callId: string; cseq: number; routes?: string[]; extra?: SipHeader[]; body?: string; branch?: string },
  ): SipMessage {
    const l = this.transport.local;
    const headers: SipHeader[] = [
      { name: "Via", value: `SIP/2.0/UDP ${l.host}:${l.port};branch=${p.branch ?? `z9hG4bK${randomToken(12)}`};rport` },
      { name: "Max-Forwards", value: "70" },
      ...(p.routes ?? []).map((r) => ({ name: "Route", value: r })),
      { name: "From", value: p.from },
      { name: "To", value: p.to },
      { name: "Call-ID", value: p.callId },
      { name: "CSeq", value: `${p.cseq} ${method}` },
      { name: "User-Agent", value: USER_AGENT },
      ...(p.extra ?? []),
    ];
    if (p.body) headers.push({ name: "Content-Type", value: "application/sdp" });
    return { kind: "request", method, uri, status: 0, reason: "", headers, body: p.body ?? "" };
  }

  /**
   * Where a request goes: to the Kamailio node its first Route names (RFC 3261 §8.1.2: the node
   * that record-routed the call holds its dialog), when that is a node this agent serves; else to
   * AGENT_KAMAILIO. The route set is no reason to send anywhere else.
   */
  private nextHop(request: SipMessage): SipPeer {
    const route = header(request, "Route");
    const m = route ? /^\s*<sip:(?:[^@>]*@)?([0-9.]+)(?::(\d+))?[;>]/.exec(route) : null;
    const node = m ? { host: m[1], port: Number(m[2] ?? 5060) } : null;
    return node && this.transport.isKamailio(node) ? node : this.kamailio;
  }

  /** A client transaction: retransmits over UDP until a response (INVITE: until a provisional one). */
  private sendRequest(request: SipMessage, onProvisional?: (r: SipMessage) => void): Promise<SipMessage> {
    const key = transactionKey(request);
    return new Promise((resolve) => {
      const tx: ClientTransaction = {
        request,
        resolve,
        onProvisional,
        interval: T1,
        gotProvisional: false,
        deadline: setTimeout(() => {
          this.endClientTransaction(key);
          resolve(timeoutResponse(request));
        }, request.method === "INVITE" ? 3 * 60_000 : TRANSACTION_LIFETIME),
      };
      const retransmit = () => {
        if (request.method === "INVITE" && tx.gotProvisional) return;
        this.transport.send(request, this.nextHop(request));
        tx.interval = request.method === "INVITE" ? tx.interval * 2 : Math.min(tx.interval * 2, T2);
        tx.timer = setTimeout(retransmit, tx.interval);
      };
      this.clientTransactions.set(key, tx);
      retransmit();
    });
  }

  private endClientTransaction(key: string): void {
    const tx = this.clientTransactions.get(key);
    if (!tx) return;
    clearTimeout(tx.timer);
    clearTimeout(tx.deadline);
    this.clientTransactions.delete(key);
  }

  private handleResponse(response: SipMessage): void {
    const key = transactionKey(response);
    const tx = this.clientTransactions.get(key);
    if (!tx) {
      // A retransmitted 2xx to our INVITE: the ACK got lost, send it again.
      const dialog = this.dialogs.get(header(response, "Call-ID")!);
      if (dialog && response.status < 300 && parseCSeq(header(response, "CSeq")!).method === "INVITE") this.ackFor(dialog, response);
      return;
    }
    if (response.status < 200) {
      tx.gotProvisional = true;
      clearTimeout(tx.timer);
      tx.onProvisional?.(response);
      return;
    }
    this.endClientTransaction(key);
    tx.resolve(response);
  }

  /**
   * Places a call through Kamailio: INVITE with our SDP offer; resolves with the final
   * answer and, for 2xx, the confirmed dialog (the ACK is sent here). `cancel` ends it early.
   */
  invite(p: { requestUri: string; from: string; to: string; sdp: string; headers?: SipHeader[]; callId?: string }): {
    callId: string;
    result: Promise<OutgoingResult>;
    cancel: () => void;
  } {
    const callId = p.callId ?? `${randomToken(16)}@wa-media-agent`;
    const fromTag = randomToken(8);
    const cseq = 1 + Math.floor(Math.random() * 1000);
    const request = this.request("INVITE", p.requestUri, {
      from: `${p.from};tag=${fromTag}`,
      to: p.to,
      callId,
      cseq,
      extra: [{ name: "Contact", value: this.contact }, { name: "Allow", value: ALLOW }, ...(p.headers ?? [])],
      body: p.sdp,
    });
    let provisional = false;
    let cancelRequested = false;
    const sendCancel = () => {
      const cancel: SipMessage = {
        ...request,
        method: "CANCEL",
        body: "",
        headers: request.headers
          .filter((h) => ["Via", "Max-Forwards", "Route", "From", "To", "Call-ID", "User-Agent"].includes(h.name))
          .concat([{ name: "CSeq", value: `${cseq} CANCEL` }]),
      };
      void this.sendRequest(cancel);
    };
    const result = this.sendRequest(request, () => {
      provisional = true;
      if (cancelRequested) sendCancel();
    }).then((response): OutgoingResult => {
      const out: OutgoingResult = { status: response.status, reason: response.reason };
      if (response.status >= 300) {
        if (response.status !== 408 || header(response, "Via")) this.ackNon2xx(request, response);
        return out;
      }
      const to = parseNameAddr(header(response, "To")!);
      const dialog: Dialog = {
        callId,
        localTag: fromTag,
        remoteTag: to.params.tag ?? "",
        localUri: p.from,
        remoteUri: p.to,
        remoteTarget: parseNameAddr(header(response, "Contact") ?? header(response, "To")!).uri,
        routeSet: headerValues(response, "Record-Route").reverse(),
        localSeq: cseq,
        direction: "outbound",
      };
      this.dialogs.set(callId, dialog);
      this.ackFor(dialog, response);
      out.dialog = dialog;
      out.answerSdp = response.body;
      if (cancelRequested) void this.bye(callId);
      return out;
    });
    return {
      callId,
      result,
      cancel: () => {
        if (cancelRequested) return;
        cancelRequested = true;
        if (provisional) sendCancel();
      },
    };
  }

  /** ACK for a 2xx: its own transaction, along the route set (RFC 3261 §13.2.2.4). */
  private ackFor(dialog: Dialog, response: SipMessage): void {
    const { seq } = parseCSeq(header(response, "CSeq")!);
    const ack = this.request("ACK", dialog.remoteTarget, {
      from: `${dialog.localUri};tag=${dialog.localTag}`,
      to: `${dialog.remoteUri};tag=${dialog.remoteTag}`,
      callId: dialog.callId,
      cseq: seq,
      routes: dialog.routeSet,
    });
    this.transport.send(ack, this.nextHop(ack));
  }

  /** ACK for a non-2xx final answer: same branch as the INVITE (RFC 3261 §17.1.1.3). */
  private ackNon2xx(invite: SipMessage, response: SipMessage): void {
    const headers = invite.headers
      .filter((h) => ["Via", "Max-Forwards", "Route", "From", "Call-ID"].includes(h.name))
      .concat([{ name: "To", value: header(response, "To")! }, { name: "CSeq", value: `${parseCSeq(header(invite, "CSeq")!).seq} ACK` }]);
    this.transport.send({ ...invite, method: "ACK", headers, body: "" }, this.nextHop(invite));
  }

  /** Stops all timers (agent shutdown). */
  close(): void {
    for (const tx of this.serverTransactions.values()) clearTimeout(tx.expires);
    for (const p of this.pendingInvites.values()) {
      clearTimeout(p.retransmit);
      clearTimeout(p.giveUp);
    }
    for (const key of [...this.clientTransactions.keys()]) this.endClientTransaction(key);
  }
}

/** Transactions match on the top Via branch plus the CSeq method (ACK/CANCEL map to INVITE). */
function transactionKey(msg: SipMessage, method?: string): string {
  const via = header(msg, "Via") ?? "";
  const branch = /;\s*branch=([^;,\s]+)/i.exec(via)?.[1] ?? via;
  return `${branch}|${method ?? parseCSeq(header(msg, "CSeq")!).method}`;
}

function timeoutResponse(request: SipMessage): SipMessage {
  return { kind: "response", method: "", uri: "", status: 408, reason: "Request Timeout (no answer from Kamailio)", headers: [], body: request.body && "" };
}

export function randomToken(bytes: number): string {
  return randomBytes(bytes).toString("hex");
}
