/**
 * SIP messages (RFC 3261 §7): a strict parser, header helpers, response building and
 * serialisation. Malformed input throws SipParseError, whose message names the problem in one
 * short line (it is logged and becomes the reason phrase of a 400).
 *
 * Two levels of strictness. parseSipMessage checks the framing: start line, header lines and
 * the mandatory headers. It leaves CSeq, Via, Max-Forwards, Content-Length and the Request-URI
 * to its caller, because the KSR double hands such messages to the routing so that it can model
 * Kamailio's sanity_check and maxfwd answering them. parseSipDatagram is what a user agent
 * reads off the wire: it also frames the body by Content-Length and checks those headers.
 */

export class SipParseError extends Error {
  override name = "SipParseError";
}

export interface SipHeader {
  name: string;
  value: string;
}

export interface SipMessage {
  kind: "request" | "response";
  method: string;
  uri: string;
  status: number;
  reason: string;
  headers: SipHeader[];
  body: string;
}

const COMPACT: Record<string, string> = {
  i: "Call-ID", f: "From", t: "To", v: "Via", m: "Contact", l: "Content-Length", c: "Content-Type",
  k: "Supported", s: "Subject", e: "Content-Encoding", o: "Event", u: "Allow-Events", r: "Refer-To",
  b: "Referred-By", x: "Session-Expires",
};
const TOKEN_CHARS = "A-Za-z0-9\\-.!%*_+`'~";
const TOKEN = new RegExp(`^[${TOKEN_CHARS}]+$`);
/** The empty line that ends the headers; LF-only senders are tolerated. */
const EMPTY_LINE = /\r?\n\r?\n/;
/** Control characters never allowed in the start line or headers (HTAB is folding whitespace). */
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;

export function parseSipMessage(text: string): SipMessage {
  const end = EMPTY_LINE.exec(text);
  if (!end) throw new SipParseError("no empty line after the headers");
  return parseHead(text.slice(0, end.index), text.slice(end.index + end[0].length));
}

/**
 * One UDP datagram, strictly: the body is measured in bytes and cut to Content-Length
 * (RFC 3261 §18.3), and the headers a transaction layer relies on are checked.
 */
export function parseSipDatagram(datagram: Buffer): SipMessage {
  // latin1 maps bytes one to one, so the match index is a byte offset.
  const end = EMPTY_LINE.exec(datagram.toString("latin1"));
  if (!end) throw new SipParseError("no empty line after the headers");
  const msg = parseHead(datagram.subarray(0, end.index).toString("utf8"), "");
  const body = datagram.subarray(end.index + end[0].length);
  msg.body = frameBody(body, header(msg, "Content-Length")).toString("utf8");
  checkTransactionHeaders(msg);
  return msg;
}

