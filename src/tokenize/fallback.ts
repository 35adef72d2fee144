// Which tokenizer serves a model that has none configured: the tokenizer of its model family when the
// served name says the family (Qwen3, Llama 3.1, gpt-oss, shipped in npm), else the default source.
// A guess, so callers log it; `--tokenizer MODEL=SOURCE` always wins over it.

/** Served-name patterns (with or without the Hugging Face org) -> the family's tokenizer source. */
const FAMILY_TOKENIZERS: ReadonlyArray<{ family: string; pattern: RegExp; source: string }> = [
  { family: 'Qwen3', pattern: /^(qwen\/)?qwen3/i, source: 'npm:qwen3' },
  { family: 'Llama 3.1', pattern: /^(meta-llama\/)?(meta-)?llama-3\.1/i, source: 'npm:llama3_1' },
  { family: 'gpt-oss', pattern: /^(openai\/)?gpt-oss/i, source: 'npm:gptoss' },
];

/** The value of `defaultTokenizer` that turns every fallback off: models need a configured tokenizer. */
const NO_FALLBACK = 'none';

export interface TokenizerFallback {
  source: string;
  /** Why this source: the model's family, or the configured default. */
  reason: 'family' | 'default';
  family?: string;
}

/**
 * The fallback tokenizer source for a model without a configured one, or null when fallbacks are off
 * (`defaultSource` null or "none").
 */
export function fallbackTokenizer(model: string, defaultSource: string | null | undefined): TokenizerFallback | null {
  if (!defaultSource || defaultSource === NO_FALLBACK) return null;
  for (const f of FAMILY_TOKENIZERS) if (f.pattern.test(model)) return { source: f.source, reason: 'family', family: f.family };
  return { source: defaultSource, reason: 'default' };
}
