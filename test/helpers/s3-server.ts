/**
 * A real S3-compatible server (s3rver) on 127.0.0.1, port 0, with its data in a fresh temp
 * directory and one bucket made before it listens. For the S3 adapter's conformance suite and
 * for end-to-end tests that run Kiln (or give it an upload URL) against S3.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GetObjectCommand, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import S3rver from 's3rver';

/** s3rver checks signatures against this key pair. */
const ACCESS_KEY = 'S3RVER';
const REGION = 'us-east-1';

export interface S3Server {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  readonly bucket: string;
  /**
   * What a Kiln child process needs to keep its objects in this server's bucket: `KILN_S3_*`,
   * the AWS key pair s3rver accepts, and the SDK's Node-version notice turned off.
   */
  readonly env: Readonly<Record<string, string>>;
  /** A URL that accepts one plain HTTP PUT of an object under `key` (valid for an hour). */
  presignedPutUrl(key: string): Promise<string>;
  /** The object's bytes as stored, or `undefined` when there is none. */
  getObject(key: string): Promise<Buffer | undefined>;
  /** Stops the server (ending open sockets) and removes its directory. */
  close(): Promise<void>;
}

/** Starts s3rver on 127.0.0.1 (port 0, silent) with `bucket` (default `kiln-test`) already made. */
export async function startS3Server(bucket = 'kiln-test'): Promise<S3Server> {
  const directory = await mkdtemp(path.join(tmpdir(), 'kiln-s3rver-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: bucket }],
  });
  let address;
  try {
    address = await server.run();
  } catch (error) {
    await rm(directory, { recursive: true, force: true });
    throw error;
  }
  const endpoint = `http://127.0.0.1:${address.port}`;
  const client = new S3Client({
    region: REGION,
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: ACCESS_KEY },
    // With the default (WHEN_SUPPORTED) a presigned PUT URL carries the CRC32 of an empty body,
    // and any real upload to it fails the checksum.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });

  return {
    endpoint,
    bucket,
    env: {
      KILN_S3_BUCKET: bucket,
      KILN_S3_ENDPOINT: endpoint,
      KILN_S3_REGION: REGION,
      KILN_S3_FORCE_PATH_STYLE: 'true',
      AWS_ACCESS_KEY_ID: ACCESS_KEY,
      AWS_SECRET_ACCESS_KEY: ACCESS_KEY,
      // The SDK prints a multi-line notice on Node < 22 at its first client; keep child logs clean.
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    },
    presignedPutUrl: (key) => getSignedUrl(client, new PutObjectCommand({ Bucket: bucket, Key: key }), { expiresIn: 3600 }),
    async getObject(key) {
      try {
        const output = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        const bytes = await output.Body?.transformToByteArray();
        return bytes ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) : undefined;
      } catch (error) {
        if (error instanceof S3ServiceException && error.name === 'NoSuchKey') return undefined;
        throw error;
      }
    },
    async close() {
      client.destroy();
      // close() waits for every connection to end; a keep-alive socket of some client would hold it.
      const closed = server.close();
      server.httpServer?.closeAllConnections();
      await closed;
      await rm(directory, { recursive: true, force: true });
    },
  };
}