function parseHead(head: string, body: string): SipMessage {
  const [startLine, ...lines] = head.split(/\r?\n/);
  for (const line of [startLine, ...lines]) {
    if (CONTROL.test(line)) throw new SipParseError(`control character in ${excerpt(line)}`);
  }
  const msg: SipMessage = { kind: "request", method: "", uri: "", status: 0, reason: "", headers: [], body };
  const response = startLine.match(/^SIP\/2\.0 ([1-6]\d\d) (.*)$/);
  const request = startLine.match(new RegExp(`^([${TOKEN_CHARS}]+) (\\S+) SIP/2\\.0$`));
  if (response) {
    msg.kind = "response";
    msg.status = parseInt(response[1], 10);
    msg.reason = response[2];
  } else if (request) {
    msg.method = request[1];
    msg.uri = request[2];
  } else {
    throw new SipParseError(`bad start line ${excerpt(startLine)}`);
  }

  for (const line of lines) {
    if (/^[ \t]/.test(line)) {
      const last = msg.headers[msg.headers.length - 1];
      if (!last) throw new SipParseError("continuation line before any header");
      last.value += ` ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon).trim() : "";
    if (!TOKEN.test(name)) throw new SipParseError(`bad header line ${excerpt(line)}`);
    msg.headers.push({ name: canonicalName(name), value: line.slice(colon + 1).trim() });
  }
  for (const required of ["Via", "From", "To", "Call-ID", "CSeq"]) {
    if (!header(msg, required)) throw new SipParseError(`missing ${required}`);
  }
  return msg;
}

function canonicalName(name: string): string {
  return COMPACT[name.toLowerCase()] ?? name;
}

/** Without Content-Length a datagram's body is the rest of the datagram (RFC 3261 §18.3). */
function frameBody(body: Buffer, contentLength: string | undefined): Buffer {
  if (contentLength === undefined) return body;
  if (!/^\d{1,10}$/.test(contentLength)) throw new SipParseError(`bad Content-Length ${excerpt(contentLength)}`);
  const length = Number(contentLength);
  if (length > body.length) throw new SipParseError(`Content-Length ${length} but ${body.length} body bytes`);
  return body.subarray(0, length);
}

function checkTransactionHeaders(msg: SipMessage): void {
  const cseq = parseCSeq(header(msg, "CSeq")!);
  const vias = headerValues(msg, "Via").map(parseVia); // every hop's Via must parse, not just ours
  const maxForwards = header(msg, "Max-Forwards");
  if (maxForwards !== undefined && !/^\d{1,10}$/.test(maxForwards)) {
    throw new SipParseError(`bad Max-Forwards ${excerpt(maxForwards)}`);
  }
  if (msg.kind === "response") return;
  if (cseq.method !== msg.method) throw new SipParseError(`CSeq method ${cseq.method} is not ${msg.method}`);
  // Transactions are matched on the branch; the RFC 3261 magic cookie is not insisted on.
  if (!vias[0]?.params.branch) throw new SipParseError("Via without branch");
  try {
    parseUri(msg.uri);
  } catch {
    throw new SipParseError(`bad Request-URI ${excerpt(msg.uri)}`);
  }
}

/** Offending text quoted for an error message: short, one line, only printable ASCII. */
function excerpt(text: string): string {
  const printable = text.replace(/[^\x20-\x7e]/g, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
  return `'${printable.length > 40 ? `${printable.slice(0, 40)}...` : printable}'`;
}

/** All values of a header, comma-separated values split (outside quotes and <>). */
export function headerValues(msg: SipMessage, name: string): string[] {
  return msg.headers
    .filter((h) => h.name.toLowerCase() === name.toLowerCase())
    .flatMap((h) => splitCommas(h.value));
}

/** The first header line's whole value, as Kamailio's $hdr(name) gives it. */
export function header(msg: SipMessage, name: string): string | undefined {
  return msg.headers.find((h) => h.name.toLowerCase() === name.toLowerCase())?.value;
}

function splitCommas(value: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (ch === '"' && value[i - 1] !== "\\") quoted = !quoted;
    else if (!quoted && ch === "<") depth++;
    else if (!quoted && ch === ">") depth--;
    else if (!quoted && depth === 0 && ch === ",") {
      out.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(value.slice(start).trim());
  return out.filter(Boolean);
}

/** `;name=value;flag` into { name: "value", flag: "" }, names lower-cased. */
function parseParams(text: string): Record<string, string> {
  const params: Record<string, string> = {};
  for (const p of text.split(";").map((s) => s.trim()).filter(Boolean)) {
    const eq = p.indexOf("=");
    const name = eq < 0 ? p : p.slice(0, eq).trim();
    params[name.toLowerCase()] = eq < 0 ? "" : p.slice(eq + 1).trim();
  }
  return params;
}

function formatParams(params: Record<string, string>): string {
  return Object.entries(params)
    .map(([name, value]) => (value === "" ? `;${name}` : `;${name}=${value}`))
    .join("");
}

export interface CSeq {
  seq: number;
  method: string;
}

export function parseCSeq(value: string): CSeq {
  const m = value.trim().match(new RegExp(`^(\\d{1,10})\\s+([${TOKEN_CHARS}]+)$`));
  if (!m || Number(m[1]) >= 2 ** 31) throw new SipParseError(`bad CSeq ${excerpt(value)}`);
  return { seq: Number(m[1]), method: m[2] };
}

export interface Via {
  transport: string;
  host: string;
  port: number | undefined;
  params: Record<string, string>;
}

/** One Via value: `SIP/2.0/UDP host[:port];params` (RFC 3261 §20.42, LWS around "/" allowed). */
export function parseVia(value: string): Via {
  const m = value.trim().match(
    new RegExp(`^SIP\\s*/\\s*2\\.0\\s*/\\s*([${TOKEN_CHARS}]+)\\s+(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9\\-.]+)(?:\\s*:\\s*(\\d{1,5}))?\\s*(;.*)?$`),
  );
  const port = m?.[3] === undefined ? undefined : Number(m[3]);
  if (!m || (port !== undefined && port > 65535)) throw new SipParseError(`bad Via ${excerpt(value)}`);
  return { transport: m[1].toUpperCase(), host: m[2], port, params: parseParams(m[4] ?? "") };
}

export interface SipUri {
  scheme: string;
  user: string;
  host: string;
  port: string;
  params: Record<string, string>;
}

export function parseUri(uri: string): SipUri {
  const m = uri.match(/^(sips?|tel):(?:([^@]*)@)?(\[[^\]]+\]|[^:;?]+)(?::(\d+))?((?:;[^?]*)?)(\?.*)?$/i);
  if (!m) throw new SipParseError(`bad URI ${excerpt(uri)}`);
  return { scheme: m[1].toLowerCase(), user: m[2] ?? "", host: m[3], port: m[4] ?? "", params: parseParams(m[5] ?? "") };
}

export interface NameAddr {
  /** As written between the quotes (escapes kept), or the unquoted display-name tokens. */
  display: string;
  uri: string;
  params: Record<string, string>;
}

/** `"Name" <sip:…>;tag=x` or `sip:…;tag=x` */
export function parseNameAddr(value: string): NameAddr {
  const angled = value.match(/^\s*(?:"((?:[^"\\]|\\.)*)"|([^<"]*?))\s*<([^>]+)>(.*)$/);
  const uri = angled ? angled[3] : value.split(";")[0].trim();
  const rest = angled ? angled[4] : value.slice(value.indexOf(";") >= 0 ? value.indexOf(";") : value.length);
  return { display: angled ? (angled[1] ?? angled[2] ?? "").trim() : "", uri, params: parseParams(rest) };
}

/** `"Name" <uri>;params`, always with angle brackets so URI parameters stay in the URI. */
export function formatNameAddr(na: NameAddr): string {
  // Escape pairs from parsing are kept; a bare quote or backslash is escaped.
  const display = na.display.replace(/[\r\n]/g, " ").replace(/\\[\s\S]|["\\]/g, (s) => (s.length === 2 ? s : `\\${s}`));
  return `${display ? `"${display}" ` : ""}<${na.uri}>${formatParams(na.params)}`;
}

/** The message as it goes on the wire: CRLF, header order kept, Content-Length recomputed. */
export function serializeSipMessage(msg: SipMessage): string {
  const startLine = msg.kind === "request" ? `${msg.method} ${msg.uri} SIP/2.0` : `SIP/2.0 ${msg.status} ${msg.reason}`;
  const contentLength = String(Buffer.byteLength(msg.body));
  const isContentLength = (h: SipHeader) => canonicalName(h.name).toLowerCase() === "content-length";
  const headers = msg.headers.map((h) => (isContentLength(h) ? { name: h.name, value: contentLength } : h));
  if (!headers.some(isContentLength)) headers.push({ name: "Content-Length", value: contentLength });
  return [startLine, ...headers.map((h) => `${h.name}: ${h.value}`), "", msg.body].join("\r\n");
}

export interface ResponseOptions {
  /** Added to To when the request's To has no tag yet. */
  toTag?: string;
  /** Appended after the copied headers. */
  headers?: SipHeader[];
  body?: string;
  contentType?: string;
}

/**
 * A response to a request (RFC 3261 §8.2.6): Via (all, in order), From, To, Call-ID and CSeq
 * copied, and Record-Route for answers to INVITE that set up a dialog (101–299, §12.1.1).
 */
export function buildResponse(request: SipMessage, status: number, reason: string, opts: ResponseOptions = {}): SipMessage {
  const all = (name: string) => request.headers.filter((h) => h.name.toLowerCase() === name.toLowerCase());
  const one = (name: string): SipHeader => ({ name, value: header(request, name) ?? "" });
  const establishesDialog = request.method === "INVITE" && status > 100 && status < 300;
  const headers: SipHeader[] = [
    ...all("Via"),
    ...(establishesDialog ? all("Record-Route") : []),
    one("From"),
    { name: "To", value: withTag(header(request, "To") ?? "", opts.toTag) },
    one("Call-ID"),
    one("CSeq"),
    ...(opts.headers ?? []),
    ...(opts.contentType ? [{ name: "Content-Type", value: opts.contentType }] : []),
  ];
  return { kind: "response", method: "", uri: "", status, reason, headers, body: opts.body ?? "" };
}

function withTag(to: string, tag: string | undefined): string {
  return tag === undefined || parseNameAddr(to).params.tag !== undefined ? to : `${to};tag=${tag}`;
}
