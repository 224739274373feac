/**
 * A real S3-compatible server for tests (s3rver, in this process, on a free port), and a client
 * for it. Any access key works; tests use `S3RVER`.
 */
import { S3Client } from "@aws-sdk/client-s3"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import S3rver from "s3rver"

/** A running s3rver. */
export interface TestS3 {
  readonly endpoint: string
  /** The `S3_*` variables a Troupe process needs to use `bucket` on it. */
  readonly env: (bucket: string) => Record<string, string>
  readonly client: S3Client
  readonly close: () => Promise<void>
}

/** Start s3rver with its files in a fresh temporary folder (removed on close). */
export const startS3 = async (): Promise<TestS3> => {
  const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-s3rver-"))
  const server = new S3rver({ port: 0, address: "127.0.0.1", silent: true, directory: dir })
  const { port } = await server.run()
  const endpoint = `http://127.0.0.1:${port}`
  const client = new S3Client({ endpoint, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } })
  return {
    endpoint,
    env: (bucket) => ({ S3_ENDPOINT: endpoint, S3_BUCKET: bucket, S3_REGION: "us-east-1", S3_ACCESS_KEY_ID: "S3RVER", S3_SECRET_ACCESS_KEY: "S3RVER" }),
    client,
    close: async () => {
      client.destroy()
      await server.close()
      NodeFs.rmSync(dir, { recursive: true, force: true })
    }
  }
}
