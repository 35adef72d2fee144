// The `--workload` argument: `shared-prefix`, `multi-turn` or `rag` (built-ins, with optional
// `:key=value,...` overrides of their parameters), `mooncake:FILE` (a Mooncake trace) or `FILE.jsonl`
// (one request per line), turned into the requests to send and a name for the report.

import { basename } from 'node:path';
import { loadJsonlWorkload } from './jsonl.ts';
import { loadMooncakeTrace } from './mooncake.ts';
import { MULTI_TURN_DEFAULT, MULTI_TURN_QUICK, multiTurnWorkload } from './multi-turn.ts';
import { RAG_DEFAULT, RAG_QUICK, ragWorkload } from './rag.ts';
import { SHARED_PREFIX_FULL, SHARED_PREFIX_QUICK, sharedPrefixWorkload } from './shared-prefix.ts';
import { checkInt } from './tokens.ts';
import type { Workload } from './types.ts';

export interface WorkloadSpecOptions {
  seed: number;
  /** The model every generated request names (and JSONL lines without one). */
  model: string;
  /** Built-ins: the scaled-down preset instead of the full one. */
  quick?: boolean;
  /** Built-ins: exactly this many requests; files: only the first this many. */
  requests?: number;
  /** Caps max_tokens of trace and file requests. */
  maxOutputTokens?: number;
  /** Mooncake: cuts longer prompts to this many tokens (a pod's max model length). */
  maxInputTokens?: number;
}

export const WORKLOAD_KINDS = ['shared-prefix', 'multi-turn', 'rag', 'mooncake:FILE', 'FILE.jsonl'] as const;

/** Applies `key=value,...` overrides to a preset's integer and number parameters, rejecting unknown keys. */
function applyOverrides<T extends object>(kind: string, preset: T, text: string | undefined): T {
  if (text === undefined || text === '') return preset;
  const out: Record<string, unknown> = { ...(preset as Record<string, unknown>) };
  for (const pair of text.split(',')) {
    const eq = pair.indexOf('=');
    const key = pair.slice(0, eq).trim();
    const raw = pair.slice(eq + 1).trim();
    if (eq < 0 || !(key in preset)) {
      throw new Error(
        `workload ${kind}: unknown parameter "${eq < 0 ? pair : key}"; expected key=value with key one of ${Object.keys(preset).join(', ')}`,
      );
    }
    const value = Number(raw);
    if (raw === '' || !Number.isFinite(value)) throw new Error(`workload ${kind}: ${key}: expected a number, got "${raw}"`);
    out[key] = value;
  }
  return out as T;
}

function describe(kind: string, params: object, seed: number): string {
  const fields = Object.entries(params).map(([k, v]) => `${k}=${String(v)}`);
  return `${kind}(${[...fields, `seed=${seed}`].join(',')})`;
}

/** Builds or loads the workload `spec` names; throws a message naming what was wrong. */
export async function parseWorkloadSpec(spec: string, options: WorkloadSpecOptions): Promise<Workload> {
  const { seed, model, quick = false } = options;
  if (options.requests !== undefined) checkInt('requests', options.requests, 1);
  const colon = spec.indexOf(':');
  const kind = colon < 0 ? spec : spec.slice(0, colon);
  const rest = colon < 0 ? undefined : spec.slice(colon + 1);
  const withRequests = <T extends object>(params: T): T =>
    options.requests === undefined ? params : { ...params, requests: options.requests };

  switch (kind) {
    case 'shared-prefix': {
      const params = withRequests(applyOverrides(kind, quick ? SHARED_PREFIX_QUICK : SHARED_PREFIX_FULL, rest));
      return { name: describe(kind, params, seed), requests: sharedPrefixWorkload({ ...params, seed, model }) };
    }
    case 'multi-turn': {
      const params = withRequests(applyOverrides(kind, quick ? MULTI_TURN_QUICK : MULTI_TURN_DEFAULT, rest));
      return { name: describe(kind, params, seed), requests: multiTurnWorkload({ ...params, seed, model }) };
    }
    case 'rag': {
      const params = withRequests(applyOverrides(kind, quick ? RAG_QUICK : RAG_DEFAULT, rest));
      return { name: describe(kind, params, seed), requests: ragWorkload({ ...params, seed, model }) };
    }
    case 'mooncake': {
      if (!rest) throw new Error('workload mooncake: expected mooncake:FILE (the path of a Mooncake trace)');
      const trace = await loadMooncakeTrace(rest, {
        model,
        seed,
        limit: options.requests,
        maxOutputTokens: options.maxOutputTokens,
        maxInputTokens: options.maxInputTokens,
      });
      const notes = [`${trace.requests.length} requests`];
      if (options.maxInputTokens !== undefined) notes.push(`prompts cut to ${options.maxInputTokens} tokens: ${trace.truncated}`);
      if (options.maxOutputTokens !== undefined) notes.push(`max_tokens <= ${options.maxOutputTokens}`);
      return { name: `mooncake:${basename(rest)}(${notes.join(', ')})`, requests: trace.requests };
    }
    default: {
      if (spec.endsWith('.jsonl')) {
        const requests = await loadJsonlWorkload(spec, { model, limit: options.requests, maxOutputTokens: options.maxOutputTokens });
        return { name: `${basename(spec)}(${requests.length} requests)`, requests };
      }
      throw new Error(`unknown workload "${spec}": expected one of ${WORKLOAD_KINDS.join(', ')}`);
    }
  }
}
