/**
 * SDP (RFC 4566) as the agent needs it: v/o/s/c/t/m and a= lines parsed strictly, other line
 * types (b=, i=, u=, e=, p=, r=, z=, k=) skipped, since nothing in offer/answer here uses them.
 * SdpParseError messages are one short line: they become part of a 400 reason phrase.
 */

export class SdpParseError extends Error {
  override name = "SdpParseError";
}

export interface SdpAttribute {
  name: string;
  value?: string;
}

export interface SdpMedia {
  type: string;
  port: number;
  portCount?: number;
  proto: string;
  formats: string[];
  /** The media-level c= address, when there is one. */
  connection?: string;
  attributes: SdpAttribute[];
}

export interface SdpOrigin {
  username: string;
  sessionId: string;
  sessionVersion: string;
  netType: string;
  addrType: string;
  address: string;
}

export interface SessionDescription {
  version: 0;
  origin: SdpOrigin;
  sessionName: string;
  /** The session-level c= address, when there is one. */
  connection?: string;
  /** The first t= line's value, e.g. "0 0". */
  timing: string;
  attributes: SdpAttribute[];
  media: SdpMedia[];
}

const TOKEN = /^[A-Za-z0-9\-.!%*_+`'~]+$/;

export function parseSdp(text: string): SessionDescription {
  const lines = text.split(/\r?\n/).filter((line) => line !== "").map(splitLine);
  const [v, o, s, ...rest] = lines;
  if (v?.type !== "v" || v.value !== "0") throw new SdpParseError("first line must be v=0");
  if (o?.type !== "o") throw new SdpParseError("o= must follow v=");
  if (s?.type !== "s") throw new SdpParseError("s= must follow o=");

  const sdp: Omit<SessionDescription, "timing"> & { timing?: string } = {
    version: 0, origin: parseOrigin(o.value), sessionName: s.value, attributes: [], media: [],
  };
  let media: SdpMedia | undefined;
  for (const { type, value } of rest) {
    switch (type) {
      case "c": {
        const level = media ?? sdp;
        if (level.connection !== undefined) throw new SdpParseError("more than one c= line");
        level.connection = parseConnection(value);
        break;
      }
      case "t":
        if (media) throw new SdpParseError("t= inside a media section");
        if (!/^\d+ \d+$/.test(value)) throw new SdpParseError(`bad t= ${excerpt(value)}`);
        sdp.timing ??= value;
        break;
      case "m":
        media = parseMediaLine(value);
        sdp.media.push(media);
        break;
      case "a":
        (media ?? sdp).attributes.push(parseAttribute(value));
        break;
      case "v":
      case "o":
      case "s":
        throw new SdpParseError(`unexpected ${type}= line`);
      default:
        break; // other line types carry nothing offer/answer needs here
    }
  }
  if (sdp.timing === undefined) throw new SdpParseError("missing t=");
  return { ...sdp, timing: sdp.timing };
}

export function serializeSdp(d: SessionDescription): string {
  const o = d.origin;
  const lines = [
    "v=0",
    `o=${o.username} ${o.sessionId} ${o.sessionVersion} ${o.netType} ${o.addrType} ${o.address}`,
    `s=${d.sessionName}`,
    ...(d.connection === undefined ? [] : [connectionLine(d.connection)]),
    `t=${d.timing}`,
    ...d.attributes.map(attributeLine),
  ];
  for (const m of d.media) {
    const port = m.portCount === undefined ? `${m.port}` : `${m.port}/${m.portCount}`;
    lines.push(`m=${m.type} ${port} ${m.proto} ${m.formats.join(" ")}`);
    if (m.connection !== undefined) lines.push(connectionLine(m.connection));
    lines.push(...m.attributes.map(attributeLine));
  }
  return `${lines.join("\r\n")}\r\n`;
}

/** All values of an attribute (a flag attribute gives ""). */
export function attributeValues(attributes: SdpAttribute[], name: string): string[] {
  return attributes.filter((a) => a.name === name).map((a) => a.value ?? "");
}

function splitLine(line: string): { type: string; value: string } {
  const m = line.match(/^([a-z])=(.*)$/);
  if (!m) throw new SdpParseError(`bad line ${excerpt(line)}`);
  return { type: m[1], value: m[2].trim() };
}

function parseOrigin(value: string): SdpOrigin {
  const fields = value.split(/ +/);
  if (fields.length !== 6 || !/^\d+$/.test(fields[1]) || !/^\d+$/.test(fields[2])) {
    throw new SdpParseError(`bad o= ${excerpt(value)}`);
  }
  const [username, sessionId, sessionVersion, netType, addrType, address] = fields;
  return { username, sessionId, sessionVersion, netType, addrType, address };
}

function parseConnection(value: string): string {
  const m = value.match(/^IN +IP[46] +(\S+)$/);
  if (!m) throw new SdpParseError(`bad c= ${excerpt(value)}`);
  return m[1];
}

function connectionLine(address: string): string {
  return `c=IN ${address.includes(":") ? "IP6" : "IP4"} ${address}`;
}

function parseMediaLine(value: string): SdpMedia {
  const [type, ports, proto, ...formats] = value.split(/ +/);
  const m = (ports ?? "").match(/^(\d{1,5})(?:\/(\d+))?$/);
  if (!TOKEN.test(type) || !m || Number(m[1]) > 65535 || !proto || formats.length === 0) {
    throw new SdpParseError(`bad m= ${excerpt(value)}`);
  }
  const media: SdpMedia = { type, port: Number(m[1]), proto, formats, attributes: [] };
  if (m[2] !== undefined) media.portCount = Number(m[2]);
  return media;
}

function parseAttribute(value: string): SdpAttribute {
  const colon = value.indexOf(":");
  const name = colon < 0 ? value : value.slice(0, colon);
  if (!TOKEN.test(name)) throw new SdpParseError(`bad a= ${excerpt(value)}`);
  return colon < 0 ? { name } : { name, value: value.slice(colon + 1) };
}

function attributeLine(a: SdpAttribute): string {
  return a.value === undefined ? `a=${a.name}` : `a=${a.name}:${a.value}`;
}

/** Offending text quoted for an error message: short, one line, only printable ASCII. */
function excerpt(text: string): string {
  const short = text.length > 40 ? `${text.slice(0, 40)}...` : text;
  return `'${short.replace(/[^\x20-\x7e]/g, "?")}'`;
}
