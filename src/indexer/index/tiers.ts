// Storage tiers as small ints: vLLM's event `medium` (null means GPU) normalized to a lowercase tier
// name, and the weight each tier contributes to a score. Defaults: gpu 1.0, cpu 0.8, disk 0.5; a tier
// not configured weighs UNKNOWN_TIER_WEIGHT, below cpu, since it is some slower offload medium.

const DEFAULT_TIER_WEIGHTS: Readonly<Record<string, number>> = Object.freeze({ gpu: 1.0, cpu: 0.8, disk: 0.5 });
const UNKNOWN_TIER_WEIGHT = 0.5;
const MAX_TIERS = 255;

/** The tier name for an event's medium: null and "GPU" are gpu; other names are lowercased. */
function tierName(medium: string | null): string {
  return medium === null || medium === '' ? 'gpu' : medium.toLowerCase();
}

export class Tiers {
  private readonly ids = new Map<string, number>();
  readonly names: string[] = [];
  /** Weight by tier id. */
  weights = new Float64Array(8);
  private readonly configured: Record<string, number>;

  constructor(weights: Record<string, number> = {}) {
    const merged: Record<string, number> = { ...DEFAULT_TIER_WEIGHTS };
    for (const [name, w] of Object.entries(weights)) {
      if (!Number.isFinite(w) || w < 0) throw new Error(`tierWeights.${name} must be a finite number >= 0, got ${w}`);
      merged[name.toLowerCase()] = w;
    }
    this.configured = merged;
    for (const name of Object.keys(merged)) this.idOfName(name);
  }

  /** The tier id for an event's medium, registering new tiers on first sight; -1 once 255 tiers exist. */
  idOf(medium: string | null): number {
    const name = tierName(medium);
    const known = this.ids.get(name);
    if (known !== undefined) return known;
    return this.names.length >= MAX_TIERS ? -1 : this.idOfName(name);
  }

  /** The id of a tier seen before, or -1. */
  existing(medium: string | null): number {
    return this.ids.get(tierName(medium)) ?? -1;
  }

  private idOfName(name: string): number {
    const known = this.ids.get(name);
    if (known !== undefined) return known;
    if (this.names.length >= MAX_TIERS) throw new Error(`more than ${MAX_TIERS} distinct storage media; refusing medium "${name}"`);
    const id = this.names.length;
    this.names.push(name);
    this.ids.set(name, id);
    if (id >= this.weights.length) {
      const next = new Float64Array(this.weights.length * 2);
      next.set(this.weights);
      this.weights = next;
    }
    this.weights[id] = this.configured[name] ?? UNKNOWN_TIER_WEIGHT;
    return id;
  }
}
