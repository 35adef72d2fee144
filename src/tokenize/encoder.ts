// The contract every tokenizer backend (HF tokenizer.json, tiktoken) fulfils for exact, cacheable
// tokenization: the added tokens to split out first, the ids add_special_tokens=True adds, whether
// text may be cut at a word boundary without changing its tokens, and chat-template data.

/** Chat-template data from tokenizer_config.json: the template and the special-token strings it may use. */
export interface ChatTemplateConfig {
  template: string;
  /** bos_token, eos_token, pad_token, unk_token as strings, as transformers passes them to templates. */
  specialTokens: Record<string, string>;
}

export interface SegmentEncoder {
  /** Added tokens (content -> id). Like HF tokenizers, they are split out of text before anything else. */
  readonly addedTokens: ReadonlyMap<string, number>;
  /** Ids add_special_tokens=True puts before and after a sequence (Llama 3's BOS). */
  readonly prefixIds: readonly number[];
  readonly suffixIds: readonly number[];
  /**
   * True when cutting text between "\n" and a letter, or between a letter and a space, never changes
   * its tokens (isSafeCut in segment-cache.ts): byte-level BPE behind a GPT-style split regex, whose
   * matches never span either pair, with at most NFC normalization (which composes nothing across them).
   */
  readonly wordCutsAreSafe: boolean;
  readonly chatTemplate: ChatTemplateConfig | null;
  /** True when encodeOrdinary serves repeated pre-tokens (words) from a cache (pretoken-encoder.ts). */
  readonly preTokenCache: boolean;
  /** Encodes text that contains no added token. */
  encodeOrdinary(text: string): number[];
}

/**
 * Split regexes of GPT-style byte-level BPE tokenizers, as written in tokenizer.json: Qwen2/Qwen3,
 * Llama 3, and o200k (gpt-oss). In each, only `\s*[\r\n]+`, ` ?[^\s\p{L}\p{N}]+[\r\n]*` and the
 * whitespace branches can hold a newline, and none of them continues into a letter; and a letter is
 * followed within a match only by letters, marks or a contraction (`'s`), never by a space.
 */
export const SAFE_CUT_SPLIT_PATTERNS: ReadonlySet<string> = new Set([
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
]);
