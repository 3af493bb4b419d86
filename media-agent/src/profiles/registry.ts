/**
 * Every profile a call can name, and the audio each gives a call: the built-in ones of
 * AGENT_PROFILES (echo, play-record) and the voice profiles of AGENT_VOICE_PROFILES (the voice
 * pipeline). Loaded once at start, so a missing prompt file or a bad voice profile is a start-up
 * error naming its key, and the first call does not wait for the VAD, the speech workers or the
 * LLM's model.
 */
import { readFileSync } from "node:fs";
import type { Logger } from "pino";
import type { CallAudio, CallControl, CallInfo } from "../audio/call-audio.js";
import type { PcmFrame } from "../audio/frames.js";
import { readWav16k, toFrames } from "../audio/wav.js";
import type { AgentConfig } from "../config.js";
import { warmUp } from "../pipeline/llm-client.js";
import { EngineHealth, gatedChat, gatedStt } from "../engine-health.js";
import { startSpeechWorkers } from "../pipeline/tts.js";
import { WebRtcVad } from "../pipeline/vad.js";
import { VoicePipeline } from "../pipeline/voice-pipeline.js";
import { pipelineMetrics } from "../metrics.js";
import { llmConfig, loadVoiceProfiles, preparedLinesOf, ttsEngine, voiceProfile, type VoiceProfileSpec } from "../pipeline/voice-profiles.js";
import { PreparedLines } from "../pipeline/prepared-lines.js";
import { echoProfile } from "./echo.js";
import { playRecordProfile } from "./play-record.js";

export class ProfileRegistry {
  /** The voice profiles' engine check, run at start and every AGENT_ENGINE_CHECK_S. */
  readonly engines: EngineHealth;
  /** Each voice profile's speech engine, with its filler, apology and transfer announcement kept in memory (preparedLinesOf). */
  private readonly speech = new Map<string, PreparedLines>();

  private constructor(
    private readonly config: AgentConfig,
    private readonly prompts: Map<string, PcmFrame[]>,
    private readonly voice: Record<string, VoiceProfileSpec>,
    log: Logger,
  ) {
    this.engines = new EngineHealth(voice, log, config.AGENT_ENGINE_CHECK_S);
    for (const [name, spec] of Object.entries(voice)) this.speech.set(name, new PreparedLines(ttsEngine(spec), preparedLinesOf(spec)));
  }

  static async load(config: AgentConfig, log: Logger): Promise<ProfileRegistry> {
    const prompts = new Map<string, PcmFrame[]>();
    for (const [name, spec] of Object.entries(config.AGENT_PROFILES)) {
      if (spec.kind !== "play-record") continue;
      try {
        prompts.set(name, toFrames(readWav16k(readFileSync(spec.prompt))));
      } catch (err) {
        throw new Error(`AGENT_PROFILES: profile '${name}' prompt ${spec.prompt}: ${(err as Error).message}`);
      }
    }
    const voice = config.AGENT_VOICE_PROFILES ? loadVoiceProfiles(config.AGENT_VOICE_PROFILES) : {};
    const registry = new ProfileRegistry(config, prompts, voice, log);
    if (config.AGENT_VOICE_PROFILES) {
      await WebRtcVad.create(); // loads the VAD's WASM once, so calls start without waiting
      await startSpeechWorkers(); // likewise the processes that synthesise speech
      if (!registry.has(config.AGENT_DEFAULT_PROFILE)) {
        throw new Error(`AGENT_DEFAULT_PROFILE: '${config.AGENT_DEFAULT_PROFILE}' is in neither AGENT_PROFILES nor AGENT_VOICE_PROFILES`);
      }
      registry.warmLlms(log);
      registry.prepareLines(log);
      // The first check is awaited (each request at most 3 s): the first calls then meet the
      // engines' known state (the apology at once for an engine that fails it), and the check's
      // requests do not fall among the first calls' answers.
      await registry.engines.start();
    }
    return registry;
  }

