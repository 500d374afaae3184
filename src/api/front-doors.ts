import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { Limits } from '../config/config.ts';
import type { AuthThrottle } from '../events/auth-throttle.ts';
import type { Logger } from '../shared/logger.ts';
import type { ApiKeys } from '../tasks/api-keys.ts';
import { buildOpenApiDocument } from './openapi-document.ts';
import { openAiRoutes } from './openai-routes.ts';
import { registerPlaygroundRoutes } from './playground-page.ts';
import type { TaskDispatcher } from './task-dispatcher.ts';
import { registerUsageRoute } from './usage-route.ts';

export interface FrontDoorOptions {
  readonly dispatcher: TaskDispatcher;
  readonly apiKeys: ApiKeys;
  readonly syncTimeoutMs: number;
  readonly maxBodyBytes: number;
  readonly shutdown: AbortSignal;
  readonly logger: Logger;
  readonly limits: Pick<Limits, 'maxRequestMegapixels'>;
  readonly authThrottle: AuthThrottle;
}

/** package.json sits two folders up from both src/api and dist/api. */
function version(): string {
  try {
    return String((JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown }).version ?? '0.0.0');
  } catch {
    return '0.0.0';
  }
}

/**
 * Everything beside the Runware API: the OpenAI Images API (in its own plugin scope, with its
 * multipart parser and error shape), `/openapi.json`, `/docs` and the playground's assets.
 */
export function registerFrontDoors(app: FastifyInstance, options: FrontDoorOptions): void {
  void app.register(openAiRoutes, options);
  let document: string | undefined;
  app.get('/openapi.json', async (_request, reply) => {
    document ??= JSON.stringify(buildOpenApiDocument(version()));
    return reply.header('Content-Type', 'application/json; charset=utf-8').send(document);
  });
  registerPlaygroundRoutes(app);
  registerUsageRoute(app, options);
}
