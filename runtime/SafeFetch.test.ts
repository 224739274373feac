import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Stream from "effect/Stream"
import fc from "fast-check"
import * as NodeHttp from "node:http"
import type * as NodeNet from "node:net"
import * as NodeZlib from "node:zlib"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as SafeFetch from "./SafeFetch.ts"

type Handler = (req: NodeHttp.IncomingMessage, res: NodeHttp.ServerResponse) => void

const startServer = async (handler: Handler) => {
  const server = NodeHttp.createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as NodeNet.AddressInfo).port
  return { server, port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) }
}

let origin: Awaited<ReturnType<typeof startServer>>
let other: Awaited<ReturnType<typeof startServer>>
let seen: Array<NodeHttp.IncomingHttpHeaders> = []

beforeAll(async () => {
  other = await startServer((_req, res) => res.end("other"))
  origin = await startServer((req, res) => {
    seen.push(req.headers)
    const u = new URL(req.url ?? "/", "http://x")
    const redirect = (to: string, status = 302) => {
      res.writeHead(status, { location: to })
      res.end()
    }
    switch (u.pathname) {
      case "/hello":
        res.writeHead(200, { "content-type": "text/plain" })
        return res.end("hello")
      case "/headers":
        res.writeHead(200, { "content-type": "application/json" })
        return res.end(JSON.stringify(req.headers))
      case "/method":
        return res.end(req.method)
      case "/to":
        return redirect(u.searchParams.get("u") ?? "/hello", Number(u.searchParams.get("s") ?? 302))
      case "/loop":
        return redirect(`/loop?n=${Number(u.searchParams.get("n") ?? 0) + 1}`)
      case "/chain": {
        const n = Number(u.searchParams.get("n") ?? 0)
        return n <= 0 ? res.end("end of chain") : redirect(`/chain?n=${n - 1}`)
      }
      case "/big":
        res.writeHead(200, { "content-length": String(2_000_000) })
        return res.end(Buffer.alloc(2_000_000))
      case "/stream-big": {
        res.writeHead(200)
        let sent = 0
        const push = () => {
          while (sent < 3_000_000) {
            sent += 64 * 1024
            if (!res.write(Buffer.alloc(64 * 1024))) return res.once("drain", push)
          }
          res.end()
        }
        return push()
      }
      case "/gzip":
        res.writeHead(200, { "content-encoding": "gzip" })
        return res.end(NodeZlib.gzipSync(Buffer.from("compressed hello")))
      case "/gzip-bomb":
        res.writeHead(200, { "content-encoding": "gzip" })
        return res.end(NodeZlib.gzipSync(Buffer.alloc(50_000_000)))
      case "/hang":
        return // never answers
      default:
        res.writeHead(404)
        return res.end("nope")
    }
  })
})

afterAll(async () => {
  await origin.close()
  await other.close()
})

const allow = () => [`127.0.0.1:${origin.port}`]
const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(Effect.either(effect))
const reasonOf = async <A>(effect: Effect.Effect<A, SafeFetch.SafeFetchError>) => {
  const result = await run(effect)
  if (Either.isRight(result)) throw new Error("expected the fetch to fail")
  return result.left.reason
}
const check = (url: string, options?: Parameters<typeof SafeFetch.checkUrl>[1]) => Effect.runPromise(SafeFetch.checkUrl(url, options))

