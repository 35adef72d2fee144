// Label and field selectors as the API server reads them from list and watch requests, for the
// in-memory API server: equality, inequality, existence and set-based label terms; field selectors on
// metadata.name and metadata.namespace, the only fields every resource supports.

interface LabelTerm {
  key: string;
  op: 'in' | 'notin' | 'exists' | 'notexists';
  values: string[];
}

export interface Selector {
  matches(obj: { metadata?: { name?: string; namespace?: string; labels?: Record<string, string> } }): boolean;
}

/** Splits on commas outside parentheses: `a in (x,y),b` is two terms. */
function terms(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')') depth--;
    else if (text[i] === ',' && depth === 0) {
      out.push(text.slice(start, i));
      start = i + 1;
    }
  }
  out.push(text.slice(start));
  return out.map((t) => t.trim()).filter((t) => t !== '');
}

const KEY = /^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$/;

function labelTerm(term: string): LabelTerm {
  const key = (k: string) => {
    if (!KEY.test(k)) throw new Error(`unable to parse requirement: invalid label key "${k}"`);
    return k;
  };
  let m = /^!\s*(\S+)$/.exec(term);
  if (m) return { key: key(m[1]!), op: 'notexists', values: [] };
  m = /^(\S+?)\s*(==|=|!=)\s*(\S*)$/.exec(term);
  if (m) return { key: key(m[1]!), op: m[2] === '!=' ? 'notin' : 'in', values: [m[3]!] };
  m = /^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(term);
  if (m) return { key: key(m[1]!), op: m[2] as 'in' | 'notin', values: m[3]!.split(',').map((v) => v.trim()) };
  return { key: key(term), op: 'exists', values: [] };
}

/** Parses a label selector; a malformed one throws with the API server's wording. */
export function labelSelector(text: string | undefined): Selector {
  const reqs = terms(text ?? '').map(labelTerm);
  return {
    matches: (obj) => {
      const labels = obj.metadata?.labels ?? {};
      return reqs.every((r) => {
        const has = Object.hasOwn(labels, r.key);
        switch (r.op) {
          case 'exists':
            return has;
          case 'notexists':
            return !has;
          case 'in':
            return has && r.values.includes(labels[r.key]!);
          case 'notin':
            return !has || !r.values.includes(labels[r.key]!);
        }
      });
    },
  };
}

/** Parses a field selector on metadata.name or metadata.namespace; any other field throws. */
export function fieldSelector(text: string | undefined): Selector {
  const reqs = terms(text ?? '').map((term) => {
    const m = /^([^=!]+?)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (!m) throw new Error(`invalid field selector: "${term}"`);
    const field = m[1]!;
    if (field !== 'metadata.name' && field !== 'metadata.namespace') throw new Error(`field label not supported: ${field}`);
    return { field: field === 'metadata.name' ? ('name' as const) : ('namespace' as const), equal: m[2] !== '!=', value: m[3]! };
  });
  return { matches: (obj) => reqs.every((r) => ((obj.metadata?.[r.field] ?? '') === r.value) === r.equal) };
}
