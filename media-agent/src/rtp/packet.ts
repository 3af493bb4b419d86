/** RTP packets (RFC 3550 §5.1): strict parsing of what arrives, serialisation of what leaves. */

export interface RtpPacket {
  marker: boolean;
  payloadType: number;
  sequence: number;
  timestamp: number;
  ssrc: number;
  csrc: number[];
  payload: Uint8Array;
}

export class RtpParseError extends Error {
  override name = "RtpParseError";
}

export function parseRtp(buf: Uint8Array): RtpPacket {
  if (buf.length < 12) throw new RtpParseError(`RTP packet of ${buf.length} bytes is shorter than its header`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const b0 = buf[0];
  if (b0 >> 6 !== 2) throw new RtpParseError(`RTP version ${b0 >> 6}, expected 2`);
  const csrcCount = b0 & 0x0f;
  let offset = 12 + 4 * csrcCount;
  if (buf.length < offset) throw new RtpParseError("RTP packet shorter than its CSRC list");
  const csrc: number[] = [];
  for (let i = 0; i < csrcCount; i++) csrc.push(view.getUint32(12 + 4 * i));
  if (b0 & 0x10) {
    if (buf.length < offset + 4) throw new RtpParseError("RTP header extension truncated");
    offset += 4 + 4 * view.getUint16(offset + 2);
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
    sequence: view.getUint16(2),
    timestamp: view.getUint32(4),
    ssrc: view.getUint32(8),
    csrc,
    payload: buf.subarray(offset, end),
  };
}

export function serializeRtp(p: Omit<RtpPacket, "csrc"> & { csrc?: number[] }): Buffer {
  const csrc = p.csrc ?? [];
  const out = Buffer.alloc(12 + 4 * csrc.length + p.payload.length);
  out[0] = 0x80 | csrc.length;
  out[1] = (p.marker ? 0x80 : 0) | (p.payloadType & 0x7f);
  out.writeUInt16BE(p.sequence & 0xffff, 2);
  out.writeUInt32BE(p.timestamp >>> 0, 4);
  out.writeUInt32BE(p.ssrc >>> 0, 8);
  csrc.forEach((c, i) => out.writeUInt32BE(c >>> 0, 12 + 4 * i));
  out.set(p.payload, 12 + 4 * csrc.length);
  return out;
}

/** RTCP shares the port with rtcp-mux (RFC 5761 §4): packet types 192–223 are RTCP. */
export function isRtcp(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[1] >= 192 && buf[1] <= 223;
}