describe("checkAddress", () => {
  const blocked = [
    "127.0.0.1", "127.255.255.254", "0.0.0.0", "0.1.2.3", "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1",
    "169.254.169.254", "100.64.0.1", "100.127.255.255", "224.0.0.1", "239.255.255.250", "255.255.255.255",
    "192.0.2.1", "198.18.0.1", "198.51.100.7", "203.0.113.9", "240.0.0.1", "192.0.0.8",
    "::", "::1", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1", "ff02::1", "fec0::1",
    "::ffff:127.0.0.1", "::ffff:7f00:1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1", "::10.0.0.1", "::8.8.8.8",
    "::ffff:0:7f00:1", "64:ff9b::7f00:1", "64:ff9b::a00:1", "64:ff9b:1::1", "2002:7f00:1::1", "2002:a00:1::",
    "2001::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:db8::1", "2001:2::1", "100::1", "5f00::1", "3fff::1"
  ]
  it.each(blocked)("refuses %s", (address) => {
    expect(SafeFetch.checkAddress(address).ok).toBe(false)
  })

  const allowed = ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001:82a::200e", "64:ff9b::808:808", "2002:808:808::1"]
  it.each(allowed)("allows public unicast %s", (address) => {
    expect(SafeFetch.checkAddress(address)).toEqual({ ok: true })
  })

  it("refuses what is not an address", () => {
    expect(SafeFetch.checkAddress("example.com").ok).toBe(false)
  })
})

