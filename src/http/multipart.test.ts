import { describe, expect, it } from 'vitest';
import { multipartLimitCheck, parseMultipart } from './multipart.ts';

/** Encodes a form the way a browser's fetch does. */
async function encode(form: FormData): Promise<{ body: Buffer; contentType: string }> {
  const request = new Request('http://localhost/', { method: 'POST', body: form });
  return {
    body: Buffer.from(await request.arrayBuffer()),
    contentType: request.headers.get('content-type') ?? '',
  };
}

const limits = { maxFileBytes: 1000, maxFiles: 3 };

describe('parseMultipart', () => {
  it('returns every file with its UTF-8 name, type and bytes, and the fields', async () => {
    // Prepare
    const form = new FormData();
    form.append('prefix', 'trip/');
    form.append('files', new Blob([new Uint8Array([1, 2, 3])], { type: 'image/jpeg' }), 'café über.jpg');
    form.append('files', new Blob([new Uint8Array(500)], { type: 'image/png' }), 'b.png');
    const { body, contentType } = await encode(form);
    // Act
    const parsed = await parseMultipart(body, contentType, limits);
    // Assess
    expect(parsed.fields).toEqual({ prefix: 'trip/' });
    expect(parsed.files.map((f) => [f.field, f.filename, f.contentType, f.body.length])).toEqual([
      ['files', 'café über.jpg', 'image/jpeg', 3],
      ['files', 'b.png', 'image/png', 500],
    ]);
    expect([...(parsed.files[0]?.body ?? [])]).toEqual([1, 2, 3]);
  });

  it('refuses a file over the size limit with 413', async () => {
    const form = new FormData();
    form.append('files', new Blob([new Uint8Array(1001)]), 'big.jpg');
    const { body, contentType } = await encode(form);
    await expect(parseMultipart(body, contentType, limits)).rejects.toMatchObject({ status: 413 });
  });

  it('refuses more files than allowed with 413', async () => {
    const form = new FormData();
    for (const name of ['1', '2', '3', '4']) form.append('files', new Blob([name]), `${name}.jpg`);
    const { body, contentType } = await encode(form);
    await expect(parseMultipart(body, contentType, limits)).rejects.toMatchObject({ status: 413 });
  });

  it('refuses a body cut off inside a file with 400, and nothing is thrown elsewhere', async () => {
    const form = new FormData();
    form.append('files', new Blob([new Uint8Array(500)]), 'cut.jpg');
    const { body, contentType } = await encode(form);
    await expect(parseMultipart(body.subarray(0, 300), contentType, limits)).rejects.toMatchObject({
      status: 400,
      message: expect.stringMatching(/Malformed multipart body/),
    });
  });

  it('refuses a body without a boundary with 400', async () => {
    await expect(parseMultipart(Buffer.from('x'), 'multipart/form-data', limits)).rejects.toMatchObject({
      status: 400,
    });
  });
});

describe('multipartLimitCheck', () => {
  it('ends quietly after a refusal, even when the rest of the file never came', async () => {
    // The local server stops writing a refused body to the check but still ends it when the body ends.
    const form = new FormData();
    form.append('files', new Blob([new Uint8Array(1500)]), 'big.jpg');
    const { body, contentType } = await encode(form);
    const refusals: Error[] = [];
    const check = multipartLimitCheck(contentType, limits, (error) => refusals.push(error));
    check.write(body.subarray(0, 1200));
    check.end();
    await new Promise((settled) => setTimeout(settled, 50));
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatchObject({ status: 413 });
  });
});
