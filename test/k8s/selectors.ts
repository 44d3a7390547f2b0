// Label and field selectors as the Kubernetes API server parses them (k8s.io/apimachinery/pkg/labels and
// pkg/fields): comma-separated requirements, all of which must hold. Label requirements: `k`, `!k`, `k=v`, `k==v`,
// `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k>n`, `k<n`. Field requirements: `f=v`, `f==v`, `f!=v`.

export class SelectorError extends Error {}

export type Labels = Readonly<Record<string, string>> | undefined;

type LabelRequirement =
  | { op: 'exists' | 'notexists'; key: string }
  | { op: 'in' | 'notin'; key: string; values: string[] }
  | { op: 'gt' | 'lt'; key: string; value: number };

export type LabelSelector = (labels: Labels) => boolean;
export type FieldSelector = (fields: (name: string) => string | undefined) => boolean;

/** Splits on commas that are not inside parentheses. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '(') depth++;
    else if (s[i] === ')') depth--;
    else if (s[i] === ',' && depth === 0) {
      out.push(s.slice(start, i));
      start = i + 1;
    }
  }
  out.push(s.slice(start));
  return out.map((p) => p.trim()).filter((p) => p !== '');
}

const KEY = /^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?\/)?[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$/;
const VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function checkKey(k: string): string {
  if (!KEY.test(k)) throw new SelectorError(`invalid label key "${k}"`);
  return k;
}

function checkValue(v: string): string {
  if (v.length > 63 || !VALUE.test(v)) throw new SelectorError(`invalid label value: "${v}"`);
  return v;
}

function parseLabelRequirement(p: string): LabelRequirement {
  let m = /^!\s*(\S+)$/.exec(p);
  if (m) return { op: 'notexists', key: checkKey(m[1]) };
  m = /^(\S+?)\s+(in|notin)\s*\(([^)]*)\)$/.exec(p);
  if (m) {
    const values = m[3]
      .split(',')
      .map((v) => v.trim())
      .map(checkValue);
    return { op: m[2] as 'in' | 'notin', key: checkKey(m[1]), values };
  }
  m = /^([^=!<>\s]+)\s*(==|=|!=|>|<)\s*(.*)$/.exec(p);
  if (m) {
    const key = checkKey(m[1]);
    const v = m[3].trim();
    if (m[2] === '>' || m[2] === '<') {
      if (!/^-?\d+$/.test(v)) throw new SelectorError(`invalid integer value for ${m[2]}: "${v}"`);
      return { op: m[2] === '>' ? 'gt' : 'lt', key, value: Number(v) };
    }
    return { op: m[2] === '!=' ? 'notin' : 'in', key, values: [checkValue(v)] };
  }
  if (/^\S+$/.test(p)) return { op: 'exists', key: checkKey(p) };
  throw new SelectorError(`unable to parse requirement: "${p}"`);
}

function matchLabel(r: LabelRequirement, labels: Labels): boolean {
  const has = labels !== undefined && Object.hasOwn(labels, r.key);
  const v = has ? labels[r.key] : undefined;
  switch (r.op) {
    case 'exists':
      return has;
    case 'notexists':
      return !has;
    case 'in':
      return has && r.values.includes(v as string);
    case 'notin':
      return !has || !r.values.includes(v as string);
    case 'gt':
    case 'lt': {
      if (!has || !/^-?\d+$/.test(v as string)) return false;
      return r.op === 'gt' ? Number(v) > r.value : Number(v) < r.value;
    }
  }
}

/** Parses a `labelSelector` query value; an empty one selects everything. Throws SelectorError. */
export function parseLabelSelector(s: string | null | undefined): LabelSelector {
  const reqs = splitTop(s ?? '').map(parseLabelRequirement);
  return (labels) => reqs.every((r) => matchLabel(r, labels));
}

/**
 * Parses a `fieldSelector` query value against the fields a resource supports. Throws SelectorError for syntax and
 * for an unsupported field (the API server's `field label not supported`).
 */
export function parseFieldSelector(s: string | null | undefined, supported: ReadonlySet<string>): FieldSelector {
  const reqs = splitTop(s ?? '').map((p) => {
    const m = /^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/.exec(p);
    if (!m) throw new SelectorError(`invalid selector: '${p}'; can't understand '${p}'`);
    if (!supported.has(m[1])) throw new SelectorError(`field label not supported: ${m[1]}`);
    return { field: m[1], negate: m[2] === '!=', value: m[3].trim() };
  });
  return (fields) => reqs.every((r) => (fields(r.field) === r.value) !== r.negate);
}

/** The `metadata.name=` value of a field selector, if it pins one name (watch of a single object). */
export function pinnedName(s: string | null | undefined): string | undefined {
  for (const p of splitTop(s ?? '')) {
    const m = /^metadata\.name\s*==?\s*(.*)$/.exec(p);
    if (m) return m[1].trim();
  }
  return undefined;
}
