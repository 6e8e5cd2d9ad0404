// @supabase/storage-js against a running Fluxbase: every endpoint the client calls, plus the
// TUS protocol it documents for large files (resume after a dropped connection).  Started by
// tests/storage/test_storage_js.py with STORAGE_URL, SERVICE_KEY, ANON_KEY, ALICE_TOKEN, ALICE
// and BACKEND in the environment, once per backend.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { StorageClient } from '@supabase/storage-js'

const url = process.env.STORAGE_URL
const service = new StorageClient(url, {
  apikey: process.env.ANON_KEY,
  Authorization: `Bearer ${process.env.SERVICE_KEY}`,
})
const alice = new StorageClient(url, {
  apikey: process.env.ANON_KEY,
  Authorization: `Bearer ${process.env.ALICE_TOKEN}`,
})
const anon = new StorageClient(url, { apikey: process.env.ANON_KEY })
const bucket = `js-${process.env.BACKEND}-${Date.now()}`

function ok(result) {
  assert.equal(result.error, null, result.error && `${result.error.message} (${result.error.statusCode})`)
  return result.data
}

test('buckets: create, get, list, update, empty, delete', async () => {
  assert.deepEqual(ok(await service.createBucket(bucket, { public: false })), { name: bucket })
  const got = ok(await service.getBucket(bucket))
  assert.equal(got.id, bucket)
  assert.equal(got.public, false)
  assert.ok(ok(await service.listBuckets()).some((b) => b.name === bucket))
  const other = `${bucket}-tmp`
  ok(await service.createBucket(other, { public: true, fileSizeLimit: '1MB', allowedMimeTypes: ['text/plain'] }))
  const created = ok(await service.getBucket(other))
  assert.equal(created.file_size_limit, 1024 * 1024)
  assert.deepEqual(created.allowed_mime_types, ['text/plain'])
  assert.deepEqual(ok(await service.updateBucket(other, { public: false })), { message: 'Successfully updated' })
  const duplicate = await service.createBucket(other)
  assert.equal(duplicate.error.statusCode, '409')
  ok(await service.from(other).upload('a.txt', new Blob(['x'], { type: 'text/plain' })))
  const notEmpty = await service.deleteBucket(other)
  assert.equal(notEmpty.error.statusCode, '409')
  ok(await service.emptyBucket(other))
  ok(await service.deleteBucket(other))
  const missing = await service.getBucket(other)
  assert.equal(missing.error.statusCode, '404')
})

test('objects: upload (Blob and raw), update, download, info, exists', async () => {
  const files = service.from(bucket)
  const uploaded = ok(await files.upload('folder/hello.txt', new Blob(['hello js'], { type: 'text/plain' })))
  assert.equal(uploaded.path, 'folder/hello.txt')
  assert.equal(uploaded.fullPath, `${bucket}/folder/hello.txt`)
  assert.ok(uploaded.id)
  assert.equal(await ok(await files.download('folder/hello.txt')).text(), 'hello js')
  const raw = new TextEncoder().encode('raw bytes')
  ok(await files.upload('folder/raw.bin', raw, { contentType: 'application/octet-stream', cacheControl: '60' }))
  assert.equal(await ok(await files.download('folder/raw.bin')).text(), 'raw bytes')
  const duplicate = await files.upload('folder/hello.txt', new Blob(['again']))
  assert.equal(duplicate.error.statusCode, '409')
  ok(await files.upload('folder/hello.txt', new Blob(['upserted']), { upsert: true }))
  ok(await files.update('folder/hello.txt', new Blob(['updated'], { type: 'text/markdown' })))
  assert.equal(await ok(await files.download('folder/hello.txt')).text(), 'updated')
  const info = ok(await files.info('folder/hello.txt'))
  assert.equal(info.size, 7)
  assert.equal(info.contentType, 'text/markdown')
  assert.equal(ok(await files.exists('folder/hello.txt')), true)
  const absent = await files.exists('folder/none.txt')
  assert.equal(absent.data, false)
  const withMetadata = ok(await files.upload('folder/meta.txt', new Blob(['m']), { metadata: { owner: 'js' } }))
  assert.ok(withMetadata.id)
  assert.deepEqual(ok(await files.info('folder/meta.txt')).metadata, { owner: 'js' })
})

test('list: folders as Supabase returns them, sort, search, paging', async () => {
  const files = service.from(bucket)
  for (const name of ['list/a/one.txt', 'list/a/two.txt', 'list/b.txt', 'list/c.txt']) {
    ok(await files.upload(name, new Blob([name])))
  }
  const entries = ok(await files.list('list'))
  assert.deepEqual(entries.map((e) => e.name), ['a', 'b.txt', 'c.txt'])
  assert.equal(entries[0].id, null)
  assert.equal(entries[0].metadata, null)
  assert.equal(entries[1].metadata.size, 'list/b.txt'.length)
  assert.deepEqual(ok(await files.list('list', { limit: 1, offset: 1 })).map((e) => e.name), ['b.txt'])
  assert.deepEqual(
    ok(await files.list('list', { sortBy: { column: 'name', order: 'desc' } })).map((e) => e.name),
    ['a', 'c.txt', 'b.txt'],
  )
  assert.deepEqual(ok(await files.list('list', { search: 'c' })).map((e) => e.name), ['c.txt'])
  assert.deepEqual(ok(await files.list('list/a')).map((e) => e.name), ['one.txt', 'two.txt'])
})

