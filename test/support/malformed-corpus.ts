/**
 * A deterministic (seeded) corpus of malformed SIP messages, mutated from the real message
 * texts in test/fixtures/sip: truncations, broken start lines, wrong/huge/negative/missing
 * Content-Length, folding garbage, NUL and invalid UTF-8 bytes, duplicated and oversized
 * headers, absurd CSeq/Max-Forwards/Via, random byte flips, partial messages and more.
 *
 * The same seed always gives the same messages, so a crash count measured with one seed can be
 * compared before and after a configuration change.
 */
import { sipFixture } from "./fixtures.js";

export interface MalformedCase {
  /** The mutation that made it (for figures and for finding a message again). */
  kind: string;
  /** The bytes to send. */
  data: Buffer;
  /** Sent as part of a message, the sender should stop after it and close (a partial message). */
  partial?: boolean;
}

/** mulberry32: small, fast, deterministic. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BASES = ["meta-invite", "meta-options", "meta-bye", "kamailio-invite", "sipp-invite", "baresip-invite"];

type Rng = () => number;
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const int = (r: Rng, min: number, max: number): number => min + Math.floor(r() * (max - min + 1));

function splitMessage(text: string): { start: string; headers: string[]; body: string } {
  const i = text.indexOf("\r\n\r\n");
  const head = i < 0 ? text : text.slice(0, i);
  const body = i < 0 ? "" : text.slice(i + 4);
  const [start, ...headers] = head.split("\r\n");
  return { start: start!, headers, body };
}

function join(start: string, headers: string[], body: string): string {
  return [start, ...headers].join("\r\n") + "\r\n\r\n" + body;
}

function setHeader(headers: string[], name: string, value: string): string[] {
  const re = new RegExp(`^${name}\\s*:`, "i");
  let done = false;
  const out = headers.map((h) => {
    if (!done && re.test(h)) {
      done = true;
      return `${name}: ${value}`;
    }
    return h;
  });
  if (!done) out.push(`${name}: ${value}`);
  return out;
}

function dropHeader(headers: string[], name: string): string[] {
  const re = new RegExp(`^${name}\\s*:`, "i");
  return headers.filter((h) => !re.test(h));
}

/** Each mutator turns a real message into a malformed one (text or bytes). */
const MUTATORS: Record<string, (r: Rng, text: string) => string | Buffer | MalformedCase> = {
  truncate(r, text) {
    return text.slice(0, int(r, 1, text.length - 1));
  },
  "truncate-in-headers"(r, text) {
    const end = text.indexOf("\r\n\r\n");
    return text.slice(0, int(r, 1, Math.max(1, end)));
  },
  "bad-start-line"(r, text) {
    const { start, headers, body } = splitMessage(text);
    const bad = pick(r, [
      "INVITE",
      "INVITE sip:x SIP/3.0",
      "INVITE  SIP/2.0",
      " INVITE sip:a@b SIP/2.0",
      "SIP/2.0 abc Weird",
      "SIP/2.0 99999999999 Big",
      "SIP/2.0 -1 Negative",
      "\x00NVITE sip:a@b SIP/2.0",
      "INV\tITE sip:a@b SIP/2.0",
      "GET / HTTP/1.1",
      "PRI * HTTP/2.0",
      start.replace("SIP/2.0", "SIP/2.O"),
      start.replace(" ", ""),
      start + " extra tokens",
      "x".repeat(int(r, 1000, 9000)),
      "INVITE sip:" + "%".repeat(int(r, 10, 3000)) + " SIP/2.0",
      "INVITE <sip:a@b> SIP/2.0",
      "",
    ]);
    return join(bad, headers, body);
  },
  "content-length"(r, text) {
    const { start, headers, body } = splitMessage(text);
    const cl = pick(r, ["-1", "-99999", "99999999999999999999", "4294967296", "2147483648", "65536", "1e3", "0x10", "", "abc", " 12 12", String(body.length + int(r, 1, 5000)), String(Math.max(0, body.length - int(r, 1, 200)))]);
    return join(start, setHeader(headers, "Content-Length", cl), body);
  },
  "no-content-length"(_r, text) {
    const { start, headers, body } = splitMessage(text);
    return join(start, dropHeader(headers, "Content-Length"), body);
  },
  "duplicate-content-length"(r, text) {
    const { start, headers, body } = splitMessage(text);
    return join(start, [...headers, `Content-Length: ${int(r, 0, 100000)}`, `l: ${int(r, 0, 5)}`], body);
  },
  folding(r, text) {
    const { start, headers, body } = splitMessage(text);
    const i = int(r, 0, headers.length - 1);
    const garbage = pick(r, [" \r\n \r\n \r\n", "\r\n\t\t\t", "\r\n :::", "\r\n\r\n ", "\n \n \n", "\r\n " + "a".repeat(int(r, 1, 4000))]);
    const out = [...headers];
    out[i] = out[i] + garbage;
    return join(start, out, body);
  },
  "header-without-colon"(r, text) {
    const { start, headers, body } = splitMessage(text);
    const out = [...headers];
    out.splice(int(r, 0, out.length), 0, pick(r, ["NoColonHere", ":", "::::", ": value", "Via", "\x01\x02\x03", "X-\x7f: y"]));
    return join(start, out, body);
  },
  "nul-bytes"(r, text) {
    const buf = Buffer.from(text, "latin1");
    for (let n = int(r, 1, 8); n > 0; n--) buf[int(r, 0, buf.length - 1)] = 0;
    return buf;
  },
  "invalid-utf8"(r, text) {
    const { start, headers, body } = splitMessage(text);
    const bad = pick(r, ["\xc3\x28", "\xa0\xa1", "\xe2\x28\xa1", "\xf0\x28\x8c\xbc", "\xff\xfe\xfd", "\xed\xa0\x80", "\xc0\xaf"]);
    const out = [...headers];
    const i = int(r, 0, out.length - 1);
    out[i] = out[i] + bad;
    const s = pick(r, [start, start.replace("sip:", "sip:" + bad)]);
    return Buffer.from(join(s, out, body), "latin1");
  },
  "duplicate-headers"(r, text) {
    const { start, headers, body } = splitMessage(text);
    const h = pick(r, headers);
    const out = [...headers];
    for (let n = int(r, 2, 200); n > 0; n--) out.push(h);
    return join(start, out, body);
  },
  "absurd-cseq"(r, text) {
    const { start, headers, body } = splitMessage(text);
    const method = start.split(" ")[0] ?? "INVITE";
    const v = pick(r, ["4294967296 " + method, "-1 " + method, "99999999999999999999 " + method, "1", "abc " + method, "1 " + "X".repeat(int(r, 100, 5000)), "1 OPTIONS", "", "1  "]);
    return join(start, setHeader(headers, "CSeq", v), body);
  },
  "absurd-max-forwards"(r, text) {
    const { start, headers, body } = splitMessage(text);
    const v = pick(r, ["-1", "256", "99999999999", "0", "abc", "", "70 70", "0x45"]);
    return join(start, setHeader(headers, "Max-Forwards", v), body);
  },
  "absurd-via"(r, text) {
    const { start, headers, body } = splitMessage(text);
    const v = pick(r, [
      "SIP/2.0/TLS",
      "SIP/2.0/XYZ 1.2.3.4",
      "SIP/2.0/UDP 999.999.999.999:99999;branch=z9hG4bK1",
      "SIP/2.0/TLS [::1:5061;branch=z9hG4bK1",
      "SIP/2.0/TLS 1.2.3.4:5061;branch=" + "z".repeat(int(r, 100, 6000)),
      "SIP/2.0/TLS 1.2.3.4;rport=abc;received=notanip",
      "SIP/2.0/TLS 1.2.3.4" + ";x".repeat(int(r, 100, 2000)),
      ",,,,,,",
      "",
    ]);
    return join(start, setHeader(headers, "Via", v), body);
  },
  "many-vias"(r, text) {
    const { start, headers, body } = splitMessage(text);
    const out = [...headers];
    for (let n = int(r, 50, 400); n > 0; n--) out.unshift(`Via: SIP/2.0/TLS 10.${n & 255}.0.1:5061;branch=z9hG4bK${n}`);
    return join(start, out, body);
  },
  "oversized-header"(r, text) {
    const { start, headers, body } = splitMessage(text);
    return join(start, [...headers, `X-Big: ${"A".repeat(int(r, 8000, 70000))}`], body);
  },
  "oversized-body"(r, text) {
    const { start, headers } = splitMessage(text);
    const body = "v=0\r\n" + "a=x\r\n".repeat(int(r, 2000, 16000));
    return join(start, setHeader(headers, "Content-Length", String(body.length)), body);
  },
  "byte-flips"(r, text) {
    const buf = Buffer.from(text, "latin1");
    for (let n = int(r, 1, 40); n > 0; n--) buf[int(r, 0, buf.length - 1)] = int(r, 0, 255);
    return buf;
  },
  "bad-uri"(r, text) {
    const { start, headers, body } = splitMessage(text);
    const uri = pick(r, ["sip:", "sip:@", "sip:a@b:99999", "sips:a@[::1", "tel:", "sip:a@b;transport=" + "x".repeat(2000), "<>", "sip:a@b?x=" + "%0".repeat(500)]);
    const parts = start.split(" ");
    if (parts.length >= 3 && !start.startsWith("SIP/")) parts[1] = uri;
    return join(parts.join(" "), setHeader(headers, "To", `<${uri}>`), body);
  },
  "bad-from-to"(r, text) {
    const { start, headers, body } = splitMessage(text);
    const v = pick(r, ["<sip:a@b", "\"unterminated <sip:a@b>", "<sip:a@b>;tag=", "<sip:a@b>;tag=" + "t".repeat(3000), ";;;;", ""]);
    return join(start, setHeader(headers, pick(r, ["From", "To"]), v), body);
  },
  "no-call-id"(r, text) {
    const { start, headers, body } = splitMessage(text);
    return join(start, dropHeader(dropHeader(headers, "Call-ID"), pick(r, ["CSeq", "Via", "From", "To", "Max-Forwards"])), body);
  },
  "bad-sdp"(r, text) {
    const { start, headers } = splitMessage(text);
    const body = pick(r, [
      "v=0\r\nm=audio 99999999 RTP/AVP 0\r\n",
      "v=0\r\nc=IN IP4\r\nm=audio -1 RTP/SAVP\r\n",
      "garbage\x00\xff\r\n",
      "v=0\r\n" + "m=audio 1 RTP/AVP 0\r\n".repeat(500),
      "v=0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + "A".repeat(5000) + "\r\n",
    ]);
    return join(start, setHeader(setHeader(headers, "Content-Type", "application/sdp"), "Content-Length", String(body.length)), body);
  },
  "lf-only"(r, text) {
    return text.replace(/\r\n/g, pick(r, ["\n", "\r", "\n\r"]));
  },
  "no-blank-line"(_r, text) {
    return splitMessage(text).start + "\r\n" + splitMessage(text).headers.join("\r\n");
  },
  "random-bytes"(r) {
    const buf = Buffer.alloc(int(r, 1, 3000));
    for (let i = 0; i < buf.length; i++) buf[i] = int(r, 0, 255);
    return buf;
  },
  "crlf-flood"(r) {
    return "\r\n".repeat(int(r, 1, 5000));
  },
  "partial-then-close"(r, text) {
    return { kind: "partial-then-close", data: Buffer.from(text.slice(0, int(r, 1, text.length - 1)), "latin1"), partial: true };
  },
  "body-longer-than-cl"(_r, text) {
    const { start, headers, body } = splitMessage(text);
    return join(start, setHeader(headers, "Content-Length", "0"), body + "INVITE sip:x SIP/2.0\r\n\r\n");
  },
};