describe("checkUrl", () => {
  const literalForms = [
    "http://127.0.0.1/", "http://2130706433/", "http://0x7f000001/", "http://0x7f.0x0.0x0.0x1/", "http://0177.0.0.1/",
    "http://017700000001/", "http://127.1/", "http://127.0.1/", "http://0/", "http://0.0.0.0:8080/", "http://[::1]/",
    "http://[0:0:0:0:0:0:0:1]/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/", "http://[::127.0.0.1]/",
    "http://[0:0:0:0:0:ffff:169.254.169.254]/", "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/",
    "http://[fd00::1]/", "http://100.64.0.1/", "http://224.0.0.1/", "http://255.255.255.255/", "http://[64:ff9b::7f00:1]/",
    "http://[2002:7f00:1::]/", "https://10.0.0.1/", "http://192.168.0.1./", "http://user:pw@127.0.0.1/", "http://3232235521/",
    "http://0xA9FEA9FE/", "http://0251.0376.0251.0376/", "http://[::]/"
  ]
  it.each(literalForms)("blocks the IP literal %s", async (url) => {
    const result = await check(url)
    expect(result.allow).toBe(false)
    if (!result.allow) expect(result.reason).toMatch(/^blocked_address: /)
  })

  it.each(["file:///etc/passwd", "gopher://example.com/", "ftp://example.com/", "javascript:alert(1)", "data:text/plain,hi", "ws://example.com/"])(
    "blocks the scheme of %s",
    async (url) => {
      const result = await check(url)
      expect(result.allow).toBe(false)
      if (!result.allow) expect(result.reason).toMatch(/^blocked_scheme: /)
    }
  )

  it.each(["not a url", "http://", "//example.com/x", ""])("rejects the malformed URL %j", async (url) => {
    const result = await check(url)
    expect(result.allow).toBe(false)
    if (!result.allow) expect(result.reason).toMatch(/^bad_url: /)
  })

  it("blocks single-label names such as localhost", async () => {
    expect((await check("http://localhost:3000/")).allow).toBe(false)
  })

  it("treats a name in absolute form (trailing dot) as the same name", async () => {
    expect((await check("http://localhost./")).allow).toBe(false)
    expect((await check("http://localhost..:8080/")).allow).toBe(false)
    const resolve = { "evil.example": ["127.0.0.1"], "good.example": ["93.184.216.34"] }
    const evil = await check("http://evil.example./", { resolve })
    expect(evil.allow).toBe(false)
    if (!evil.allow) expect(evil.reason).toMatch(/^blocked_address: evil\.example resolves/)
    expect(await check("https://good.example./x", { resolve })).toEqual({ allow: true })
    expect(await check("http://origin.internal.:8080/", { allowedPrivateHosts: ["origin.internal:8080"], resolve: { "origin.internal": ["10.0.0.5"] } })).toEqual({ allow: true })
    expect((await check("http://127.0.0.1./")).allow).toBe(false)
  })

  it("allows a public IP literal", async () => {
    expect(await check("http://93.184.216.34/")).toEqual({ allow: true })
    expect(await check("https://[2606:4700:4700::1111]/")).toEqual({ allow: true })
  })

  it("blocks names that resolve to private addresses", async () => {
    const resolve = { "evil.example": ["127.0.0.1"], "mixed.example": ["93.184.216.34", "10.1.2.3"], "v6.example": ["::ffff:192.168.1.1"] }
    for (const host of Object.keys(resolve)) {
      const result = await check(`http://${host}/`, { resolve })
      expect(result.allow).toBe(false)
      if (!result.allow) expect(result.reason).toMatch(/^blocked_address: /)
    }
    expect(await check("https://good.example/", { resolve: { "good.example": ["93.184.216.34", "2606:4700:4700::1111"] } })).toEqual({ allow: true })
  })

  it("lets the operator allowlist reach exactly the named host:port", async () => {
    expect(await check("http://127.0.0.1:9000/x", { allowedPrivateHosts: ["127.0.0.1:9000"] })).toEqual({ allow: true })
    expect((await check("http://127.0.0.1:9001/x", { allowedPrivateHosts: ["127.0.0.1:9000"] })).allow).toBe(false)
    expect(await check("http://origin.internal:8080/", { allowedPrivateHosts: ["origin.internal:8080"], resolve: { "origin.internal": ["10.0.0.5"] } })).toEqual({ allow: true })
    expect((await check("http://origin.internal/", { allowedPrivateHosts: ["origin.internal:8080"], resolve: { "origin.internal": ["10.0.0.5"] } })).allow).toBe(false)
    expect(await check("http://[::1]:9000/", { allowedPrivateHosts: ["[::1]:9000"] })).toEqual({ allow: true })
  })

  it("blocks every private IPv4 address in every textual encoding (property)", async () => {
    const privateV4 = fc.oneof(
      fc.tuple(fc.constant(127), fc.nat(255), fc.nat(255), fc.nat(255)),
      fc.tuple(fc.constant(10), fc.nat(255), fc.nat(255), fc.nat(255)),
      fc.tuple(fc.constant(172), fc.integer({ min: 16, max: 31 }), fc.nat(255), fc.nat(255)),
      fc.tuple(fc.constant(192), fc.constant(168), fc.nat(255), fc.nat(255)),
      fc.tuple(fc.constant(169), fc.constant(254), fc.nat(255), fc.nat(255)),
      fc.tuple(fc.constant(100), fc.integer({ min: 64, max: 127 }), fc.nat(255), fc.nat(255)),
      fc.tuple(fc.integer({ min: 224, max: 255 }), fc.nat(255), fc.nat(255), fc.nat(255))
    )
    await fc.assert(
      fc.asyncProperty(privateV4, fc.nat(5), async (octets, form) => {
        const n = ((octets[0] << 24) >>> 0) + (octets[1] << 16) + (octets[2] << 8) + octets[3]
        const hex = (x: number) => x.toString(16)
        const host = [
          octets.join("."),
          String(n),
          `0x${hex(n)}`,
          octets.map((o) => `0${o.toString(8)}`).join("."),
          `[::ffff:${hex((octets[0] << 8) + octets[1])}:${hex((octets[2] << 8) + octets[3])}]`,
          `[::ffff:${octets.join(".")}]`
        ][form]!
        const result = await check(`http://${host}/`)
        return !result.allow && result.reason.startsWith("blocked_address")
      }),
      { numRuns: 300 }
    )
  })
})

