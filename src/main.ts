#!/usr/bin/env node
/**
 * The `kiln` command. Each command's code is imported when that command runs: the server's
 * modules and the store's drivers (about a second of loading) stay out of `kiln generate`,
 * `kiln --help` and the other client commands.
 */
import { ROLES, type Role } from './config/roles.ts';
import type { ClientIo } from './cli/client-io.ts';
import type { StoreCommandIo } from './cli/store-access.ts';

const USAGE = `Usage: kiln <command> [options]     (kiln <command> --help for its options)

Server:
  serve      everything in one process (default): API, tasks, deliveries, sweeper
  api        transports only: REST and WebSocket on /v1, images, /health, /metrics
             (needs KILN_REDIS_URL, KILN_DATABASE_URL and KILN_S3_BUCKET)
  worker     runs tasks, deliveries and the sweeper; serves only /health, /ready, /metrics
             (same services as api; KILN_QUEUE_CONCURRENCY tasks at once)
  keys       manage API keys in the store: create, list, revoke, rotate,
             rotate-webhook-secret, update (limits, budget) (kiln keys help)
  usage      the usage ledger: images and cost per key, day or model (kiln usage --help)
  deliveries the webhook and upload deliveries of a task, every attempt (kiln deliveries --help)

Client (Runware WebSocket API: a Kiln server, or the hosted one with --server):
  generate   make images from a prompt and write them to files
  batch      one task per line of a .txt or .jsonl file; resumable
  tasks      show or watch the images of a task (getResponse)

Examples:
  kiln serve
  export KILN_KEY=$(head -n1 data/api-key.txt)
  kiln generate "a lighthouse on a jade sea at dusk" --aspect 16:9 -n 2
  kiln batch prompts.txt --out renders --concurrency 4
  kiln tasks show 0b1c6a4e-5f3d-4c6e-9a9b-1f2e3d4c5b6a

Client exit codes: 0 success, 1 task errors, 2 usage, 3 server unreachable or key refused,
130 interrupted. Server settings are environment variables: see docs/configuration.md;
the client is described in docs/cli.md.
`;

type ClientCommand = (args: readonly string[], io: ClientIo) => Promise<number>;
const CLIENT_COMMANDS: Readonly<Record<string, () => Promise<ClientCommand>>> = {
  generate: async () => (await import('./cli/generate-command.ts')).runGenerateCommand,
  batch: async () => (await import('./cli/batch-command.ts')).runBatchCommand,
  tasks: async () => (await import('./cli/tasks-command.ts')).runTasksCommand,
};

/** Runs a client command with the real streams; the first Ctrl-C cancels, a second exits at once. */
async function runClient(command: ClientCommand): Promise<never> {
  const interrupt = new AbortController();
  process.on('SIGINT', () => {
    if (interrupt.signal.aborted) process.exit(130);
    interrupt.abort();
  });
  const code = await command(process.argv.slice(3), {
    env: process.env,
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
    cwd: process.cwd(),
    isTTY: process.stdout.isTTY === true,
    columns: process.stdout.columns ?? 120,
    signal: interrupt.signal,
  });
  // Let the last writes reach a pipe before exiting.
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  process.exit(code);
}

async function run(role: Role): Promise<void> {
  const [{ ConfigError, loadConfig }, { startKiln }] = await Promise.all([import('./config/config.ts'), import('./compose.ts')]);
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
        `Use it as "Authorization: Bearer <key>" over REST or in an authentication task over WebSocket;\n` +
        `for kiln generate and the examples: export KILN_KEY=$(head -n1 ${config.dataDir}/api-key.txt)\n\n`,
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

type StoreCommand = (args: readonly string[], io: StoreCommandIo) => Promise<number>;
const STORE_COMMANDS: Readonly<Record<string, () => Promise<StoreCommand>>> = {
  keys: async () => (await import('./cli/keys-command.ts')).runKeysCommand,
  usage: async () => (await import('./cli/usage-command.ts')).runUsageCommand,
  deliveries: async () => (await import('./cli/deliveries-command.ts')).runDeliveriesCommand,
};

const command = process.argv[2] ?? 'serve';
const wantsHelp = process.argv[3] === '--help' || process.argv[3] === '-h';
if ((ROLES as readonly string[]).includes(command) && wantsHelp) {
  process.stdout.write(USAGE);
} else if ((ROLES as readonly string[]).includes(command)) {
  await run(command as Role);
} else if (Object.hasOwn(STORE_COMMANDS, command)) {
  // Commands that act on the store directly, beside the server.
  const runCommand = await STORE_COMMANDS[command]!();
  const code = await runCommand(wantsHelp ? ['help'] : process.argv.slice(3), {
    env: process.env,
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
  });
  process.exit(code);
} else if (Object.hasOwn(CLIENT_COMMANDS, command)) {
  await runClient(await CLIENT_COMMANDS[command]!());
} else if (command === 'help' || command === '--help' || command === '-h') {
  process.stdout.write(USAGE);
} else {
  process.stderr.write(`unknown command '${command}'.\n${USAGE}`);
  process.exit(2);
}