export const MUTATION_KINDS = Object.keys(MUTATORS);

/**
 * `count` malformed messages built from the real fixtures; deterministic for a seed.
 * Mutations are applied once or stacked (two or three in a row) for some messages.
 */
export function malformedCorpus(count: number, seed = 1): MalformedCase[] {
  const r = seededRandom(seed);
  const bases = BASES.map((b) => sipFixture(b));
  const out: MalformedCase[] = [];
  for (let n = 0; n < count; n++) {
    let text = pick(r, bases);
    const rounds = r() < 0.8 ? 1 : int(r, 2, 3);
    let kind = "";
    let result: MalformedCase | undefined;
    for (let k = 0; k < rounds; k++) {
      const name = pick(r, MUTATION_KINDS);
      const m = MUTATORS[name]!(r, text);
      kind = kind ? `${kind}+${name}` : name;
      if (Buffer.isBuffer(m)) {
        result = { kind, data: m };
        text = m.toString("latin1");
      } else if (typeof m === "string") {
        result = { kind, data: Buffer.from(m, "latin1") };
        text = m;
      } else {
        result = { ...m, kind };
        break; // a partial message ends the stacking
      }
    }
    out.push(result!);
  }
  return out;
}

/** A valid request (from the fixtures) with a fresh Call-ID/branch, for "still answered" checks. */
export function validOptions(opts: { via: string; callId?: string }): Buffer {
  const callId = opts.callId ?? `alive-${Date.now()}-${Math.floor(Math.random() * 1e9)}`;
  const text = sipFixture("meta-options")
    .replace(/^Via: .*$/m, `Via: ${opts.via};branch=z9hG4bK-${callId};rport`)
    .replace(/^Call-ID: .*$/m, `Call-ID: ${callId}`);
  return Buffer.from(text, "latin1");
}