describe("safeFetch", () => {
  it("refuses a private origin that is not allowlisted", async () => {
    expect(await reasonOf(SafeFetch.safeFetch(`http://127.0.0.1:${origin.port}/hello`))).toBe("blocked_address")
  })

  it("fetches an allowlisted origin", async () => {
    const r = await Effect.runPromise(SafeFetch.safeFetch(`http://127.0.0.1:${origin.port}/hello`, { allowedPrivateHosts: allow() }))
    expect(r.status).toBe(200)
    expect(new TextDecoder().decode(r.body)).toBe("hello")
    expect(r.headers.get("content-type")).toBe("text/plain")
  })

  it("does not extend the allowlist to other ports of the same host", async () => {
    expect(await reasonOf(SafeFetch.safeFetch(`http://127.0.0.1:${other.port}/`, { allowedPrivateHosts: allow() }))).toBe("blocked_address")
  })

  it("re-checks every redirect hop and refuses private targets", async () => {
    const base = `http://127.0.0.1:${origin.port}`
    const targets = [
      `http://127.0.0.1:${other.port}/`,
      `http://[::1]:${other.port}/`,
      `http://[::ffff:127.0.0.1]:${other.port}/`,
      "http://169.254.169.254/latest/meta-data/",
      `http://2130706433:${other.port}/`,
      "http://localhost/"
    ]
    for (const target of targets) {
      expect(await reasonOf(SafeFetch.safeFetch(`${base}/to?u=${encodeURIComponent(target)}`, { allowedPrivateHosts: allow() }))).toBe("blocked_address")
    }
    expect(await reasonOf(SafeFetch.safeFetch(`${base}/to?u=${encodeURIComponent("file:///etc/passwd")}`, { allowedPrivateHosts: allow() }))).toBe(
      "blocked_scheme"
    )
  })

  it("follows up to five redirects and refuses the sixth", async () => {
    const base = `http://127.0.0.1:${origin.port}`
    const ok = await Effect.runPromise(SafeFetch.safeFetch(`${base}/chain?n=5`, { allowedPrivateHosts: allow() }))
    expect(new TextDecoder().decode(ok.body)).toBe("end of chain")
    expect(ok.url).toBe(`${base}/chain?n=0`)
    expect(await reasonOf(SafeFetch.safeFetch(`${base}/chain?n=6`, { allowedPrivateHosts: allow() }))).toBe("too_many_redirects")
    expect(await reasonOf(SafeFetch.safeFetch(`${base}/loop`, { allowedPrivateHosts: allow() }))).toBe("too_many_redirects")
  })

  it("turns POST into GET on 303 and keeps it on 307", async () => {
    const base = `http://127.0.0.1:${origin.port}`
    const a = await Effect.runPromise(SafeFetch.safeFetch(`${base}/to?u=/method&s=303`, { method: "POST", body: "x", allowedPrivateHosts: allow() }))
    expect(new TextDecoder().decode(a.body)).toBe("GET")
    const b = await Effect.runPromise(SafeFetch.safeFetch(`${base}/to?u=/method&s=307`, { method: "POST", body: "x", allowedPrivateHosts: allow() }))
    expect(new TextDecoder().decode(b.body)).toBe("POST")
  })

  it("never forwards credentials or cookies", async () => {
    const r = await Effect.runPromise(
      SafeFetch.safeFetch(`http://user:secret@127.0.0.1:${origin.port}/headers`, {
        headers: { Cookie: "session=1", Authorization: "Bearer x", "Proxy-Authorization": "y", "X-Ok": "1" },
        allowedPrivateHosts: allow()
      })
    )
    const headers = JSON.parse(new TextDecoder().decode(r.body)) as Record<string, string>
    expect(headers["cookie"]).toBeUndefined()
    expect(headers["authorization"]).toBeUndefined()
    expect(headers["proxy-authorization"]).toBeUndefined()
    expect(headers["x-ok"]).toBe("1")
    expect(r.url).not.toContain("secret")
  })

  it("sends an opted-in Authorization header to the first origin only", async () => {
    const r = await Effect.runPromise(
      SafeFetch.safeFetch(`http://127.0.0.1:${origin.port}/headers`, { headers: { Authorization: "Bearer x" }, allowAuthorization: true, allowedPrivateHosts: allow() })
    )
    expect((JSON.parse(new TextDecoder().decode(r.body)) as Record<string, string>)["authorization"]).toBe("Bearer x")
  })

  it("applies the host policy on every hop", async () => {
    const base = `http://127.0.0.1:${origin.port}`
    expect(await reasonOf(SafeFetch.safeFetch(`${base}/hello`, { allowedPrivateHosts: allow(), hostAllowed: () => false }))).toBe("host_not_allowed")
    const fetcher = SafeFetch.makeFetcher(async (name) => (name === "origin.test" ? [{ address: "127.0.0.1", family: 4 }] : []))
    const policy = (host: string) => host === "127.0.0.1"
    const hops = `${base}/to?u=${encodeURIComponent(`http://origin.test:${origin.port}/hello`)}`
    expect(await reasonOf(fetcher.safeFetch(hops, { allowedPrivateHosts: [...allow(), `origin.test:${origin.port}`], hostAllowed: policy }))).toBe(
      "host_not_allowed"
    )
  })

  it("caps the body by its declared length and while streaming", async () => {
    const base = `http://127.0.0.1:${origin.port}`
    expect(await reasonOf(SafeFetch.safeFetch(`${base}/big`, { maxBytes: 1_000_000, allowedPrivateHosts: allow() }))).toBe("too_large")
    expect(await reasonOf(SafeFetch.safeFetch(`${base}/stream-big`, { maxBytes: 1_000_000, allowedPrivateHosts: allow() }))).toBe("too_large")
    const ok = await Effect.runPromise(SafeFetch.safeFetch(`${base}/big`, { maxBytes: 2_000_000, allowedPrivateHosts: allow() }))
    expect(ok.body.byteLength).toBe(2_000_000)
  })

  it("decompresses gzip and caps the decompressed size (no gzip bombs)", async () => {
    const base = `http://127.0.0.1:${origin.port}`
    const r = await Effect.runPromise(SafeFetch.safeFetch(`${base}/gzip`, { allowedPrivateHosts: allow() }))
    expect(new TextDecoder().decode(r.body)).toBe("compressed hello")
    expect(r.headers.get("content-encoding")).toBeNull()
    expect(await reasonOf(SafeFetch.safeFetch(`${base}/gzip-bomb`, { maxBytes: 1_000_000, allowedPrivateHosts: allow() }))).toBe("too_large")
  })

  it("gives up after the time cap", async () => {
    expect(await reasonOf(SafeFetch.safeFetch(`http://127.0.0.1:${origin.port}/hang`, { timeoutMs: 200, allowedPrivateHosts: allow() }))).toBe("timeout")
  })

  it("reports unreachable hosts as network errors", async () => {
    const fetcher = SafeFetch.makeFetcher(async () => {
      throw Object.assign(new Error("not found"), { code: "ENOTFOUND" })
    })
    expect(await reasonOf(fetcher.safeFetch("http://nowhere.example/"))).toBe("network")
  })
})

