/**
 * Runs SIPp (Debian's sip-tester) as the far end of a test: a scenario file plus the
 * messages it sent and received, parsed from its -trace_msg log, so tests can assert the
 * reason phrase and headers that were really on the wire.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../../build/ports.js";
import { parseSipMessage, type SipMessage } from "../../media-agent/src/sip/message.js";

export interface SippRun {
  exitCode: number | null;
  /** Messages SIPp received, parsed. */
  received: SipMessage[];
  /** Messages SIPp sent, as text. */
  sent: string[];
  /** SIPp's own output, for failure messages. */
  output: string;
}

export interface SippOptions {
  scenarioXml: string;
  target: { host: string; port: number };
  /** Directory for the scenario and logs (a test temp dir). */
  workDir: string;
  /** SIPp keywords: [service] and -key values. */
  service?: string;
  keys?: Record<string, string>;
  timeoutS?: number;
  /** SIPp -cid_str: the Call-ID format ([call_id] in scenarios), e.g. Meta's "outgoing:wacid.%u-%p@%s". */
  callIdFormat?: string;
  /** Local address and port (a UAS that others must reach); free port on 127.0.0.1 if unset. */
  local?: { host: string; port: number };
}

/** Runs SIPp to the end of its scenario (-m 1). */
export async function runSipp(opts: SippOptions): Promise<SippRun> {
  return (await startSipp(opts)).done;
}

/** Starts SIPp and returns once it runs; `done` resolves when it exits. */
export async function startSipp(opts: SippOptions): Promise<{ done: Promise<SippRun> }> {
  const dir = mkdtempSync(join(opts.workDir, "sipp-"));
  const scenario = join(dir, "scenario.xml");
  const messageLog = join(dir, "messages.log");
  writeFileSync(scenario, opts.scenarioXml);
  const local = opts.local ?? { host: "127.0.0.1", port: await freePort() };
  const args = [
    `${opts.target.host}:${opts.target.port}`,
    "-sf", scenario,
    "-m", "1",
    "-i", local.host,
    "-p", String(local.port),
    "-trace_msg", "-message_file", messageLog,
    "-timeout", `${opts.timeoutS ?? 10}s`, "-timeout_error",
    "-nostdin",
  ];
  if (opts.service) args.push("-s", opts.service);
  if (opts.callIdFormat) args.push("-cid_str", opts.callIdFormat);
  for (const [k, v] of Object.entries(opts.keys ?? {})) args.push("-key", k, v);

  const child = spawn("sipp", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (b: Buffer) => (output += b.toString()));
  child.stderr.on("data", (b: Buffer) => (output += b.toString()));
  const exited = new Promise<number | null>((done) => child.on("exit", done));
  await new Promise((done) => setTimeout(done, 200)); // SIPp has bound its socket
  return { done: exited.then((exitCode) => collect(exitCode, messageLog, output)) };
}

function collect(exitCode: number | null, messageLog: string, output: string): SippRun {
  const log = existsSync(messageLog) ? readFileSync(messageLog, "utf8") : "";
  const received: SipMessage[] = [];
  const sent: string[] = [];
  for (const entry of log.split(/^-{20,} [^\n]*\n/m).slice(1)) {
    // "UDP message sent (257 bytes):" / "UDP message received [405] bytes :", a blank line, the message
    const m = entry.match(/^\w+ message (received|sent) [^\n]*:\n\n([\s\S]*)$/);
    if (!m) continue;
    const text = m[2].replace(/\n+$/, "\n\n").replace(/\r?\n/g, "\r\n");
    if (m[1] === "sent") sent.push(text);
    else received.push(parseSipMessage(text));
  }
  return { exitCode, received, sent, output: output.slice(-3000) };
}

/** A scenario that sends one request (SIPp template text) and expects one final status. */
export function oneRequestScenario(request: string, expectStatus: number): string {
  return `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="one request">
  <send><![CDATA[
${request.trim()}

]]></send>
  <recv response="100" optional="true"/>
  <recv response="${expectStatus}"/>
</scenario>
`;
}

/**
 * SIPp template of a request of the given method toward the target. `headers` replace the
 * default header of the same name, or are added; a null value removes it.
 */
export function requestTemplate(
  method: string,
  headers: Record<string, string | null> = {},
  ruri = "sip:[service]@[remote_ip]:[remote_port]",
): string {
  const lines = [
    `${method} ${ruri} SIP/2.0`,
    "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport",
    "From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]",
    "To: <sip:[service]@[remote_ip]:[remote_port]>",
    "Call-ID: [call_id]",
    `CSeq: 1 ${method}`,
    "Max-Forwards: 70",
    "User-Agent: SIPp",
    "Content-Length: [len]",
  ];
  for (const [name, value] of Object.entries(headers)) {
    const at = lines.findIndex((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
    if (value === null) {
      if (at >= 0) lines.splice(at, 1);
    } else if (at >= 0) lines[at] = `${name}: ${value}`;
    else lines.splice(lines.length - 1, 0, `${name}: ${value}`);
  }
  return lines.join("\n");
}
