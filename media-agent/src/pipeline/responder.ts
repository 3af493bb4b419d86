/**
 * The responder stage: LLM rounds streamed into clauses (the chunker), tool calls run between
 * rounds, and the filler when the first clause is late. Each clause goes to `say` as soon as it
 * is complete. The turn's signal (its interruption) aborts the LLM request, the tools and the
 * filler; what was said so far is the caller's to keep. A reply cut at the token limit
 * (llm.numPredict) ends with its last complete clause: the unfinished words after it are not said.
 */
import { SentenceChunker } from "./chunker.js";
import type { ChatModel, Clock } from "./engines.js";
import type { PipelineEvent } from "./events.js";
import type { ChatMessage, ToolCall } from "./llm-client.js";
import { runToolCall, type Tool, type ToolContext } from "./tools.js";

export interface ResponderOptions {
  tools: Tool[];
  maxToolRounds: number;
  toolTimeoutMs: number;
  filler: string;
  fillerAfterMs: number;
  apology: string;
  goodbye: string;
}

/** One turn's work for the responder. */
export interface ResponseRequest {
  turn: number;
  /** When the caller's speech ended: the filler counts from there, as the caller counts the wait. */
  speechEndAt: number;
  /** The conversation, the caller's words last; tool rounds are added to it. */
  history: ChatMessage[];
  signal: AbortSignal;
  /** Queues a clause for the speaker; resolves when it is synthesised. */
  say(text: string): Promise<void>;
  /** What the tools may do to the call (end it, transfer it). */
  tools: ToolContext;
  /** Set by end_call during the round: the goodbye ends the reply, no further LLM round. */
  endingReason(): string | null;
  /**
   * Whether there is silence to fill: not when the caller has begun to speak again, nor when the
   * agent has already said something for the turn (a tool's announcement, e.g. before a transfer).
   */
  silence(): boolean;
}

/**
 * What was said; `aborted` when the turn was interrupted (then `spoken` is what was queued of
 * it). An LLM failure is not thrown: the apology is said (the "llm-error" event names the cause).
 */
export interface Response {
  spoken: string;
  aborted: boolean;
}

export class Responder {
  constructor(
    private readonly llm: ChatModel,
    private readonly opts: ResponderOptions,
    private readonly clock: Clock,
    private readonly emit: (event: PipelineEvent) => void,
  ) {}

  async respond(req: ResponseRequest): Promise<Response> {
    const { turn, history, signal } = req;
    const chunker = new SentenceChunker();
    const spoken: string[] = [];
    const speaking: Array<Promise<void>> = [];
    const sayPiece = (piece: string) => {
      spoken.push(piece);
      speaking.push(req.say(piece));
    };
    const filler = this.clock.setTimeout(
      () => {
        if (!signal.aborted && req.silence()) speaking.push(req.say(this.opts.filler));
      },
      Math.max(0, this.opts.fillerAfterMs - (this.clock.now() - req.speechEndAt)),
    );
    // Whether the last LLM round stopped at the token limit rather than where the model ended it.
    let cut = false;
    try {
      for (let round = 0; round <= this.opts.maxToolRounds; round++) {
        // A tool may have ended the turn (a transfer that was answered closes the call).
        signal.throwIfAborted();
        const offered = round < this.opts.maxToolRounds ? this.opts.tools.map((x) => x.spec) : [];
        this.emit({ type: "llm-request", turn, at: this.clock.now(), date: this.clock.date(), messages: [...history], tools: offered.map((x) => x.function.name) });
        let text = "";
        const calls: ToolCall[] = [];
        for await (const part of this.llm.chat(history, offered, signal)) {
          const at = this.clock.now();
          if (part.type === "text") {
            text += part.text;
            this.emit({ type: "llm-text", turn, at, text: part.text });
            chunker.push(part.text).forEach(sayPiece);
          } else if (part.type === "tool_calls") {
            calls.push(...part.calls);
            this.emit({ type: "llm-tool-calls", turn, at, calls: part.calls });
          } else {
            cut = part.cut === true;
            this.emit({ type: "llm-done", turn, at });
          }
        }
        if (calls.length === 0) break;
        history.push({ role: "assistant", content: text, tool_calls: calls });
        for (const call of calls) {
          const result = await runToolCall(call, this.opts.tools, req.tools, this.opts.toolTimeoutMs);
          this.emit({ type: "tool-result", turn, at: this.clock.now(), name: call.function.name, arguments: call.function.arguments, ok: result.ok, content: result.content });
          history.push({ role: "tool", tool_name: result.name, content: result.content });
        }
        if (req.endingReason()) break;
      }
      const [tail] = chunker.flush();
      // The chunker waits for what follows a full stop, so a reply cut right after one still ends complete.
      const unfinished = cut && tail !== undefined && !/[.!?…]["')\]]?$/.test(tail) ? tail : undefined;
      if (tail !== undefined && unfinished === undefined) sayPiece(tail);
      if (cut) {
        // Half a sentence misleads more than none; the trace's LLM round records the cut and the setting to change.
        const dropped = unfinished === undefined ? "" : `; not said: "${unfinished}"`;
        this.emit({ type: "llm-error", turn, error: `reply cut at num_predict (Ollama done_reason "length"): raise llm.numPredict or ask for shorter replies${dropped}` });
        // Nothing complete to say: the caller hears the apology rather than silence.
        if (spoken.length === 0 && !req.endingReason()) sayPiece(this.opts.apology);
      }
      if (req.endingReason()) sayPiece(this.opts.goodbye);
      await Promise.all(speaking);
      return { spoken: spoken.join(" "), aborted: signal.aborted };
    } catch (err) {
      if (signal.aborted) return { spoken: spoken.join(" "), aborted: true };
      const error = String((err as Error).message);
      this.emit({ type: "llm-error", turn, error });
      await req.say(this.opts.apology);
      spoken.push(this.opts.apology);
      return { spoken: spoken.join(" "), aborted: signal.aborted };
    } finally {
      this.clock.clearTimeout(filler);
    }
  }
}
