/**
 * A clamd client for one command: `zINSTREAM` (the file streamed in length-prefixed chunks from
 * disk, then a zero-length chunk) and `zPING`. clamd answers `stream: OK`, `stream: <name> FOUND`
 * or `<reason> ERROR`.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as NodeFs from "node:fs"
import * as NodeNet from "node:net"
import type { ClamdAddress } from "./Config.ts"

/** clamd could not be reached or did not answer in time. */
export class ClamdUnavailable extends Schema.TaggedError<ClamdUnavailable>()("ClamdUnavailable", { message: Schema.String }) {}

/** What the scan found. */
export type Verdict = { readonly clean: true } | { readonly clean: false; readonly signature: string }

const connect = (address: ClamdAddress) =>
  address._tag === "Socket" ? NodeNet.createConnection({ path: address.path }) : NodeNet.createConnection({ host: address.host, port: address.port })

const exchange = (address: ClamdAddress, timeoutMs: number, write: (socket: NodeNet.Socket) => Promise<void>): Effect.Effect<string, ClamdUnavailable> =>
  Effect.async<string, ClamdUnavailable>((resume) => {
    const socket = connect(address)
    const chunks: Array<Buffer> = []
    let done = false
    const finish = (result: Effect.Effect<string, ClamdUnavailable>) => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      resume(result)
    }
    const timer = setTimeout(() => finish(Effect.fail(new ClamdUnavailable({ message: `clamd did not answer within ${timeoutMs} ms` }))), timeoutMs)
    socket.on("data", (d: Buffer) => chunks.push(d))
    socket.on("error", (e) => finish(Effect.fail(new ClamdUnavailable({ message: `clamd: ${e.message}` }))))
    socket.on("end", () => finish(Effect.succeed(Buffer.concat(chunks).toString("utf8").replace(/\0+$/, "").trim())))
    socket.on("connect", () => {
      write(socket).catch((e: unknown) => finish(Effect.fail(new ClamdUnavailable({ message: `clamd: ${e instanceof Error ? e.message : String(e)}` }))))
    })
    return Effect.sync(() => finish(Effect.fail(new ClamdUnavailable({ message: "interrupted" }))))
  })

const writeAll = (socket: NodeNet.Socket, data: Uint8Array) =>
  new Promise<void>((resolve, reject) => {
    socket.write(data, (e) => (e ? reject(e) : resolve()))
  })

/** Whether clamd answers `PONG`. */
export const ping = (address: ClamdAddress, timeoutMs = 2000): Effect.Effect<void, ClamdUnavailable> =>
  Effect.flatMap(exchange(address, timeoutMs, (socket) => writeAll(socket, Buffer.from("zPING\0"))), (reply) =>
    reply === "PONG" ? Effect.void : Effect.fail(new ClamdUnavailable({ message: `clamd answered ${JSON.stringify(reply.slice(0, 100))} to PING` })))

/** Scan the file at `path` with `INSTREAM`. */
export const scanFile = (address: ClamdAddress, path: string, timeoutMs: number): Effect.Effect<Verdict, ClamdUnavailable> =>
  Effect.flatMap(
    exchange(address, timeoutMs, async (socket) => {
      await writeAll(socket, Buffer.from("zINSTREAM\0"))
      for await (const chunk of NodeFs.createReadStream(path, { highWaterMark: 64 * 1024 })) {
        const data = chunk as Buffer
        const length = Buffer.alloc(4)
        length.writeUInt32BE(data.byteLength)
        await writeAll(socket, length)
        await writeAll(socket, data)
      }
      await writeAll(socket, Buffer.alloc(4))
    }),
    (reply): Effect.Effect<Verdict, ClamdUnavailable> => {
      if (/^stream: OK$/.test(reply)) return Effect.succeed({ clean: true })
      const found = /^stream: (.+) FOUND$/.exec(reply)
      if (found) return Effect.succeed({ clean: false, signature: found[1]! })
      return Effect.fail(new ClamdUnavailable({ message: `clamd could not scan the file: ${reply.slice(0, 200)}` }))
    }
  )
