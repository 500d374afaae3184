import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, invalidApiKey } from '../errors/index.ts';
import type { AuthThrottle } from '../events/auth-throttle.ts';
import type { ApiKeys } from '../tasks/api-keys.ts';
import type { TaskDispatcher } from './task-dispatcher.ts';

export interface UsageRouteOptions {
  readonly dispatcher: TaskDispatcher;
  readonly apiKeys: ApiKeys;
  readonly authThrottle: AuthThrottle;
}

/** An ISO 8601 date or time (`2026-11-01`, `2026-11-01T12:00:00Z`) or ms since epoch; undefined when absent; NaN when bad. */
export function parseInstant(value: unknown): number | undefined {
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string') return Number.NaN;
  if (/^\d+$/.test(value)) return Number(value);
  return Date.parse(value);
}

/** Rows one usage answer lists by default, and at most: the totals never depend on it. */
const USAGE_ROWS_DEFAULT = 1_000;
const USAGE_ROWS_MAX = 10_000;

function send(reply: FastifyReply, error: ApiError): FastifyReply {
  return reply.code(error.status).send({ errors: [error.toJSON()] });
}

/**
 * `GET /v1/usage?since=…&until=…` (docs/tenancy.md): the calling key's own usage ledger, one row
 * per charged image, with totals summed in integer micro-dollars. Authenticated with the key itself
 * (`Authorization: Bearer <key>`); another key's rows are never visible.
 */
export function registerUsageRoute(app: FastifyInstance, options: UsageRouteOptions): void {
  app.get('/v1/usage', async (request: FastifyRequest, reply: FastifyReply) => {
    const blocked = await options.authThrottle.blockedFor(request.ip);
    if (blocked > 0) return reply.header('Retry-After', String(Math.max(1, Math.ceil(blocked / 1000)))).code(429).send({ errors: [{ code: 'tooManyRequests', message: 'Too many failed authentications from this address.' }] });
    const header = request.headers.authorization;
    const key = typeof header === 'string' && /^bearer\s+/i.test(header) ? header.replace(/^bearer\s+/i, '').trim() : undefined;
    const principal = key === undefined ? undefined : await options.apiKeys.verify(key);
    if (!principal) {
      if (key !== undefined) await options.authThrottle.fail(request.ip);
      return send(reply, invalidApiKey());
    }
    const query = (request.query ?? {}) as Record<string, unknown>;
    const since = parseInstant(query.since);
    const until = parseInstant(query.until);
    for (const [parameter, value] of [['since', since], ['until', until]] as const) {
      if (value !== undefined && !Number.isFinite(value)) {
        return send(reply, new ApiError('invalidParameter', `Invalid value for '${parameter}' parameter. Use an ISO 8601 date or time, or ms since the epoch.`, { parameter }));
      }
    }
    // Rows are listed up to `limit` (the oldest first); the totals always cover the whole range.
    const limit = query.limit === undefined ? USAGE_ROWS_DEFAULT : Number(query.limit);
    if (!Number.isInteger(limit) || limit < 0 || limit > USAGE_ROWS_MAX) {
      return send(reply, new ApiError('invalidParameter', `Invalid value for 'limit' parameter. Use an integer from 0 to ${USAGE_ROWS_MAX}.`, { parameter: 'limit', min: 0, max: USAGE_ROWS_MAX }));
    }
    const report = await options.dispatcher.usage(
      { apiKeyId: principal.apiKeyId },
      { ...(since === undefined ? {} : { since }), ...(until === undefined ? {} : { until }), limit },
    );
    return reply.header('Cache-Control', 'no-store').send(report);
  });
}
