/**
 * baresip (Debian's baresip-core) as the WhatsApp user: SIP over TLS to the Meta-edge peer,
 * SRTP with SDES (`mediaenc=srtp-mand`), Opus or G.711, a WAV as microphone (`aufile`) and
 * every decoded/encoded stream dumped to WAV (`sndfile`). Driven over `ctrl_tcp` (netstring
 * JSON commands and events); stopped and its files removed with the test.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { freePort } from "./ports.js";
import { sleep } from "./kamailio.js";
import type { Teardown } from "./teardown.js";


export interface BaresipOptions {
  dir: string;
  /** Local SIP address (TLS listener, also used for UDP). */
  host: string;
  sipPort: number;
  /** RTP ports baresip may use (a capture can then tell its leg apart). */
  rtpPorts: { min: number; max: number };
  user: string;
  /**
   * WhatsApp user (default): calls go over TLS to the Meta-edge peer's user-side listener,
   * media is SRTP. A plain phone (a PBX extension): SIP over UDP, plain RTP, no outbound.
   */
  role: { kind: "wa-user"; outbound: { host: string; port: number }; cert: string; key: string; caFile: string } | { kind: "plain-phone" };
  /** The microphone: a WAV file (16-bit PCM). */
  sourceWav: string;
  /** Codecs in order, e.g. ["opus/48000/2"] or ["PCMA/8000"]. */
  codecs: string[];
  answerMode?: "manual" | "auto";
  /**
   * SRTP key exchange: SDES (`srtp-mand`, default) or DTLS-SRTP (`dtls_srtp`); "none": plain
   * RTP (the WhatsApp user behind the Meta-edge peer's own media relay, which does the SRTP).
   */
  mediaEncryption?: "srtp-mand" | "dtls_srtp" | "none";
}

export interface BaresipEvent {
  type: string;
  param?: string;
  [key: string]: unknown;
}

export class Baresip {
  private events: BaresipEvent[] = [];
  private log = "";
  private exitCode: number | null | undefined;
  private readonly exited: Promise<void>;

  constructor(
    private readonly child: ChildProcess,
    private readonly ctrl: Socket,
    readonly dumpDir: string,
    readonly sipPort: number,
  ) {
    this.exited = new Promise((done) =>
      child.on("exit", (code) => {
        this.exitCode = code;
        done();
      }),
    );
    for (const s of [child.stdout!, child.stderr!]) s.on("data", (c: Buffer) => (this.log += c.toString()));
    let buffered = Buffer.alloc(0);
    ctrl.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        const colon = buffered.indexOf(":");
        if (colon < 0) break;
        const len = Number(buffered.toString("latin1", 0, colon));
        if (buffered.length < colon + 1 + len + 1) break;
        const json = buffered.toString("utf8", colon + 1, colon + 1 + len);
        buffered = buffered.subarray(colon + 1 + len + 1);
        try {
          this.events.push(JSON.parse(json) as BaresipEvent);
        } catch {
          /* not JSON: ignore */
        }
      }
    });
  }

  logText(): string {
    return this.log;
  }

  command(command: string, params = ""): void {
    const json = JSON.stringify({ command, params, token: String(Date.now()) });
    this.ctrl.write(`${Buffer.byteLength(json)}:${json},`);
  }

  dial(uri: string): void {
    this.command("dial", uri);
  }

  hangup(): void {
    this.command("hangup");
  }

  /** Waits for an event of the type (e.g. CALL_ESTABLISHED, CALL_CLOSED); fails with the log. */
  async waitForEvent(type: string, timeoutMs = 10_000): Promise<BaresipEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = this.events.find((ev) => ev.type === type);
      if (e) return e;
      if (Date.now() > deadline) {
        throw new Error(`baresip: no ${type} within ${timeoutMs} ms; events: ${this.events.map((ev) => ev.type).join(", ")}\nlog tail:\n${this.log.slice(-3000)}`);
      }
      await sleep(50);
    }
  }

  eventTypes(): string[] {
    return this.events.map((e) => e.type);
  }

  /** The sndfile dumps: "dec" is what baresip heard, "enc" what it sent. */
  dumps(): { dec: string[]; enc: string[] } {
    const files = readdirSync(this.dumpDir).filter((f) => f.startsWith("dump-"));
    return {
      dec: files.filter((f) => f.endsWith("-dec.wav")).map((f) => join(this.dumpDir, f)),
      enc: files.filter((f) => f.endsWith("-enc.wav")).map((f) => join(this.dumpDir, f)),
    };
  }

  async stop(): Promise<void> {
    this.ctrl.destroy();
    if (this.exitCode !== undefined) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 3000);
    await this.exited;
    clearTimeout(timer);
  }
}

