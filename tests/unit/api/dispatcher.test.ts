import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { COMMAND_NAMES, commands } from '../../../native/api/contract.js';
import { createDispatcher, type Handlers } from '../../../native/api/dispatcher.js';
import { Engine } from '../../../native/engine/engine.js';
import { createEngineDispatcher } from '../../../native/engine/handlers.js';
import { tmpDir } from '../../helpers/tmp.js';

/** A value of the wrong type for any field schema: a nested object is never a string, number, boolean or array. */
const WRONG = { not: 'what this field takes' };

interface Def {
  type: string;
  format?: string;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  innerType?: z.ZodType;
  options?: z.ZodType[];
  items?: z.ZodType[];
  entries?: Record<string, string>;
  values?: unknown[];
}
const defOf = (s: z.ZodType) => (s as unknown as { _zod: { def: Def } })._zod.def;

/** A valid value for a schema (enough for validation to pass it), built from the schema itself. */
function sample(s: z.ZodType): unknown {
  const d = defOf(s);
  switch (d.type) {
    case 'string':
      return 'x';
    case 'number':
    case 'int':
      // Integers: 2 meets every required minimum (ids, indices, cluster counts); other numbers: 0.5 fits
      // thresholds in [-1, 1] and positive rates.
      return d.format === 'safeint' || d.type === 'int' ? 2 : 0.5;
    case 'boolean':
      return true;
    case 'literal':
      return d.values?.[0];
    case 'enum':
      return Object.values(d.entries ?? {})[0];
    case 'array':
      return [sample(d.element as z.ZodType), sample(d.element as z.ZodType)];
    case 'tuple':
      return (d.items ?? []).map(sample);
    case 'optional':
    case 'default':
    case 'nullable':
      return sample(d.innerType as z.ZodType);
    case 'union':
      return sample((d.options ?? [])[0] as z.ZodType);
    case 'object': {
      const o: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(d.shape ?? {})) if (defOf(v).type !== 'optional') o[k] = sample(v);
      return o;
    }
    default:
      return null;
  }
}

/** Valid values for the required fields, so an error is about the field under test alone. */
function fillOthers(name: (typeof COMMAND_NAMES)[number], except?: string): Record<string, unknown> {
  const schema = commands[name].args as z.ZodObject;
  const args: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema.shape)) {
    if (k === except || defOf(v as z.ZodType).type === 'optional' || defOf(v as z.ZodType).type === 'default') continue;
    args[k] = sample(v as z.ZodType);
  }
  return args;
}

describe('dispatcher', () => {
  const engine = new Engine({ home: tmpDir() });
  const dispatcher = createEngineDispatcher(engine);

  it('rejects an unknown command with UNKNOWN_COMMAND', async () => {
    const r = await dispatcher.dispatch('no.such.command', {});
    expect(r).toMatchObject({ ok: false, error: { code: 'UNKNOWN_COMMAND' } });
  });

  it.each(COMMAND_NAMES)('%s: an unknown argument is a validation error naming it', async (name) => {
    const r = await dispatcher.dispatch(name, { ...fillOthers(name), bogusField: 1 });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe('INVALID_ARGUMENT');
      expect(r.error.field).toBe('bogusField');
      expect(r.error.message).toContain('bogusField');
    }
  });

  const fieldCases = COMMAND_NAMES.flatMap((name) => {
    const schema = commands[name].args as z.ZodObject;
    return Object.keys(schema.shape).map((field) => [name, field] as const);
  });

  it.each(fieldCases)('%s: a wrong-typed "%s" is a validation error naming the field', async (name, field) => {
    const args = { ...fillOthers(name, field), [field]: WRONG };
    const r = await dispatcher.dispatch(name, args);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe('INVALID_ARGUMENT');
      // A nested schema names the inner field that failed (sampling.policy, init.kind).
      expect(r.error.field === field || r.error.field?.startsWith(`${field}.`)).toBe(true);
      expect(r.error.message).toContain(`"${field}`);
    }
  });

  it('names nested fields with their path', async () => {
    const r = await dispatcher.dispatch('jobs.list', { states: ['running', 'sleeping'] });
    expect(r).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT', field: 'states[1]' } });
  });

  it('reports a missing required argument by name', async () => {
    const r = await dispatcher.dispatch('project.open', {});
    expect(r).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT', field: 'path' } });
  });

  it('runs a valid call and returns its result', async () => {
    const r = await dispatcher.dispatch('app.info', {});
    expect(r).toMatchObject({ ok: true, result: { name: 'flaneur' } });
  });

  it('turns a handler exception into an INTERNAL error instead of throwing', async () => {
    const failing = createDispatcher({
      'app.info': () => {
        throw new Error('boom');
      },
    } as unknown as Handlers);
    const r = await failing.dispatch('app.info', {});
    expect(r).toMatchObject({ ok: false, error: { code: 'INTERNAL', message: 'boom' } });
  });

  it('needs an open project for job commands', async () => {
    const r = await dispatcher.dispatch('jobs.list', {});
    expect(r).toMatchObject({ ok: false, error: { code: 'NO_PROJECT' } });
  });
});
