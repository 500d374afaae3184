import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { buildOpenApiDocument } from './openapi-document.ts';
import { openAiRoutes, type OpenAiOptions } from './openai-routes.ts';
import { registerPlaygroundRoutes } from './playground-page.ts';
import { registerUsageRoute } from './usage-route.ts';

/** What the front doors need: the OpenAI routes' options (the usage route takes a part of them). */
export type FrontDoorOptions = OpenAiOptions;

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
