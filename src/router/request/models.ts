// The InferenceModels a pool routes (the config file's `models`): which model names it accepts, the
// model each one runs (a weighted draw among its target models), and its priority. A target other
// than the pool's base model (--model) is a LoRA adapter the server loads by that name.

/** One entry of the config's `models` (the shape of EndpointPickerConfig's models items). */
export interface ModelSpec {
  modelName: string;
  criticality?: 'Critical' | 'Standard' | 'Sheddable';
  priority?: number;
  targetModels?: ReadonlyArray<{ name: string; weight?: number }>;
}

export interface ResolvedModel {
  targetModel: string;
  /** Higher first; below 0 the request is sheddable. */
  priority: number;
  /** Set when targetModel is an adapter rather than the base model. */
  loraName?: string;
}

/** GIE's order: Critical above Standard above Sheddable, and only Sheddable (below 0) may be shed. */
const CRITICALITY_PRIORITY = { Critical: 1, Standard: 0, Sheddable: -1 } as const;

interface Entry {
  priority: number;
  targets: ReadonlyArray<{ name: string; weight: number }>;
  totalWeight: number;
}

export interface ModelTableOptions {
  /** The pool's base model (--model); other target models are LoRA adapters. */
  baseModel?: string;
  /** [0, 1) source for the weighted draw; Math.random unless a test passes a seeded one. */
  random?: () => number;
}

export class ModelTable {
  private readonly entries = new Map<string, Entry>();
  private readonly baseModel: string | undefined;
  private readonly random: () => number;

  constructor(models: readonly ModelSpec[] = [], options: ModelTableOptions = {}) {
    this.baseModel = options.baseModel || undefined;
    this.random = options.random ?? Math.random;
    for (const m of models) {
      // Targets without a weight count 1 each (GIE: all weighted or none); no targets means the name itself.
      const targets = (m.targetModels?.length ? m.targetModels : [{ name: m.modelName }]).map((t) => ({
        name: t.name,
        weight: t.weight ?? 1,
      }));
      const totalWeight = targets.reduce((sum, t) => sum + Math.max(0, t.weight), 0);
      this.entries.set(m.modelName, {
        priority: m.priority ?? CRITICALITY_PRIORITY[m.criticality ?? 'Standard'],
        targets,
        totalWeight,
      });
    }
  }

  /** Number of configured models; 0 means every model name passes through unchanged. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * The model to run for a request naming `model`, with its priority; null when the table lists
   * models and this is neither one of them nor the pool's base model (the caller answers 404).
   */
  resolve(model: string): ResolvedModel | null {
    if (this.entries.size === 0) return this.withLora({ targetModel: model, priority: 0 });
    const entry = this.entries.get(model);
    // The pool serves its base model whatever InferenceModels alias it or its adapters.
    if (!entry) return model === this.baseModel ? { targetModel: model, priority: 0 } : null;
    return this.withLora({ targetModel: this.draw(entry), priority: entry.priority });
  }

  private draw(entry: Entry): string {
    const { targets, totalWeight } = entry;
    // All weights 0: nothing to prefer, so every target is equally likely.
    if (totalWeight <= 0) return targets[Math.min(targets.length - 1, Math.floor(this.random() * targets.length))]!.name;
    let left = this.random() * totalWeight;
    for (const t of targets) {
      const w = Math.max(0, t.weight);
      if (left < w) return t.name;
      left -= w;
    }
    // Only reached through rounding at the top of the range: the last target with weight.
    return [...targets].reverse().find((t) => t.weight > 0)!.name;
  }

  private withLora(resolved: ResolvedModel): ResolvedModel {
    if (this.baseModel !== undefined && resolved.targetModel !== this.baseModel) return { ...resolved, loraName: resolved.targetModel };
    return resolved;
  }
}