describe("safeFetch name resolution", () => {
  it("refuses a name that resolves to a private address when connecting", async () => {
    const fetcher = SafeFetch.makeFetcher(async () => [{ address: "127.0.0.1", family: 4 }])
    expect(await reasonOf(fetcher.safeFetch(`http://internal.example:${origin.port}/hello`))).toBe("blocked_address")
  })

  it("refuses a name with one private answer among public ones", async () => {
    const fetcher = SafeFetch.makeFetcher(async () => [{ address: "93.184.216.34", family: 4 }, { address: "::1", family: 6 }])
    expect(await reasonOf(fetcher.safeFetch(`http://mixed.example:${origin.port}/hello`))).toBe("blocked_address")
  })

  it("defeats DNS rebinding: public for the check, private at connect time", async () => {
    let calls = 0
    const resolver: SafeFetch.Resolver = async () => (calls++ === 0 ? [{ address: "93.184.216.34", family: 4 }] : [{ address: "127.0.0.1", family: 4 }])
    const url = `http://rebind.example:${origin.port}/hello`
    expect(await Effect.runPromise(SafeFetch.checkUrl(url, { resolver }))).toEqual({ allow: true })
    const fetcher = SafeFetch.makeFetcher(resolver)
    expect(await reasonOf(fetcher.safeFetch(url))).toBe("blocked_address")
    expect(calls).toBe(2)
  })

  it("refuses a redirect to a name that resolves to a private address", async () => {
    const fetcher = SafeFetch.makeFetcher(async (name) => (name === "sneaky.example" ? [{ address: "10.0.0.7", family: 4 }] : []))
    const url = `http://127.0.0.1:${origin.port}/to?u=${encodeURIComponent("http://sneaky.example/admin")}`
    expect(await reasonOf(fetcher.safeFetch(url, { allowedPrivateHosts: allow() }))).toBe("blocked_address")
  })

  it("resolves and checks a name in absolute form like any other", async () => {
    const asked: Array<string> = []
    const fetcher = SafeFetch.makeFetcher(async (name) => {
      asked.push(name)
      return name === "internal.example" ? [{ address: "127.0.0.1", family: 4 }] : []
    })
    expect(await reasonOf(fetcher.safeFetch(`http://internal.example.:${origin.port}/hello`))).toBe("blocked_address")
    expect(await reasonOf(fetcher.safeFetch(`http://localhost.:${origin.port}/hello`))).toBe("blocked_address")
    expect(asked).toEqual(["internal.example"])
    const allowed = await Effect.runPromise(fetcher.safeFetch(`http://internal.example.:${origin.port}/hello`, { allowedPrivateHosts: [`internal.example:${origin.port}`] }))
    expect(new TextDecoder().decode(allowed.body)).toBe("hello")
  })

  it("reaches an allowlisted internal name that resolves to a private address", async () => {
    const fetcher = SafeFetch.makeFetcher(async (name) => (name === "origin.internal" ? [{ address: "127.0.0.1", family: 4 }] : []))
    const r = await Effect.runPromise(fetcher.safeFetch(`http://origin.internal:${origin.port}/hello`, { allowedPrivateHosts: [`origin.internal:${origin.port}`] }))
    expect(new TextDecoder().decode(r.body)).toBe("hello")
  })
})

