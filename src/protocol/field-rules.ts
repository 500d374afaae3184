import { z } from 'zod';
import { ApiError, documentationFor, type ErrorCode } from '../errors/index.ts';

/**
 * One validation rule per request field: a zod schema for the value and the Runware error the
 * field gets when the value does not fit. Runware names its codes after the field
 * (`invalidWidth`, `invalidNumberResults`, …) and sends `type`, `min`, `max` hints.
 */
export interface FieldRule<T> {
  readonly schema: z.ZodType<T>;
  readonly code: ErrorCode;
  /** Sentence after "Invalid value for '<field>' parameter." */
  readonly rule: string;
  readonly type: string;
  readonly min?: number;
  readonly max?: number;
  readonly allowedValues?: readonly string[];
}

export function fieldError(
  rule: Pick<FieldRule<unknown>, 'code' | 'rule' | 'type' | 'min' | 'max' | 'allowedValues'>,
  parameter: string,
): ApiError {
  return new ApiError(rule.code, `Invalid value for '${parameter}' parameter. ${rule.rule}`, {
    parameter,
    type: rule.type,
    documentation: documentationFor(parameter),
    ...(rule.min === undefined ? {} : { min: rule.min }),
    ...(rule.max === undefined ? {} : { max: rule.max }),
    ...(rule.allowedValues === undefined ? {} : { allowedValues: rule.allowedValues }),
  });
}

/** Checks `value` against the rule; returns the parsed value or throws the field's ApiError. */
export function check<T>(rule: FieldRule<T>, parameter: string, value: unknown): T {
  const parsed = rule.schema.safeParse(value);
  if (!parsed.success) throw fieldError(rule, parameter);
  return parsed.data;
}

export function intRule(code: ErrorCode, min: number, max: number, what = 'an integer'): FieldRule<number> {
  return {
    schema: z.number().int().min(min).max(max),
    code,
    rule: `It must be ${what} between ${min} and ${max}.`,
    type: 'integer',
    min,
    max,
  };
}

/** Case-insensitive enum that returns the canonical spelling. */
export function enumRule<const V extends string>(code: ErrorCode, values: readonly V[]): FieldRule<V> {
  const canonical = new Map(values.map((v) => [v.toLowerCase(), v]));
  return {
    schema: z
      .string()
      .transform((s, ctx) => {
        const hit = canonical.get(s.toLowerCase());
        if (hit === undefined) {
          ctx.addIssue({ code: 'custom', message: 'not allowed' });
          return z.NEVER;
        }
        return hit;
      }) as unknown as z.ZodType<V>,
    code,
    rule: `Allowed values are: ${values.map((v) => `'${v}'`).join(', ')}.`,
    type: 'string',
    allowedValues: values,
  };
}

export function boolRule(code: ErrorCode): FieldRule<boolean> {
  return { schema: z.boolean(), code, rule: 'It must be a boolean (true or false).', type: 'boolean' };
}

export function httpUrlRule(code: ErrorCode): FieldRule<string> {
  return {
    schema: z
      .string()
      .max(2048)
      .refine((s) => {
        try {
          const url = new URL(s);
          return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname.length > 0;
        } catch {
          return false;
        }
      }),
    code,
    rule: 'It must be an absolute http:// or https:// URL of at most 2048 characters.',
    type: 'string',
  };
}

export const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
