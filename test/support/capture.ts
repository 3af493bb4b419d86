/**
 * Captures UDP on loopback with dumpcap (Debian's tshark package) into a classic pcap file and
 * reads the datagrams back, so tests can look at what really crossed the wire (SRTP vs RTP).
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { sleep } from "../../build/kamailio.js";
import type { Teardown } from "../../build/teardown.js";


export interface UdpDatagram {
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
  payload: Buffer;
  /** When the kernel saw it (pcap record time), ms since the epoch, µs resolution. */
  at: number;
}

export interface Capture {
  /** Stops the capture and returns every UDP datagram it saw. */
  stop(): Promise<UdpDatagram[]>;
}

export async function captureUdp(t: Teardown, dir: string, bpf: string): Promise<Capture> {
  const file = join(dir, "capture.pcap");
  const child = spawn("dumpcap", ["-q", "-i", "lo", "-P", "-f", bpf, "-w", file], { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stderr!.on("data", (c: Buffer) => (log += c.toString()));
  const exited = new Promise<void>((done) => child.on("exit", () => done()));
  t.teardown(() => child.kill("SIGKILL"));
  const deadline = Date.now() + 5000;
  while (!/Capturing on|File:/.test(log)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`dumpcap did not start: ${log}`);
    await sleep(50);
  }
  await sleep(200);
  return {
    async stop() {
      child.kill("SIGINT");
      await exited;
      return parsePcap(readFileSync(file));
    },
  };
}

/** Classic pcap, Ethernet (Linux loopback) or raw IPv4 link types, IPv4/UDP only. */
export function parsePcap(buf: Buffer): UdpDatagram[] {
  const magic = buf.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  const u32 = (at: number) => (le ? buf.readUInt32LE(at) : buf.readUInt32BE(at));
  const linkType = u32(20);
  const out: UdpDatagram[] = [];
  for (let at = 24; at + 16 <= buf.length; ) {
    const seenAt = u32(at) * 1000 + u32(at + 4) / 1000;
    const caplen = u32(at + 8);
    const frame = buf.subarray(at + 16, at + 16 + caplen);
    at += 16 + caplen;
    const ip = linkType === 1 ? frame.subarray(14) : frame;
    if (ip.length < 20 || ip[0] >> 4 !== 4 || ip[9] !== 17) continue;
    const ihl = (ip[0] & 0x0f) * 4;
    const udp = ip.subarray(ihl);
    out.push({
      src: `${ip[12]}.${ip[13]}.${ip[14]}.${ip[15]}`,
      dst: `${ip[16]}.${ip[17]}.${ip[18]}.${ip[19]}`,
      srcPort: udp.readUInt16BE(0),
      dstPort: udp.readUInt16BE(2),
      payload: Buffer.from(udp.subarray(8, udp.readUInt16BE(4))),
      at: seenAt,
    });
  }
  return out;
}
