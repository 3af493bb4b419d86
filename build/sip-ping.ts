/** One SIP OPTIONS over UDP and its answer: a readiness probe, not a SIP client. */
import { createSocket } from "node:dgram";
import { randomBytes } from "node:crypto";

export interface PingAnswer {
  status: number;
  reason: string;
  text: string;
}

export function sipPing(host: string, port: number, timeoutMs = 1000): Promise<PingAnswer> {
  return new Promise((done, fail) => {
    const sock = createSocket("udp4");
    const id = randomBytes(6).toString("hex");
    const timer = setTimeout(() => {
      sock.close();
      fail(new Error(`no answer to OPTIONS from ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on("message", (buf) => {
      const text = buf.toString("utf8");
      const m = text.match(/^SIP\/2\.0 (\d{3}) ([^\r\n]*)/);
      if (!m || !text.includes(id)) return;
      clearTimeout(timer);
      sock.close();
      done({ status: parseInt(m[1], 10), reason: m[2], text });
    });
    sock.bind(0, "127.0.0.1", () => {
      const { port: localPort } = sock.address();
      const msg =
        `OPTIONS sip:${host}:${port} SIP/2.0\r\n` +
        `Via: SIP/2.0/UDP 127.0.0.1:${localPort};branch=z9hG4bK${id};rport\r\n` +
        `Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=${id}\r\nTo: <sip:${host}>\r\n` +
        `Call-ID: ping-${id}\r\nCSeq: 1 OPTIONS\r\nUser-Agent: wa-voice-probe\r\nContent-Length: 0\r\n\r\n`;
      sock.send(msg, port, host);
    });
  });
}