describe("safeFetchStream", () => {
  it("streams the body and fails the stream once the cap is passed", async () => {
    const base = `http://127.0.0.1:${origin.port}`
    const small = await Effect.runPromise(
      Effect.scoped(Effect.flatMap(SafeFetch.safeFetchStream(`${base}/hello`, { allowedPrivateHosts: allow() }), (r) => Stream.runCollect(r.body)))
    )
    expect(new TextDecoder().decode(Chunk.toReadonlyArray(small)[0])).toBe("hello")
    const big = await run(
      Effect.scoped(
        Effect.flatMap(SafeFetch.safeFetchStream(`${base}/stream-big`, { maxBytes: 500_000, allowedPrivateHosts: allow() }), (r) => Stream.runDrain(r.body))
      )
    )
    expect(Either.isLeft(big) && big.left.reason).toBe("too_large")
  })
})

describe("allowlist entries", () => {
  it("normalises host:port entries and refuses malformed ones", () => {
    expect(SafeFetch.parseAllowlistEntry("Origin.Internal:8080")).toBe("origin.internal:8080")
    expect(SafeFetch.parseAllowlistEntry("[0::1]:9000")).toBe("[::1]:9000")
    expect(SafeFetch.parseAllowlistEntry("10.0.0.5")).toBeUndefined()
    expect(SafeFetch.parseAllowlistEntry("http://x:1/")).toBeUndefined()
    expect(SafeFetch.parseAllowlistEntry("a:80")).toBe("a:80")
  })
})
