/**
 * The engine check at the agent's start and every AGENT_ENGINE_CHECK_S after (engine-check.ts,
 * without its round trips: versions, models, tool support, voices; espeak-ng's version asked of a
 * speech worker, so that the check starts no process from the agent's own):
 * a ✗ is logged loudly (and its recovery), shown in /healthz and in the metrics
 * (wa_agent_engine_check_ok), and while a profile's speech-to-text or LLM check fails its calls
 * take the apology path at once (gated engines below) instead of sending each turn to an engine
 * that would fail it, or worse, answer it wrongly (an Ollama too old to stream tool calls).
 */
import type { Logger } from "pino";
import { checkEngines, type EngineCheck, type EngineKind } from "./engine-check.js";
import { engineCheckGauge } from "./metrics.js";
import type { ChatModel, SpeechToText } from "./pipeline/engines.js";
import { LlmError, type ChatMessage, type ChatPart } from "./pipeline/llm-client.js";
import { SttError, type SttResult } from "./pipeline/stt-client.js";
import { espeakVersionFromWorker } from "./pipeline/tts.js";
import type { ToolSpec } from "./pipeline/tools.js";
import type { VoiceProfileSpec } from "./pipeline/voice-profiles.js";

/** How long the agent's start waits for the first engine check. */
const FIRST_CHECK_WAIT_MS = 5000;

export class EngineHealth {
  private last: EngineCheck[] = [];
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly profiles: Record<string, VoiceProfileSpec>,
    private readonly log: Logger,
    private readonly intervalS: number,
  ) {}

  /**
   * Runs the first check and schedules the next ones. Resolves when the first check has run (the
   * agent's start awaits it), or after `waitMs` when it has not (logged): an engine that accepts
   * connections and never answers costs each of its requests the check's 3 s, profile after
   * profile, and the agent must not stay deaf to calls for that long.
   */
  async start(waitMs = FIRST_CHECK_WAIT_MS): Promise<void> {
    const first = this.check();
    if (this.intervalS > 0) {
      this.timer = setInterval(() => void this.check(), this.intervalS * 1000);
      this.timer.unref();
    }
    let late: NodeJS.Timeout | undefined;
    const waited = new Promise<boolean>((done) => (late = setTimeout(() => done(false), waitMs)));
    const finished = await Promise.race([first.then(() => true), waited]);
    clearTimeout(late);
    if (!finished) this.log.warn({ waitedMs: waitMs }, `the first engine check has not finished after ${waitMs} ms: taking calls before its result, which follows in the log`);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** The latest check's rows (empty until the first check has run). */
  rows(): EngineCheck[] {
    return this.last;
  }

  /** Why this profile's engine fails its check, or null. */
  failure(profile: string, engine: EngineKind): string | null {
    const row = this.last.find((r) => r.profile === profile && r.engine === engine && !r.ok);
    return row ? row.reason : null;
  }

  /** One check of every profile; at most one at a time. */
  check(): Promise<void> {
    this.running ??= checkEngines(this.profiles, { roundTrips: false, espeakVersion: espeakVersionFromWorker, timeoutMs: 3000 })
      .then((rows) => this.update(rows))
      .catch((err: Error) => this.log.error({ err: err.message }, "engine check could not run"))
      .finally(() => (this.running = null));
    return this.running;
  }

  private update(rows: EngineCheck[]): void {
    for (const r of rows) {
      const before = this.last.find((p) => p.profile === r.profile && p.engine === r.engine);
      engineCheckGauge.set({ profile: r.profile, engine: r.engine }, r.ok ? 1 : 0);
      if (!r.ok && (!before || before.ok || before.reason !== r.reason)) {
        this.log.error({ profile: r.profile, engine: r.engine, url: r.url, subject: r.subject, reason: r.reason }, `ENGINE CHECK FAILED: ${r.engine} of profile ${r.profile}: ${r.reason}; its calls get the apology until it passes`);
      } else if (r.ok && before && !before.ok) {
        this.log.info({ profile: r.profile, engine: r.engine, url: r.url, latencyMs: r.latencyMs }, `engine check passes again: ${r.engine} of profile ${r.profile}`);
      } else if (r.ok && !before) {
        this.log.info({ profile: r.profile, engine: r.engine, url: r.url, version: r.version, subject: r.subject, latencyMs: r.latencyMs, seen: r.reason }, "engine check passed");
      }
    }
    this.last = rows;
  }
}

/** Speech to text that fails at once, naming the check, while the profile's check fails. */
export function gatedStt(inner: SpeechToText, failing: () => string | null): SpeechToText {
  return {
    transcribe(wav: Uint8Array, signal: AbortSignal): Promise<SttResult> {
      const reason = failing();
      return reason ? Promise.reject(new SttError(`speech-to-text failed its engine check: ${reason}`)) : inner.transcribe(wav, signal);
    },
  };
}

/** The LLM, likewise. */
export function gatedChat(inner: ChatModel, failing: () => string | null): ChatModel {
  return {
    chat(messages: ChatMessage[], tools: ToolSpec[], signal: AbortSignal): AsyncIterable<ChatPart> {
      const reason = failing();
      if (!reason) return inner.chat(messages, tools, signal);
      return (async function* refused(): AsyncGenerator<ChatPart> {
        throw new LlmError(`the LLM failed its engine check: ${reason}`);
      })();
    },
  };
}
