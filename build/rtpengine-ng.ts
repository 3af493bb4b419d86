/**
 * A minimal client for rtpengine's ng control protocol (bencode over UDP, cookie-prefixed):
 * the launcher pings it before Kamailio starts, and tests ask it which calls it still holds.
 */
import { createSocket } from "node:dgram";
import { randomBytes } from "node:crypto";

export type Bencoded = string | number | Bencoded[] | { [key: string]: Bencoded };

export function bencode(value: Bencoded): Buffer {
  if (typeof value === "number") return Buffer.from(`i${Math.trunc(value)}e`);
  if (typeof value === "string") return Buffer.concat([Buffer.from(`${Buffer.byteLength(value)}:`), Buffer.from(value)]);
  if (Array.isArray(value)) return Buffer.concat([Buffer.from("l"), ...value.map(bencode), Buffer.from("e")]);
  const keys = Object.keys(value).sort();
  return Buffer.concat([Buffer.from("d"), ...keys.flatMap((k) => [bencode(k), bencode(value[k])]), Buffer.from("e")]);
}

export function bdecode(buf: Buffer): Bencoded {
  let pos = 0;
  const next = (): Bencoded => {
    const ch = String.fromCharCode(buf[pos]);
    if (ch === "i") {
      const end = buf.indexOf("e", pos);
      const n = Number(buf.toString("latin1", pos + 1, end));
      pos = end + 1;
      return n;
    }
    if (ch === "l" || ch === "d") {
      pos++;
      const items: Bencoded[] = [];
      while (String.fromCharCode(buf[pos]) !== "e") {
        if (pos >= buf.length) throw new Error("truncated bencode");
        items.push(next());
      }
      pos++;
      if (ch === "l") return items;
      const dict: Record<string, Bencoded> = {};
      for (let i = 0; i < items.length; i += 2) dict[String(items[i])] = items[i + 1];
      return dict;
    }
    const colon = buf.indexOf(":", pos);
    if (colon < 0 || !/^\d+$/.test(buf.toString("latin1", pos, colon))) throw new Error(`bad bencode at ${pos}`);
    const len = Number(buf.toString("latin1", pos, colon));
    const s = buf.toString("utf8", colon + 1, colon + 1 + len);
    pos = colon + 1 + len;
    return s;
  };
  return next();
}

/** Sends one ng command and returns rtpengine's answer dictionary. */
export function ngCommand(
  target: { host: string; port: number },
  command: Record<string, Bencoded>,
  timeoutMs = 1000,
): Promise<Record<string, Bencoded>> {
  const cookie = randomBytes(6).toString("hex");
  const sock = createSocket("udp4");
  return new Promise((done, fail) => {
    const timer = setTimeout(() => {
      sock.close();
      fail(new Error(`rtpengine at ${target.host}:${target.port} did not answer '${String(command.command)}' within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on("message", (msg) => {
      const space = msg.indexOf(" ");
      if (msg.toString("latin1", 0, space) !== cookie) return;
      clearTimeout(timer);
      sock.close();
      try {
        done(bdecode(msg.subarray(space + 1)) as Record<string, Bencoded>);
      } catch (err) {
        fail(err);
      }
    });
    sock.send(Buffer.concat([Buffer.from(`${cookie} `), bencode(command)]), target.port, target.host);
  });
}

/** Call-IDs of the calls rtpengine holds right now. */
export async function listCalls(target: { host: string; port: number }): Promise<string[]> {
  const answer = await ngCommand(target, { command: "list", limit: "1000" });
  return (answer.calls as string[] | undefined) ?? [];
}

/**
 * The ng dictionary Kamailio's rtpengine module sends for a flags string such as
 * routing/policy/media.ts builds ("RTP/SAVP ICE=remove codec-transcode=PCMA SDES-no-…"), so a
 * benchmark can offer and answer exactly as the routing does without Kamailio in between.
 * `replace-`, `rtcp-mux-`, `SDES-` and `codec-<key>=` items go into their lists, `key=value`
 * items into the dictionary, transport protocols into transport-protocol, the rest into flags.
 */
export function ngFlagsFromKamailio(flags: string): Record<string, Bencoded> {
  const dict: Record<string, Bencoded> = {};
  const list = (key: string) => ((dict[key] ??= []) as Bencoded[]);
  for (const item of flags.split(/\s+/).filter(Boolean)) {
    const eq = item.indexOf("=");
    const [key, value] = eq < 0 ? [item, ""] : [item.slice(0, eq), item.slice(eq + 1)];
    const prefix = /^(replace|rtcp-mux|SDES)-(.+)$/.exec(key);
    if (/^(UDP\/TLS\/)?RTP\/S?AVPF?$/.test(item)) dict["transport-protocol"] = item;
    else if (key.startsWith("codec-") && value) {
      const codec = (dict.codec ??= {}) as Record<string, Bencoded>;
      ((codec[key.slice("codec-".length)] ??= []) as Bencoded[]).push(value);
    } else if (prefix && !value) list(prefix[1]).push(prefix[2]);
    else if (key === "direction") list("direction").push(value);
    else if (value) dict[key] = value;
    else list("flags").push(item);
  }
  return dict;
}
