// Just enough DER to slice a CSR into the exact bytes that were signed (CertificationRequestInfo) and the exact
// SubjectPublicKeyInfo, so node:crypto can verify them as sent. forge re-encodes what it parses, which is fine for
// its own check but is not "the bytes the client signed"; this reader never re-encodes anything.

/** One DER element: its tag byte, its full encoding and its contents. */
export interface Tlv {
  tag: number;
  /** Tag, length and contents. */
  raw: Buffer;
  contents: Buffer;
}

/** Reads the element at `offset`; throws on anything that is not definite-length DER (no indefinite lengths). */
export function readTlv(buf: Buffer, offset = 0): Tlv {
  if (offset + 2 > buf.length) throw new Error('truncated DER element');
  const tag = buf[offset];
  // Multi-byte tags (low five bits all set) never appear in the structures read here.
  if ((tag & 0x1f) === 0x1f) throw new Error('unsupported multi-byte DER tag');
  let length = buf[offset + 1];
  let header = 2;
  if (length === 0x80) throw new Error('indefinite length is not DER');
  if (length > 0x80) {
    const count = length & 0x7f;
    if (count > 4 || offset + 2 + count > buf.length) throw new Error('bad DER length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + buf[offset + 2 + i];
    header += count;
    // DER: the shortest length form, and no leading zero octet.
    if (length < 0x80 || buf[offset + 2] === 0) throw new Error('non-minimal DER length');
  }
  const end = offset + header + length;
  if (end > buf.length) throw new Error('truncated DER element');
  return { tag, raw: buf.subarray(offset, end), contents: buf.subarray(offset + header, end) };
}

/** The elements inside a constructed element's contents, which they must fill exactly. */
export function readChildren(contents: Buffer): Tlv[] {
  const children: Tlv[] = [];
  let offset = 0;
  while (offset < contents.length) {
    const child = readTlv(contents, offset);
    children.push(child);
    offset += child.raw.length;
  }
  return children;
}

/** The contents of the one element in `buf` (nothing may follow it), checking its tag. */
export function readOnly(buf: Buffer, tag: number): Tlv {
  const tlv = readTlv(buf, 0);
  if (tlv.raw.length !== buf.length) throw new Error('data after the DER element');
  if (tlv.tag !== tag) throw new Error(`expected DER tag 0x${tag.toString(16)}, found 0x${tlv.tag.toString(16)}`);
  return tlv;
}

export const DerTag = {
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  NULL: 0x05,
  OID: 0x06,
  SEQUENCE: 0x30,
  /** [0] constructed: the attributes of a CertificationRequestInfo. */
  CONTEXT_0: 0xa0,
} as const;

/** Dotted form of an OBJECT IDENTIFIER's contents. */
export function oidToString(contents: Buffer): string {
  if (contents.length === 0) throw new Error('empty OID');
  const parts: number[] = [];
  let value = 0;
  for (let i = 0; i < contents.length; i++) {
    const byte = contents[i];
    if (value === 0 && byte === 0x80) throw new Error('non-minimal OID arc');
    value = value * 128 + (byte & 0x7f);
    if (value > Number.MAX_SAFE_INTEGER) throw new Error('OID arc too large');
    if ((byte & 0x80) === 0) {
      if (parts.length === 0) {
        const first = value < 80 ? Math.floor(value / 40) : 2;
        parts.push(first, value - first * 40);
      } else {
        parts.push(value);
      }
      value = 0;
    } else if (i === contents.length - 1) {
      throw new Error('truncated OID');
    }
  }
  return parts.join('.');
}

/** PEM blocks of `text` in order: label and DER. Text between blocks is ignored (as OpenSSL does). */
export function pemBlocks(text: string): { label: string; der: Buffer }[] {
  const blocks: { label: string; der: Buffer }[] = [];
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([^-]*)-----END ([A-Z0-9 ]+)-----/g;
  for (const m of text.matchAll(re)) {
    const body = m[2].replace(/\s+/g, '');
    // Buffer.from(…, 'base64') skips characters it does not know; a PEM body must not have any.
    if (m[1] !== m[3] || !/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0) {
      throw new Error(`malformed PEM block ${m[1]}`);
    }
    blocks.push({ label: m[1], der: Buffer.from(body, 'base64') });
  }
  return blocks;
}

export function toPem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