test('move, copy, remove', async () => {
  const files = service.from(bucket)
  ok(await files.upload('mc/source.txt', new Blob(['mc'])))
  ok(await files.move('mc/source.txt', 'mc/moved.txt'))
  assert.equal(await ok(await files.download('mc/moved.txt')).text(), 'mc')
  assert.equal((await files.exists('mc/source.txt')).data, false)
  const copied = ok(await files.copy('mc/moved.txt', 'mc/copied.txt'))
  assert.equal(copied.path, `${bucket}/mc/copied.txt`)
  assert.equal(await ok(await files.download('mc/copied.txt')).text(), 'mc')
  const removed = ok(await files.remove(['mc/moved.txt', 'mc/copied.txt']))
  assert.deepEqual(removed.map((r) => r.name).sort(), ['mc/copied.txt', 'mc/moved.txt'])
  assert.deepEqual(ok(await files.list('mc')), [])
})

test('signed URLs: download, many, upload', async () => {
  const files = service.from(bucket)
  ok(await files.upload('signed/file.txt', new Blob(['signed js'])))
  const { signedUrl } = ok(await files.createSignedUrl('signed/file.txt', 60))
  assert.equal(await (await fetch(signedUrl)).text(), 'signed js')
  const asDownload = ok(await files.createSignedUrl('signed/file.txt', 60, { download: 'named.txt' }))
  const disposition = (await fetch(asDownload.signedUrl)).headers.get('content-disposition')
  assert.match(disposition, /^attachment; filename="named.txt"/)
  const many = ok(await files.createSignedUrls(['signed/file.txt', 'signed/none.txt'], 60))
  assert.equal(many[0].error, null)
  assert.equal(await (await fetch(many[0].signedUrl)).text(), 'signed js')
  assert.ok(many[1].error)
  const tampered = await fetch(signedUrl.replace('signed/file.txt', 'signed/other.txt'))
  assert.equal(tampered.status, 400)
  const upload = ok(await files.createSignedUploadUrl('signed/upload.txt'))
  assert.ok(upload.token)
  ok(await files.uploadToSignedUrl('signed/upload.txt', upload.token, new Blob(['via token'])))
  assert.equal(await ok(await files.download('signed/upload.txt')).text(), 'via token')
})

test('public URLs and RLS as seen by the client', async () => {
  const pub = `${bucket}-pub`
  ok(await service.createBucket(pub, { public: true }))
  ok(await service.from(pub).upload('logo.txt', new Blob(['public js'])))
  const { publicUrl } = service.from(pub).getPublicUrl('logo.txt').data
  assert.equal(await (await fetch(publicUrl)).text(), 'public js')
  // No policies: a user and anon see nothing of the private bucket and may write nothing.
  const refused = await alice.from(bucket).upload(`${process.env.ALICE}/x.txt`, new Blob(['x']))
  assert.equal(refused.error.statusCode, '403')
  assert.deepEqual(ok(await alice.from(bucket).list('folder')), [])
  const hidden = await anon.from(bucket).download('folder/hello.txt')
  assert.ok(hidden.error)
  const privateUrl = service.from(bucket).getPublicUrl('folder/hello.txt').data.publicUrl
  assert.equal((await fetch(privateUrl)).status, 400)
  ok(await service.emptyBucket(pub))
  ok(await service.deleteBucket(pub))
})

function b64(value) {
  return Buffer.from(value).toString('base64')
}

test('TUS: resume after a dropped connection', async () => {
  const body = Buffer.alloc(1_500_000, 7)
  const headers = {
    apikey: process.env.ANON_KEY,
    Authorization: `Bearer ${process.env.SERVICE_KEY}`,
    'Tus-Resumable': '1.0.0',
  }
  const created = await fetch(`${url}/upload/resumable`, {
    method: 'POST',
    headers: {
      ...headers,
      'Upload-Length': String(body.length),
      'Upload-Metadata': `bucketName ${b64(bucket)},objectName ${b64('tus/big.bin')},contentType ${b64('application/octet-stream')}`,
    },
  })
  assert.equal(created.status, 201)
  const location = new URL(created.headers.get('location'), url).toString()
  const sent = 600_000
  await new Promise((resolve, reject) => {
    const target = new URL(location)
    const socket = net.connect(Number(target.port), target.hostname, () => {
      socket.write(
        `PATCH ${target.pathname} HTTP/1.1\r\nHost: ${target.host}\r\n` +
          `apikey: ${headers.apikey}\r\nAuthorization: ${headers.Authorization}\r\n` +
          'Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n' +
          `Content-Length: ${body.length}\r\n\r\n`,
      )
      socket.write(body.subarray(0, sent), () =>
        setTimeout(() => {
          socket.destroy()
          resolve()
        }, 300),
      )
    })
    socket.on('error', reject)
  })
  let offset = -1
  let status = 0
  for (let i = 0; i < 100; i++) {
    offset = Number((await fetch(location, { method: 'HEAD', headers })).headers.get('upload-offset'))
    const patch = await fetch(location, {
      method: 'PATCH',
      headers: { ...headers, 'Upload-Offset': String(offset), 'Content-Type': 'application/offset+octet-stream' },
      body: body.subarray(offset),
    })
    status = patch.status
    if (status !== 423 && status !== 409) break
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  assert.equal(offset, sent)
  assert.equal(status, 204)
  const stored = Buffer.from(await ok(await service.from(bucket).download('tus/big.bin')).arrayBuffer())
  assert.ok(stored.equals(body))
})
