/** Uploading from tests as a client would: multipart or raw bodies over HTTP, and waiting for `ready`. */
import { request } from "../../gateway/testing/server.ts"

/** Send a file as multipart (field `file`). */
export const uploadMultipart = async (s: { readonly url: string }, token: string, bytes: Uint8Array, name: string, type: string, fields: Record<string, string> = {}) => {
  const form = new FormData()
  for (const [k, v] of Object.entries(fields)) form.set(k, v)
  form.set("file", new Blob([bytes], { type }), name)
  const res = await fetch(`${s.url}/v1/uploads`, { method: "POST", headers: { authorization: `Bearer ${token}` }, body: form })
  return { status: res.status, body: await res.json() as any, headers: res.headers }
}

/** Send a file as a raw body. */
export const uploadRaw = async (s: { readonly url: string }, token: string, bytes: Uint8Array, name: string, type: string) => {
  const res = await fetch(`${s.url}/v1/uploads`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": type, "x-file-name": name }, body: bytes })
  return { status: res.status, body: await res.json() as any }
}

/** Poll until the upload leaves `processing`; its JSON. */
export const settled = async (s: { readonly url: string }, token: string, id: string) => {
  for (let i = 0; i < 600; i++) {
    const r = await request(s, "GET", `/v1/uploads/${id}`, { token })
    if (r.body.status !== "processing") return r.body
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`upload ${id} still processing`)
}
