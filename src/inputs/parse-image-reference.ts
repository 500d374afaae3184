/**
 * Tells the four reference forms apart and decodes the inline ones. No I/O.
 *
 * Order matters: a UUID is checked first (it is never meant as base64), then a data URI, then
 * http(s) URLs, then anything that looks like another URL scheme (refused), and finally bare
 * base64. Base64 is validated strictly, because `Buffer.from(…, 'base64')` silently skips
 * characters it does not know and would turn garbage into bytes.
 */
import { formatBytes, ReferenceProblem } from './reference-problem.ts';

/** A reference string, classified. Inline forms are already decoded. */
export type ParsedReference =
  | { readonly kind: 'uuid'; readonly imageUUID: string }
  | { readonly kind: 'url'; readonly url: string }
  | { readonly kind: 'inline'; readonly form: 'dataUri' | 'base64'; readonly bytes: Uint8Array };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const HTTP_URL = /^https?:\/\//i;
const OTHER_SCHEME = /^[a-z][a-z0-9+.-]*:/i;
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;
const WHITESPACE = /\s+/g;
/** Media types a data URI may declare; the bytes are sniffed anyway. */
const DATA_URI_TYPES = /^(image\/[a-z0-9.+-]+|application\/octet-stream)?$/i;

export function parseImageReference(reference: string, maxBytes: number): ParsedReference {
  const text = reference.trim();
  if (text === '') throw new ReferenceProblem('invalid', 'The image reference is empty.');
  if (UUID.test(text)) return { kind: 'uuid', imageUUID: text.toLowerCase() };
  if (/^data:/i.test(text)) return { kind: 'inline', form: 'dataUri', bytes: parseDataUri(text, maxBytes) };
  if (HTTP_URL.test(text)) return { kind: 'url', url: text };
  if (OTHER_SCHEME.test(text)) {
    throw new ReferenceProblem(
      'invalid',
      'Only http and https URLs are accepted; other references must be an image UUID, a data URI or base64.',
    );
  }
  return { kind: 'inline', form: 'base64', bytes: decodeBase64(text, maxBytes, 'The value is not a UUID, a URL, a data URI or valid base64.') };
}

function parseDataUri(text: string, maxBytes: number): Uint8Array {
  const comma = text.indexOf(',');
  if (comma < 0) throw new ReferenceProblem('invalid', 'The data URI has no comma before its data.');
  const params = text.slice('data:'.length, comma).split(';').map((part) => part.trim());
  const mediaType = params[0] ?? '';
  if (params.at(-1)?.toLowerCase() !== 'base64' || params.length < 2) {
    throw new ReferenceProblem('invalid', 'The data URI must be base64-encoded (data:image/<type>;base64,…).');
  }
  if (!DATA_URI_TYPES.test(mediaType)) {
    throw new ReferenceProblem('invalid', `The data URI declares '${mediaType.slice(0, 40)}', not an image type.`);
  }
  return decodeBase64(text.slice(comma + 1), maxBytes, 'The data URI does not hold valid base64 data.');
}

function decodeBase64(text: string, maxBytes: number, malformed: string): Uint8Array {
  const compact = text.replace(WHITESPACE, '');
  // 4 characters carry 3 bytes: refuse oversized data before allocating it.
  if (Math.floor((compact.length * 3) / 4) - 2 > maxBytes) {
    throw new ReferenceProblem('invalid', `The image is larger than ${formatBytes(maxBytes)}.`);
  }
  if (compact === '' || !BASE64.test(compact) || compact.replace(/=+$/, '').length % 4 === 1) {
    throw new ReferenceProblem('invalid', malformed);
  }
  const bytes = Buffer.from(compact, 'base64');
  if (bytes.length > maxBytes) throw new ReferenceProblem('invalid', `The image is larger than ${formatBytes(maxBytes)}.`);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