export async function startBaresip(t: Teardown, opts: BaresipOptions): Promise<Baresip> {
  const confDir = join(opts.dir, "conf");
  const dumpDir = join(opts.dir, "dumps");
  mkdirSync(confDir, { recursive: true });
  mkdirSync(dumpDir, { recursive: true });
  const sipPort = opts.sipPort;
  const ctrlPort = await freePort();
  const role = opts.role;
  const tlsLines: string[] = [];
  if (role.kind === "wa-user") {
    // baresip wants certificate and key in one PEM file.
    const certFile = join(confDir, "cert.pem");
    writeFileSync(certFile, `${readFileSync(role.cert, "utf8")}${readFileSync(role.key, "utf8")}`);
    tlsLines.push(`sip_certificate ${certFile}`, `sip_cafile ${role.caFile}`);
  }
  writeFileSync(
    join(confDir, "config"),
    [
      "poll_method epoll",
      // Advertise loopback in SDP (not the machine's first interface), as rtpengine listens there.
      `net_interface ${opts.host}`,
      `sip_listen ${opts.host}:${sipPort}`,
      ...tlsLines,
      `audio_source aufile,${opts.sourceWav}`,
      "audio_player aubridge,sink",
      "audio_alert aubridge,alert",
      "audio_srate 48000",
      "audio_channels 1",
      `rtp_ports ${opts.rtpPorts.min}-${opts.rtpPorts.max}`,
      "rtp_timeout 0",
      "jitter_buffer_delay 3-10",
      `snd_path ${dumpDir}`,
      `ctrl_tcp_listen 127.0.0.1:${ctrlPort}`,
      "module_path /usr/lib/baresip/modules",
      "module g711.so",
      "module opus.so",
      "module aufile.so",
      "module aubridge.so",
      "module sndfile.so",
      "module srtp.so",
      "module dtls_srtp.so",
      "module ice.so",
      "module_app account.so",
      "module_app ctrl_tcp.so",
      "module_app menu.so",
      "opus_bitrate 20000",
      "",
    ].join("\n"),
  );
  const aor = role.kind === "wa-user" ? `<sip:${opts.user}@${role.outbound.host};transport=tls>` : `<sip:${opts.user}@${opts.host}:${sipPort}>`;
  const params = [
    "regint=0",
    ...(role.kind === "wa-user"
      ? [
          `outbound="sip:${role.outbound.host}:${role.outbound.port};transport=tls"`,
          ...(opts.mediaEncryption === "none" ? [] : [`mediaenc=${opts.mediaEncryption ?? "srtp-mand"}`]),
          // DTLS-SRTP as Meta does it: with ICE (Meta is ICE-lite, we are controlling).
          ...(opts.mediaEncryption === "dtls_srtp" ? ["medianat=ice"] : []),
        ]
      : []),
    `audio_codecs=${opts.codecs.join(",")}`,
    `answermode=${opts.answerMode ?? "manual"}`,
  ];
  writeFileSync(join(confDir, "accounts"), `${aor};${params.join(";")}\n`);
  writeFileSync(join(confDir, "contacts"), "");
  const child = spawn("baresip", ["-f", confDir], { stdio: ["ignore", "pipe", "pipe"], cwd: opts.dir });
  let ctrl: Socket | undefined;
  const deadline = Date.now() + 10_000;
  while (!ctrl) {
    try {
      ctrl = await new Promise<Socket>((done, fail) => {
        const s = connect(ctrlPort, "127.0.0.1", () => done(s));
        s.once("error", fail);
      });
    } catch {
      if (Date.now() > deadline || child.exitCode !== null) {
        child.kill("SIGKILL");
        throw new Error(`baresip did not open ctrl_tcp on ${ctrlPort}`);
      }
      await sleep(100);
    }
  }
  const b = new Baresip(child, ctrl, dumpDir, sipPort);
  t.teardown(() => b.stop());
  return b;
}