  /** The engines the voice profiles call over HTTP (espeak-ng is built in and has none). */
  engineUrls(): Array<{ profile: string; engine: "stt" | "llm" | "tts"; url: string }> {
    const out: Array<{ profile: string; engine: "stt" | "llm" | "tts"; url: string }> = [];
    for (const [profile, spec] of Object.entries(this.voice)) {
      out.push({ profile, engine: "stt", url: spec.stt.url }, { profile, engine: "llm", url: spec.llm.url });
      if (spec.tts.engine === "piper") out.push({ profile, engine: "tts", url: spec.tts.url });
    }
    return out;
  }

  /** The voice profile the start-up rehearsal uses (calls/rehearsal.ts): the default one if it is a voice profile, else the first; null without voice profiles. */
  rehearsalProfile(): { name: string; spec: VoiceProfileSpec } | null {
    const name = this.config.AGENT_DEFAULT_PROFILE in this.voice ? this.config.AGENT_DEFAULT_PROFILE : Object.keys(this.voice)[0];
    return name === undefined ? null : { name, spec: this.voice[name] };
  }

  has(name: string): boolean {
    return name in this.config.AGENT_PROFILES || name in this.voice;
  }

  /** The audio of a call with this (known) profile. */
  audioFor(info: CallInfo, control: CallControl): CallAudio {
    const voice = this.voice[info.profile];
    if (voice) {
      const profile = voiceProfile(voice, this.config.AGENT_TRACE_DIR, this.speech.get(info.profile));
      const name = info.profile;
      profile.stt = gatedStt(profile.stt, () => this.engines.failure(name, "stt"));
      profile.llm = gatedChat(profile.llm, () => this.engines.failure(name, "llm"));
      return new VoicePipeline(info, control, profile, { vad: WebRtcVad.createLoaded(3) }, [pipelineMetrics()]);
    }
    const spec = this.config.AGENT_PROFILES[info.profile];
    if (spec.kind === "echo") return echoProfile();
    return playRecordProfile(info, control, {
      prompt: this.prompts.get(info.profile)!,
      recordDir: this.config.AGENT_RECORD_DIR,
      hangUpAfterMs: this.config.AGENT_HANGUP_AFTER_PROMPT_MS ?? null,
    });
  }

  /**
   * Synthesises each voice profile's lines kept in memory (preparedLinesOf): the first slow
   * answer's filler is on time too, and a caller hears the apology, or is put through to a
   * person, even when the TTS fails later (voice-pipeline.ts).
   * An engine that is down at start is logged, not fatal: the lines are then synthesised when
   * first needed, and kept from then on.
   */
  private prepareLines(log: Logger): void {
    for (const [name, lines] of this.speech) {
      const started = performance.now();
      const kept = preparedLinesOf(this.voice[name]);
      lines.prepare(AbortSignal.timeout(30_000)).then(
        () => log.info({ profile: name, tts: lines.name, lines: kept, ms: Math.round(performance.now() - started) }, "lines prepared"),
        (err: Error) => log.warn({ profile: name, tts: lines.name, lines: kept, err: err.message }, "lines not prepared; they are synthesised when first needed"),
      );
    }
  }

  /**
   * Loads each voice profile's model into Ollama and keeps it there, so the first caller does
   * not wait for a model load. An engine that is down at start is logged, not fatal: calls then
   * get the profile's apology until it is back.
   */
  private warmLlms(log: Logger): void {
    const seen = new Set<string>();
    for (const [name, spec] of Object.entries(this.voice)) {
      const key = `${spec.llm.url} ${spec.llm.model}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const started = performance.now();
      warmUp(llmConfig(spec)).then(
        () => log.info({ profile: name, llm: spec.llm.url, model: spec.llm.model, ms: Math.round(performance.now() - started) }, "LLM model loaded"),
        (err: Error) => log.warn({ profile: name, llm: spec.llm.url, model: spec.llm.model, err: err.message }, "LLM warm-up failed; calls get the apology until the engine answers"),
      );
    }
  }
}
