/** RTP packets (RFC 3550 §5.1): strict parsing of what arrives, serialisation of what leaves. */

export interface RtpPacket {
  marker: boolean;
  payloadType: number;
  sequence: number;
  timestamp: number;
  ssrc: number;
  csrc: readonly number[];
  payload: Uint8Array;
}

export class RtpParseError extends Error {
  override name = "RtpParseError";
}

/** A packet with no CSRC list (every packet the agent sees) shares this one. */
const NO_CSRC: readonly number[] = Object.freeze([]);

// Both directions run for every packet of every call: the header is read and written byte by
// byte (no DataView, no CSRC array, a pooled Buffer) so that a packet leaves no garbage but
// its own bytes and the parsed header.
export function parseRtp(buf: Uint8Array): RtpPacket {
  if (buf.length < 12) throw new RtpParseError(`RTP packet of ${buf.length} bytes is shorter than its header`);
  const b0 = buf[0];
  if (b0 >> 6 !== 2) throw new RtpParseError(`RTP version ${b0 >> 6}, expected 2`);
  const csrcCount = b0 & 0x0f;
  let offset = 12 + 4 * csrcCount;
  if (buf.length < offset) throw new RtpParseError("RTP packet shorter than its CSRC list");
  let csrc = NO_CSRC;
  if (csrcCount > 0) {
    const list: number[] = [];
    for (let i = 0; i < csrcCount; i++) list.push(readUint32(buf, 12 + 4 * i));
    csrc = list;
  }
  if (b0 & 0x10) {
    if (buf.length < offset + 4) throw new RtpParseError("RTP header extension truncated");
    offset += 4 + 4 * ((buf[offset + 2] << 8) | buf[offset + 3]);
    if (buf.length < offset) throw new RtpParseError("RTP header extension longer than the packet");
  }
  let end = buf.length;
  if (b0 & 0x20) {
    const padding = buf[buf.length - 1];
    if (padding === 0 || offset + padding > buf.length) throw new RtpParseError(`bad RTP padding length ${padding}`);
    end -= padding;
  }
  return {
    marker: (buf[1] & 0x80) !== 0,
    payloadType: buf[1] & 0x7f,
    sequence: (buf[2] << 8) | buf[3],
    timestamp: readUint32(buf, 4),
    ssrc: readUint32(buf, 8),
    csrc,
    payload: buf.subarray(offset, end),
  };
}

function readUint32(buf: Uint8Array, at: number): number {
  return ((buf[at] << 24) | (buf[at + 1] << 16) | (buf[at + 2] << 8) | buf[at + 3]) >>> 0;
}

export function serializeRtp(p: Omit<RtpPacket, "csrc"> & { csrc?: readonly number[] }): Buffer {
  const csrc = p.csrc ?? NO_CSRC;
  const header = 12 + 4 * csrc.length;
  // allocUnsafe: carved from Node's shared pool, not an ArrayBuffer of its own; every byte is written below.
  const out = Buffer.allocUnsafe(header + p.payload.length);
  out[0] = 0x80 | csrc.length;
  out[1] = (p.marker ? 0x80 : 0) | (p.payloadType & 0x7f);
  out.writeUInt16BE(p.sequence & 0xffff, 2);
  out.writeUInt32BE(p.timestamp >>> 0, 4);
  out.writeUInt32BE(p.ssrc >>> 0, 8);
  for (let i = 0; i < csrc.length; i++) out.writeUInt32BE(csrc[i] >>> 0, 12 + 4 * i);
  out.set(p.payload, header);
  return out;
}

/** RTCP shares the port with rtcp-mux (RFC 5761 §4): packet types 192–223 are RTCP. */
export function isRtcp(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[1] >= 192 && buf[1] <= 223;
}
