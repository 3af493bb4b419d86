/**
 * RTCP sender reports (RFC 3550 §6.4.1) with an SDES CNAME, so rtpengine and Meta see a live
 * sender with consistent counts; and a tolerant reader for compound packets.
 */

/** Seconds between 1900 (NTP epoch) and 1970. */
const NTP_OFFSET_S = 2208988800;

export interface SenderReportInput {
  ssrc: number;
  /** Wall-clock time of rtpTimestamp, ms since 1970. */
  ntpMs: number;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
  cname: string;
}

export function buildSenderReport(r: SenderReportInput): Buffer {
  const sr = Buffer.alloc(28);
  sr[0] = 0x80; // V=2, no padding, no report blocks
  sr[1] = 200;
  sr.writeUInt16BE(28 / 4 - 1, 2);
  sr.writeUInt32BE(r.ssrc >>> 0, 4);
  const seconds = Math.floor(r.ntpMs / 1000);
  sr.writeUInt32BE((seconds + NTP_OFFSET_S) >>> 0, 8);
  sr.writeUInt32BE(Math.floor(((r.ntpMs % 1000) / 1000) * 2 ** 32) >>> 0, 12);
  sr.writeUInt32BE(r.rtpTimestamp >>> 0, 16);
  sr.writeUInt32BE(r.packetCount >>> 0, 20);
  sr.writeUInt32BE(r.octetCount >>> 0, 24);

  const cname = Buffer.from(r.cname.slice(0, 255), "utf8");
  // chunk: SSRC, CNAME item (type 1, length, text), end of list; padded to 32 bits
  const chunkLength = 4 + 2 + cname.length + 1;
  const padded = Math.ceil(chunkLength / 4) * 4;
  const sdes = Buffer.alloc(4 + padded);
  sdes[0] = 0x81; // one chunk
  sdes[1] = 202;
  sdes.writeUInt16BE(sdes.length / 4 - 1, 2);
  sdes.writeUInt32BE(r.ssrc >>> 0, 4);
  sdes[8] = 1;
  sdes[9] = cname.length;
  cname.copy(sdes, 10);
  return Buffer.concat([sr, sdes]);
}

export interface RtcpPacketInfo {
  type: "SR" | "RR" | "SDES" | "BYE" | "APP" | "other";
  packetType: number;
  ssrc: number;
  /** Sender reports: the sender's packet and octet counts. */
  packetCount?: number;
  octetCount?: number;
}

const TYPES: Record<number, RtcpPacketInfo["type"]> = { 200: "SR", 201: "RR", 202: "SDES", 203: "BYE", 204: "APP" };

export function parseRtcp(buf: Uint8Array): RtcpPacketInfo[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: RtcpPacketInfo[] = [];
  for (let at = 0; at < buf.length; ) {
    if (buf.length - at < 4) throw new Error(`RTCP: ${buf.length - at} stray bytes at ${at}`);
    if (buf[at] >> 6 !== 2) throw new Error(`RTCP: version ${buf[at] >> 6} at ${at}`);
    const length = (view.getUint16(at + 2) + 1) * 4;
    if (at + length > buf.length) throw new Error(`RTCP: packet at ${at} claims ${length} bytes, ${buf.length - at} left`);
    const packetType = buf[at + 1];
    const info: RtcpPacketInfo = { type: TYPES[packetType] ?? "other", packetType, ssrc: length >= 8 ? view.getUint32(at + 4) : 0 };
    if (packetType === 200 && length >= 28) {
      info.packetCount = view.getUint32(at + 20);
      info.octetCount = view.getUint32(at + 24);
    }
    out.push(info);
    at += length;
  }
  return out;
}
