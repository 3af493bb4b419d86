/**
 * Streamed LLM text → pieces for speech synthesis. Piper's HTTP server speaks whole requests, so
 * latency depends on how soon the first piece is complete: the first piece ends at a clause
 * (a comma, colon or dash after a few words), later ones at sentence ends. Decimal numbers,
 * common abbreviations and initials do not end sentences.
 */

export interface ChunkerOptions {
  /** The first piece may end at a clause once it has this many characters. */
  firstClauseMinChars: number;
  /** Any piece is cut at a clause boundary when it grows beyond this. */
  maxChars: number;
}

const DEFAULTS: ChunkerOptions = { firstClauseMinChars: 12, maxChars: 220 };

const ABBREVIATIONS = new Set(["dr", "mr", "mrs", "ms", "st", "vs", "etc", "e.g", "i.e", "approx", "no", "nr", "z.b", "bzw", "ca", "a.m", "p.m"]);

export class SentenceChunker {
  private buffer = "";
  private emitted = 0;
  private readonly opts: ChunkerOptions;

  constructor(opts: Partial<ChunkerOptions> = {}) {
    this.opts = { ...DEFAULTS, ...opts };
  }

  /** Adds streamed text; returns the pieces it completed. */
  push(text: string): string[] {
    this.buffer += text;
    const out: string[] = [];
    for (;;) {
      const cut = this.findCut();
      if (cut < 0) break;
      const piece = this.buffer.slice(0, cut).trim();
      this.buffer = this.buffer.slice(cut);
      if (piece) {
        out.push(piece);
        this.emitted++;
      }
    }
    return out;
  }

  /** The stream ended: whatever is left. */
  flush(): string[] {
    const rest = this.buffer.trim();
    this.buffer = "";
    return rest ? [rest] : [];
  }

  private findCut(): number {
    const b = this.buffer;
    for (let i = 0; i < b.length; i++) {
      const ch = b[i];
      // A boundary needs what follows it, so a streamed "3." + "5" is not cut too early.
      if (i + 1 >= b.length) return -1;
      const next = b[i + 1];
      if (/[.!?…]/.test(ch) && /\s/.test(next) && !this.isAbbreviation(i)) return i + 1;
      if (/[.!?…]/.test(ch) && /["')\]]/.test(next) && i + 2 < b.length && /\s/.test(b[i + 2])) return i + 2;
      if (ch === "\n") return i + 1;
      const clauseAllowed = (this.emitted === 0 && i >= this.opts.firstClauseMinChars) || i >= this.opts.maxChars;
      if (clauseAllowed && /[,;:—–]/.test(ch) && /\s/.test(next)) return i + 1;
    }
    return -1;
  }

  /** "Dr." / "e.g." / a single initial "J." before the dot at i. */
  private isAbbreviation(i: number): boolean {
    const word = /([\p{L}.]+)$/u.exec(this.buffer.slice(0, i))?.[1]?.toLowerCase() ?? "";
    return ABBREVIATIONS.has(word) || /^\p{L}$/u.test(word);
  }
}
