#!/usr/bin/env node
import { ConfigError, loadConfig, ROLES, type Role } from './config/config.ts';
import { startKiln } from './compose.ts';
import { runKeysCommand } from './cli/keys-command.ts';

const USAGE = `Usage: kiln [serve|api|worker|keys]

  serve    everything in one process (default): API, tasks, deliveries, sweeper
  api      transports only: REST and WebSocket on /v1, images, /health, /metrics
           (needs KILN_REDIS_URL, KILN_DATABASE_URL and KILN_S3_BUCKET)
  worker   runs tasks, deliveries and the sweeper; serves only /health and /metrics
           (same services as api; KILN_QUEUE_CONCURRENCY tasks at once)
  keys     manage API keys in the store: create, list, revoke, rotate,
           rotate-webhook-secret (kiln keys help)

Settings are environment variables: see docs/configuration.md.
`;

async function run(role: Role): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env, role);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  let kiln;
  try {
    kiln = await startKiln(config);
  } catch (error) {
    // Unreachable services and the like: one clear line, no stack.
    process.stderr.write(`kiln ${role} could not start: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
  if (kiln.createdKey) {
    process.stderr.write(
      `\nKiln created an API key for you (shown once; a copy is in ${config.dataDir}/api-key.txt):\n\n  ${kiln.createdKey}\n\n` +
        `Use it as "Authorization: Bearer <key>" over REST or in an authentication task over WebSocket.\n\n`,
    );
  }
  let signals = 0;
  const stop = (signal: string): void => {
    signals++;
    if (signals > 1) {
      process.stderr.write(`second ${signal}: exiting now\n`);
      process.exit(1);
    }
    kiln.close(config.shutdownDrainMs).then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`shutdown failed: ${String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

const command = process.argv[2] ?? 'serve';
if ((ROLES as readonly string[]).includes(command)) {
  await run(command as Role);
} else if (command === 'keys') {
  const code = await runKeysCommand(process.argv.slice(3), {
    env: process.env,
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
  });
  process.exit(code);
} else if (command === 'help' || command === '--help' || command === '-h') {
  process.stdout.write(USAGE);
} else {
  process.stderr.write(`unknown command '${command}'.\n${USAGE}`);
  process.exit(2);
}
