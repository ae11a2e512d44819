/**
 * A misbehaving S3 endpoint for tests: a plain HTTP server on 127.0.0.1 (a free port) whose
 * every request goes to the test's handler, with a log of what arrived. Helpers answer the
 * few S3 shapes the SDK reads (object bodies, HEAD, ListObjectsV2, multipart uploads) so a
 * test only writes the fault it is about. Sockets are destroyed when the scope closes.
 */
import { Effect, type Scope } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"

/** One request as the double saw it. */
export interface SeenRequest {
  readonly method: string
  /** Path and query, e.g. `/bucket/key?uploadId=1`. */
  readonly url: string
  /** When it arrived (`performance.now()` of the test process). */
  readonly at: number
}

/** The test's handler: answer (or not) one request. */
export type DoubleHandler = (req: http.IncomingMessage, res: http.ServerResponse, seen: SeenRequest) => void

/** A running double. */
export interface S3Double {
  /** `http://127.0.0.1:<port>`. */
  readonly endpoint: string
  /** Every request so far, in arrival order. */
  readonly requests: () => ReadonlyArray<SeenRequest>
  /** Requests so far whose method is `method` and whose URL contains `fragment`. */
  readonly count: (method: string, fragment?: string) => number
}

/** Starts a double for the lifetime of the scope. */
export const startS3Double = (handler: DoubleHandler): Effect.Effect<S3Double, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ double: S3Double; server: http.Server }>((resume) => {
      const seen: Array<SeenRequest> = []
      const server = http.createServer((req, res) => {
        const request = { method: req.method ?? "GET", url: req.url ?? "/", at: performance.now() }
        seen.push(request)
        handler(req, res, request)
      })
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo
        resume(Effect.succeed({
          server,
          double: {
            endpoint: `http://127.0.0.1:${port}`,
            requests: () => [...seen],
            count: (method, fragment = "") => seen.filter((r) => r.method === method && r.url.includes(fragment)).length
          }
        }))
      })
    }),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ double }) => double))

/** Sends a whole object body with its `Content-Length`. */
export const sendObject = (res: http.ServerResponse, body: Uint8Array) => {
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length, etag: "\"e\"" })
  res.end(body)
}

/** Answers a HEAD with the object's size. */
export const sendHead = (res: http.ServerResponse, size: number) => {
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": size, etag: "\"e\"" })
  res.end()
}

/** Answers with an S3-style XML document. */
export const sendXml = (res: http.ServerResponse, xml: string, status = 200) => {
  res.writeHead(status, { "content-type": "application/xml", "content-length": Buffer.byteLength(xml) })
  res.end(xml)
}

/** A ListObjectsV2 page; `truncated` with or without a continuation token. */
export const listPage = (
  objects: ReadonlyArray<{ readonly key: string; readonly size: number }>,
  page: { readonly truncated?: boolean; readonly nextToken?: string } = {}
): string =>
  `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
  `<KeyCount>${objects.length}</KeyCount><IsTruncated>${page.truncated === true}</IsTruncated>` +
  (page.nextToken === undefined ? "" : `<NextContinuationToken>${page.nextToken}</NextContinuationToken>`) +
  objects.map((o) => `<Contents><Key>${o.key}</Key><Size>${o.size}</Size><ETag>"e"</ETag></Contents>`).join("") +
  `</ListBucketResult>`

/** The multipart-upload shapes: initiate, part, complete. */
export const multipart = {
  initiate: (res: http.ServerResponse, uploadId: string) =>
    sendXml(
      res,
      `<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>` +
        `<UploadId>${uploadId}</UploadId></InitiateMultipartUploadResult>`
    ),
  part: (res: http.ServerResponse, etag: string) => {
    res.writeHead(200, { etag: `"${etag}"`, "content-length": 0 })
    res.end()
  },
  aborted: (res: http.ServerResponse) => {
    res.writeHead(204)
    res.end()
  }
}

/** Reads and discards a request body, then calls `then`. */
export const drain = (req: http.IncomingMessage, then: () => void) => {
  req.resume()
  req.on("end", then)
}
