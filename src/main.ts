import { ConfigError, loadConfig } from './config/config.ts';
import { startKiln } from './compose.ts';

async function serve(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const kiln = await startKiln(config);
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
if (command === 'serve') {
  await serve();
} else {
  process.stderr.write(`unknown command '${command}'. Usage: kiln [serve]\n`);
  process.exit(2);
}
