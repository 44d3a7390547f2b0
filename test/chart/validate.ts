// Offline validation of rendered Kubernetes objects, as strict as an API server's `--validate=strict`:
// - the Kubernetes OpenAPI schemas, compiled to validators by kubernetes-models (types, formats such as quantities,
//   required fields, enums) and its Gateway API models for Gateway API kinds;
// - unknown fields, which those validators let through: every key must be a field of its type in
//   @kubernetes/client-node's model metadata (the same OpenAPI spec), so a typo such as `timeoutSecond` fails;
// - for CustomResourceDefinitions, the rules of a structural schema (apiextensions.k8s.io/v1 refuses the rest).
import * as k8s from '@kubernetes/client-node';

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}

interface Validatable {
  validate(): void;
}
type ModelClass = new (data: unknown) => Validatable;

const GATEWAY_API_GROUPS = new Set(['gateway.networking.k8s.io', 'gateway.networking.x-k8s.io']);

/** The kubernetes-models class of an apiVersion and kind, or undefined when the package has none. */
async function modelOf(apiVersion: string, kind: string): Promise<ModelClass | undefined> {
  const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '';
  const pkg = GATEWAY_API_GROUPS.has(group) ? '@kubernetes-models/gateway-api' : 'kubernetes-models';
  try {
    const mod = (await import(`${pkg}/${apiVersion}/${kind}`)) as Record<string, ModelClass>;
    return mod[kind];
  } catch {
    return undefined;
  }
}

interface Attribute {
  baseName: string;
  type: string;
}
type ClientModel = { getAttributeTypeMap(): Attribute[] };
const clientModels = k8s as unknown as Record<string, ClientModel | undefined>;

const SCALARS = new Set(['string', 'number', 'boolean', 'Date', 'any', 'object', 'IntOrString']);

/** Paths of keys that are not fields of their type, walking client-node's model metadata from `type`. */
export function unknownFields(value: unknown, type: string, path = ''): string[] {
  if (value === null || value === undefined || SCALARS.has(type)) return [];
  const array = /^Array<(.+)>$/.exec(type);
  if (array) return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(v, array[1], `${path}[${i}]`)) : [];
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map)
    return typeof value === 'object'
      ? Object.entries(value).flatMap(([k, v]) => unknownFields(v, map[1], `${path}.${k}`))
      : [];
  const model = clientModels[type];
  if (!model?.getAttributeTypeMap) throw new Error(`no model metadata for type ${type} (at ${path || '.'})`);
  if (typeof value !== 'object' || Array.isArray(value)) return [];
  const fields = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  return Object.entries(value).flatMap(([k, v]) => {
    const t = fields.get(k);
    return t === undefined ? [`${path}.${k}`] : unknownFields(v, t, `${path}.${k}`);
  });
}

/** client-node's type name of a built-in kind: apps/v1 Deployment -> V1Deployment. */
function clientTypeOf(apiVersion: string, kind: string): string | undefined {
  const version = apiVersion.slice(apiVersion.indexOf('/') + 1);
  const name = `${version[0].toUpperCase()}${version.slice(1)}${kind}`;
  return clientModels[name]?.getAttributeTypeMap ? name : undefined;
}

/**
 * Every problem of one object, as readable strings (empty when it is valid). An object of a kind neither package
 * knows is itself a problem: the chart renders nothing that cannot be checked.
 */
export async function validateObject(obj: KubeObject): Promise<string[]> {
  const where = `${obj.kind}/${obj.metadata?.name}`;
  const problems: string[] = [];
  const Model = await modelOf(obj.apiVersion, obj.kind);
  if (!Model) return [`${where}: no schema for ${obj.apiVersion} ${obj.kind}`];
  try {
    new Model(obj).validate();
  } catch (e) {
    problems.push(`${where}: ${(e as Error).message}`);
  }
  const type = clientTypeOf(obj.apiVersion, obj.kind);
  // Gateway API kinds have no client-node model: their fields are checked by the CRD-derived validator only.
  if (type) for (const p of unknownFields(obj, type)) problems.push(`${where}: unknown field ${p}`);
  if (obj.kind === 'CustomResourceDefinition') problems.push(...crdProblems(obj).map((p) => `${where}: ${p}`));
  return problems;
}

type Schema = Record<string, unknown>;

