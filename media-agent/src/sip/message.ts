/**
 * A small strict SIP message parser (RFC 3261 §7): enough for the KSR double to answer
 * pseudo-variables from real message text. Malformed input throws SipParseError.
 */

export class SipParseError extends Error {}

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
const TOKEN = /^[A-Za-z0-9\-.!%*_+`'~]+$/;

export function parseSipMessage(text: string): SipMessage {
  const normalised = text.replace(/\r?\n/g, "\r\n");
  const split = normalised.indexOf("\r\n\r\n");
  if (split < 0) throw new SipParseError("no empty line after the headers");
  const [startLine, ...lines] = normalised.slice(0, split).split("\r\n");
  const body = normalised.slice(split + 4);

  const msg: SipMessage = { kind: "request", method: "", uri: "", status: 0, reason: "", headers: [], body };
  const response = startLine.match(/^SIP\/2\.0 ([1-6]\d\d) (.*)$/);
  const request = startLine.match(/^([A-Za-z0-9\-.!%*_+`'~]+) (\S+) SIP\/2\.0$/);
  if (response) {
    msg.kind = "response";
    msg.status = parseInt(response[1], 10);
    msg.reason = response[2];
  } else if (request) {
    msg.method = request[1];
    msg.uri = request[2];
  } else {
    throw new SipParseError(`bad start line '${startLine}'`);
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
    if (!TOKEN.test(name)) throw new SipParseError(`bad header line '${line}'`);
    msg.headers.push({ name: COMPACT[name.toLowerCase()] ?? name, value: line.slice(colon + 1).trim() });
  }
  for (const required of ["Via", "From", "To", "Call-ID", "CSeq"]) {
    if (!header(msg, required)) throw new SipParseError(`missing ${required}`);
  }
  return msg;
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

export interface SipUri {
  scheme: string;
  user: string;
  host: string;
  port: string;
  params: Record<string, string>;
}

export function parseUri(uri: string): SipUri {
  const m = uri.match(/^(sips?|tel):(?:([^@]*)@)?(\[[^\]]+\]|[^:;?]+)(?::(\d+))?((?:;[^?]*)?)(\?.*)?$/i);
  if (!m) throw new SipParseError(`bad URI '${uri}'`);
  const params: Record<string, string> = {};
  for (const p of (m[5] ?? "").split(";").filter(Boolean)) {
    const [k, v = ""] = p.split("=");
    params[k.toLowerCase()] = v;
  }
  return { scheme: m[1].toLowerCase(), user: m[2] ?? "", host: m[3], port: m[4] ?? "", params };
}

export interface NameAddr {
  display: string;
  uri: string;
  params: Record<string, string>;
}

/** `"Name" <sip:…>;tag=x` or `sip:…;tag=x` */
export function parseNameAddr(value: string): NameAddr {
  const angled = value.match(/^\s*(?:"((?:[^"\\]|\\.)*)"|([^<"]*?))\s*<([^>]+)>(.*)$/);
  const uri = angled ? angled[3] : value.split(";")[0].trim();
  const rest = angled ? angled[4] : value.slice(value.indexOf(";") >= 0 ? value.indexOf(";") : value.length);
  const params: Record<string, string> = {};
  for (const p of rest.split(";").map((s) => s.trim()).filter(Boolean)) {
    const [k, v = ""] = p.split("=");
    params[k.toLowerCase()] = v;
  }
  return { display: angled ? (angled[1] ?? angled[2] ?? "").trim() : "", uri, params };
}
