/**
 * `npm run cluster`: a Kiln cluster to try by hand: 2 `kiln api` + 2 `kiln worker` processes on
 * the local Redis (db 14, a fresh key prefix) and PostgreSQL (a fresh database), with an s3rver
 * on loopback for the images. Prints the addresses and the key; Ctrl-C stops and removes it all.
 */
import { startCluster } from '../test/helpers/cluster.ts';
import { ensureTestBuild } from '../test/helpers/compiled-kiln.ts';
import { TEST_KEY } from '../test/helpers/kiln-server.ts';

// The AWS SDK's notice about Node < 22 (its S3 client here makes the bucket); the processes get the same setting.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
// The processes run the compiled sources (built here unless up to date), as in production.
ensureTestBuild();
const cluster = await startCluster({ env: { KILN_STUDIO_THREADS: '2', KILN_QUEUE_LOCK_SECONDS: '30', KILN_ALLOW_PRIVATE_URLS: 'false' } });
process.stdout.write(
  [
    'Kiln cluster is up.',
    ...cluster.apis.map((api, i) => `  api ${i + 1}:    ${api.url}  (REST POST /v1, WebSocket /v1)`),
    ...cluster.workers.map((worker, i) => `  worker ${i + 1}: ${worker.url}/health`),
    `  image URLs: ${cluster.env.KILN_PUBLIC_URL}/image/…`,
    `  S3:         ${cluster.s3.endpoint} bucket ${cluster.s3.bucket}`,
    `  database:   ${cluster.databaseUrl}`,
    `  redis:      ${cluster.redisUrl} (prefix ${cluster.redisPrefix})`,
    `  API key:    ${TEST_KEY}`,
    '',
    `Try: curl -s ${cluster.apis[1]!.url}/v1 -H 'Authorization: Bearer ${TEST_KEY}' -H 'Content-Type: application/json' \\`,
    `       -d '[{"taskType":"imageInference","taskUUID":"'$(uuidgen | tr A-Z a-z)'","model":"kiln:studio@1","positivePrompt":"a lighthouse at dusk","width":512,"height":512,"numberResults":2}]'`,
    'Ctrl-C stops everything and removes the database, the Redis keys and the bucket.',
    '',
  ].join('\n'),
);
let stopping = false;
const stop = (): void => {
  if (stopping) process.exit(1);
  stopping = true;
  cluster.close().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`cleanup failed: ${String(error)}\n`);
      process.exit(1);
    },
  );
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