/** The structural-schema rules of apiextensions.k8s.io/v1, for every version of a CRD, plus its basic invariants. */
export function crdProblems(crd: KubeObject): string[] {
  const spec = crd.spec as {
    group: string;
    names: { plural: string };
    versions: { name: string; served: boolean; storage: boolean; schema?: { openAPIV3Schema?: Schema } }[];
  };
  const problems: string[] = [];
  if (crd.metadata.name !== `${spec.names.plural}.${spec.group}`)
    problems.push(`metadata.name must be ${spec.names.plural}.${spec.group}`);
  if (spec.versions.filter((v) => v.storage).length !== 1) problems.push('exactly one version must be the storage one');
  for (const v of spec.versions) {
    const root = v.schema?.openAPIV3Schema;
    if (!root) {
      problems.push(`version ${v.name}: no openAPIV3Schema`);
      continue;
    }
    if (root.type !== 'object') problems.push(`version ${v.name}: the root schema must be of type object`);
    problems.push(...structuralProblems(root, v.name, 'field'));
    // metadata may only restrict name and generateName.
    const meta = (root.properties as Record<string, Schema> | undefined)?.metadata;
    const extra = Object.keys(meta?.properties ?? {}).filter((k) => k !== 'name' && k !== 'generateName');
    if (meta && (extra.length > 0 || meta.type !== 'object'))
      problems.push(`${v.name}.metadata: only type object and constraints on name and generateName are allowed`);
  }
  return problems;
}

// Keywords a schema inside allOf/anyOf/oneOf/not may not use (they would make the structure ambiguous).
const NOT_IN_JUNCTORS = [
  'type',
  'properties',
  'additionalProperties',
  'items',
  'default',
  'description',
  'nullable',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-int-or-string',
  'x-kubernetes-embedded-resource',
];

const intOrStringBranch = (parent: Schema, junctor: string, sub: Schema) =>
  parent['x-kubernetes-int-or-string'] === true &&
  junctor !== 'oneOf' &&
  Object.keys(sub).length === 1 &&
  (sub.type === 'integer' || sub.type === 'string');

function structuralProblems(s: Schema, path: string, place: 'field' | 'junctor'): string[] {
  const out: string[] = [];
  const has = (k: string) => s[k] !== undefined;
  if (has('$ref')) out.push(`${path}: $ref is not allowed`);
  if (s.uniqueItems === true) out.push(`${path}: uniqueItems: true is not allowed`);
  if (s.additionalProperties === false) out.push(`${path}: additionalProperties: false is not allowed`);
  if (has('additionalProperties') && has('properties'))
    out.push(`${path}: properties and additionalProperties exclude each other`);
  if (place === 'junctor') {
    for (const k of NOT_IN_JUNCTORS) if (has(k)) out.push(`${path}: ${k} is not allowed inside allOf/anyOf/oneOf/not`);
  } else {
    const intOrString = s['x-kubernetes-int-or-string'] === true;
    const preserve = s['x-kubernetes-preserve-unknown-fields'] === true;
    if (intOrString && has('type')) out.push(`${path}: x-kubernetes-int-or-string needs an empty type`);
    if (!intOrString && !preserve && typeof s.type !== 'string') out.push(`${path}: a type is required`);
    if (s.type === 'array' && !has('items')) out.push(`${path}: an array needs items`);
  }
  const props = (s.properties ?? {}) as Record<string, Schema>;
  for (const [k, v] of Object.entries(props)) out.push(...structuralProblems(v, `${path}.${k}`, place));
  if (typeof s.additionalProperties === 'object')
    out.push(...structuralProblems(s.additionalProperties as Schema, `${path}[*]`, place));
  if (typeof s.items === 'object' && !Array.isArray(s.items))
    out.push(...structuralProblems(s.items as Schema, `${path}[]`, place));
  else if (Array.isArray(s.items)) out.push(`${path}: items must be one schema, not a list`);
  for (const j of ['allOf', 'anyOf', 'oneOf'])
    for (const [i, sub] of ((s[j] ?? []) as Schema[]).entries()) {
      // The one exception: int-or-string may spell itself out as anyOf/allOf [{type: integer}, {type: string}].
      if (intOrStringBranch(s, j, sub)) continue;
      out.push(...structuralProblems(sub, `${path}.${j}[${i}]`, 'junctor'));
    }
  if (has('not')) out.push(...structuralProblems(s.not as Schema, `${path}.not`, 'junctor'));
  return out;
}
