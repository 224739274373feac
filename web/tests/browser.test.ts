/**
 * The web app in a real browser: Debian's Chromium driven by playwright-core against
 * `troupe start` on an empty data dir, its mates thinking with a scripted OpenAI-compatible server
 * (real HTTP + SSE; it answers "You said: <message>" a word every 15 ms), as a new operator and
 * their users would use it — first
 * run, chats with streamed replies (reload mid-reply, cancel, delete), sanitised Markdown, API
 * keys used from Node, a share link in a second browser, mates with allowlists, 2FA, admin,
 * readable errors with retry, the 375 px layout, axe-core on the main pages, the first-load
 * JavaScript budget of the chat page; then identity: passkeys made and used through Chromium's
 * virtual authenticator (the DevTools WebAuthn domain), a lost password reset through the mailed
 * link, and a new e-mail address confirmed by code. Screenshots go to `test-results/web/` (not committed).
 *
 * Chromium must be installed (`apt-get install -y chromium`; `.ci/setup.d/30-chromium.sh` does it
 * in CI): without it these tests fail, they never skip.
 */
import axe from "axe-core"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import Provider from "oidc-provider"
import * as OTPAuth from "otpauth"
import { chromium, type Browser, type BrowserContext, type CDPSession, type Page } from "playwright-core"
import * as NodeFs from "node:fs"
import * as NodeHttp from "node:http"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest"
import { fixturesDir } from "../../runtime/testing/fixtures.ts"
import { mailsTo, type OutboxMail } from "../../gateway/identity/mail.ts"
import { freePort, root, spawnTroupe, stop, waitFor, type Spawned } from "../../runtime/testing/process.ts"
import * as StoreClient from "../../skills/store/Client.ts"
import * as Signing from "../../skills/store/Signing.ts"
import * as Scripted from "../../skills/ai/testing/ScriptedServer.ts"

const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"
const shots = NodePath.join(root, "test-results", "web")
const password = "a long password 1"

let dataDir: string
let server: Spawned
let llm: Scripted.ScriptedServer
/** A single sign-on provider (`oidc-provider` with its development login and consent pages) and its issuer. */
let idp: NodeHttp.Server | undefined
let issuer = ""
let url: string
let browser: Browser
/** The admin's signed-in browser. */
let admin: BrowserContext
let page: Page
/** Console messages about the Content Security Policy, from every page of every context. */
const cspViolations: string[] = []
const pageErrors: string[] = []
let chatUrl = ""
let researcherChatUrl = ""
/** Ada's browser (signed in with the keyboard) and her chat. */
let adaContext: BrowserContext
let adaChatUrl = ""

/** A signed app to publish to the server's store: the AssemblyScript hello plugin, its skill declared as one that writes (so it asks first). */
const helloWasm = () => new Uint8Array(NodeFs.readFileSync(NodePath.join(fixturesDir(), "extism", "hello-from-assemblyscript.wasm")))
const helloManifest = (version: string, allowedHosts: Array<string> = []) => ({
  id: "hello",
  name: "Hello",
  version,
  description: "Greets whoever asks, from AssemblyScript",
  publisher: "Ada",
  categories: ["fun"],
  abi: "extism-v1",
  permissions: { allowedHosts, wasi: false, hostFunctions: [] },
  skills: [{ name: "hello", description: "Says hello (and writes it down)", input: { type: "object" }, output: { type: "string" }, pricing: { model: "fixed", credits: 1 }, sideEffects: "write" }]
})
const publisherKey = Either.getOrThrow(Signing.readPrivateKey(Signing.generate().privateKeyPem))

const watch = (p: Page) => {
  p.on("console", (m) => {
    if (/Content Security Policy/i.test(m.text())) cspViolations.push(`${p.url()}: ${m.text()}`)
  })
  p.on("pageerror", (e) => pageErrors.push(`${p.url()}: ${e.message}`))
  p.on("dialog", (d) => void d.accept())
  return p
}

/** Keep a picture of the page when a test fails. */
const pictureOnFailure = (name: string) =>
  onTestFailed(async () => {
    for (const context of browser.contexts()) {
      for (const [i, p] of context.pages().entries()) await p.screenshot({ path: NodePath.join(shots, `failed-${name}-${i}.png`), fullPage: true }).catch(() => undefined)
    }
  })

const newContext = async (options: Parameters<Browser["newContext"]>[0] = {}) => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, colorScheme: "light", ...options })
  context.on("page", watch)
  return context
}

const shot = (p: Page, name: string, fullPage = true) => p.screenshot({ path: NodePath.join(shots, `${name}.png`), fullPage })

/** The serious and critical axe-core violations of the page as it is now. */
const axeViolations = async (p: Page) => {
  await p.evaluate(axe.source)
  const result = await p.evaluate(async () => {
    const run = (window as unknown as { axe: { run: (ctx: Document, o: object) => Promise<{ violations: Array<{ id: string; impact: string | null; help: string; nodes: Array<{ target: unknown[] }> }> }> } }).axe
    return run.run(document, { resultTypes: ["violations"] })
  })
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => JSON.stringify(n.target)).join(", ")}`)
}

/** The visible text of the last reply, whitespace folded. */
const lastReply = (p: Page) => p.locator("article.turn").last().locator("[data-testid=reply-text]").innerText().then((t) => t.replace(/\s+/g, " ").trim())

/** `expect.poll` with room for a loaded machine (its default gives up after 1 s). */
const poll = <T>(fn: () => T | Promise<T>, options: { timeout?: number; interval?: number } = {}) => expect.poll(fn, { timeout: 15_000, ...options })

const words = (n: number, prefix = "w") => Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`).join(" ")

const sendFromComposer = async (p: Page, text: string) => {
  await p.getByLabel(/^Message to/).fill(text)
  await p.getByRole("button", { name: "Send", exact: true }).click()
}

beforeAll(async () => {
  if (!NodeFs.existsSync(chromiumPath)) {
    throw new Error(`Chromium is not installed at ${chromiumPath}: apt-get install -y chromium (CI: .ci/setup.d/30-chromium.sh)`)
  }
  if (!NodeFs.existsSync(NodePath.join(root, "web", "build", "index.html"))) {
    throw new Error("The web app is not built: npm install (or npm run build:web) builds web/build")
  }
  NodeFs.mkdirSync(shots, { recursive: true })
  dataDir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "troupe-web-e2e-"))
  llm = await Scripted.start({
    models: ["scripted"],
    responder: (request) => {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const last = [...(request.body.messages as Array<any>)].reverse().find((m) => m.role === "user")
      const said = typeof last?.content === "string" ? last.content : (last?.content ?? []).map((p: { text?: string }) => p.text ?? "").join("")
      return Scripted.text(`You said: ${said}`, { delayMs: 15 })
    }
  })
  const port = await freePort()
  // localhost, as the default TROUPE_PUBLIC_URL names it (share links, the passkeys' relying party)
  url = `http://localhost:${port}`
  const idpPort = await freePort()
  issuer = `http://127.0.0.1:${idpPort}`
  const provider = new Provider(issuer, {
    clients: [{ client_id: "troupe", client_secret: "a test client secret", redirect_uris: [`${url}/v1/auth/oidc/acme/callback`], response_types: ["code"], grant_types: ["authorization_code"] }],
    findAccount: async (_ctx, id) => ({ accountId: id, claims: async () => ({ sub: id, email: `${id}@sso.example.com`, email_verified: true, preferred_username: id }) }),
    claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["preferred_username"] },
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ["a test cookie key"] }
  })
  idp = NodeHttp.createServer(provider.callback())
  await new Promise<void>((resolve) => idp!.listen(idpPort, "127.0.0.1", resolve))
  server = spawnTroupe(["start"], {
    TROUPE_DATA_DIR: dataDir,
    TROUPE_PORT: String(port),
    TROUPE_HOST: "127.0.0.1",
    TROUPE_LLM_BASE_URL: llm.baseUrl,
    TROUPE_LLM_MODEL: "scripted",
    TROUPE_LLM_OLLAMA_URL: "off",
    // every browser of the suite signs in from one address: room for more than 30 sign-in requests a minute
    TROUPE_RATE_LIMIT_AUTH: "1000/60s",
    TROUPE_OIDC_PROVIDERS: JSON.stringify([{ id: "acme", name: "Acme SSO", issuer, client_id: "troupe", client_secret: "a test client secret", scopes: ["openid", "email", "profile"] }])
  })
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]
  })
  // a loaded machine (the full suite on 2 cores) can take minutes to start a server
  await waitFor(`${url}/health`, { proc: server, timeoutMs: 240_000 })
}, 270_000)

afterAll(async () => {
  await browser?.close()
  if (server) await stop(server, "SIGTERM")
  await llm?.close()
  await new Promise((resolve) => (idp ? idp.close(resolve) : resolve(undefined)))
  if (dataDir) NodeFs.rmSync(dataDir, { recursive: true, force: true })
})

describe("the web app in Chromium", () => {
  it("a new operator learns where the invite is, signs up as admin without a mailed code and lands on the chats", async () => {
    pictureOnFailure("t1")
    admin = await newContext()
    page = await admin.newPage()
    await page.goto(url)
    await page.waitForURL(`${url}/login`)
    await page.getByRole("link", { name: "Create an account" }).click()
    const firstRun = page.getByTestId("first-run")
    const inviteFile = NodePath.join(dataDir, "initial-admin-invite")
    await poll(() => firstRun.innerText()).toContain(inviteFile)
    await shot(page, "01-signup-first-run")
    // the operator reads the code from the file the page names (it is also in the log)
    const code = NodeFs.readFileSync(inviteFile, "utf8").trim()
    expect(server.stdout()).toContain(`Admin invite code: ${code}`)
    await page.getByLabel("Email").fill("root@example.com")
    await page.getByLabel("Username").fill("root")
    await page.getByLabel("Password").fill(password)
    await page.getByLabel(/^Invite code/).fill(code)
    await page.getByRole("button", { name: "Create account" }).click()
    await page.waitForURL(`${url}/chats`)
    await poll(() => page.getByRole("heading", { name: "New chat" }).isVisible()).toBe(true)
    await poll(() => page.getByRole("link", { name: "Admin" }).isVisible()).toBe(true)
    expect(NodeFs.existsSync(NodePath.join(dataDir, "outbox"))).toBe(false)
    await shot(page, "02-chats-empty")
  }, 60_000)

  it("a chat's reply streams in word by word, Markdown rendered and sanitised (no script from a reply runs)", async () => {
    pictureOnFailure("t2")
    await page.getByLabel("Message", { exact: true }).fill("Hello mate")
    await page.getByRole("button", { name: "Start chat" }).click()
    await page.waitForURL(/\/chats\/c/)
    chatUrl = page.url()
    await poll(() => lastReply(page), { timeout: 15_000 }).toBe("You said: Hello mate")

    // watch the reply grow: record every text the page shows while it streams
    await page.evaluate(() => {
      const seen: string[] = []
      ;(window as unknown as { __seen: string[] }).__seen = seen
      new MutationObserver(() => {
        const replies = document.querySelectorAll("article.turn [data-testid=reply-text]")
        const text = replies[replies.length - 1]?.textContent?.replace(/\s+/g, " ").trim()
        if (text && seen.at(-1) !== text) seen.push(text)
      }).observe(document.querySelector(".messages")!, { subtree: true, childList: true, characterData: true })
    })
    // long enough to stream for a good second: the journal writes a growing reply at most every 100 ms
    const long = words(120)
    await sendFromComposer(page, long)
    await poll(() => lastReply(page), { timeout: 15_000 }).toBe(`You said: ${long}`)
    const seen = await page.evaluate(() => (window as unknown as { __seen: string[] }).__seen)
    const growing = seen.filter((s) => s.startsWith("You said: w1"))
    expect(growing.length).toBeGreaterThan(8)
    for (let i = 1; i < growing.length; i++) expect(growing[i]!.startsWith(growing[i - 1]!)).toBe(true)

    // Markdown with highlighted code; HTML in a reply is text, never markup that runs
    const hostile = 'Look: <img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script> [x](javascript:window.__pwned=3)\n\n```js\nconst answer = 42\n```'
    await sendFromComposer(page, hostile)
    const reply = page.locator("article.turn").last()
    await poll(() => reply.locator("pre code.hljs .hljs-keyword").count(), { timeout: 15_000 }).toBeGreaterThan(0)
    // the javascript: link lost its target
    expect(await reply.locator("a", { hasText: /^x$/ }).getAttribute("href")).toBeNull()
    await reply.locator("a", { hasText: /^x$/ }).click()
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined()
    expect(await reply.locator("img, script").count()).toBe(0)
    expect(await reply.innerText()).toContain('<img src=x onerror="window.__pwned=1">')
    await shot(page, "03-chat", false)
  }, 90_000)

  it("a reload mid-reply continues the reply without a gap or a duplicate", async () => {
    pictureOnFailure("t3")
    const long = words(300, "r")
    await sendFromComposer(page, long)
    await poll(async () => /^You said: r1 /.test(await lastReply(page).catch(() => "")) ? (await lastReply(page)).split(" ").length : 0, { timeout: 15_000 }).toBeGreaterThan(30)
    await page.reload()
    // right after the reload the reply is still running and shows what was said so far, once
    const expected = `You said: ${long}`
    await poll(() => lastReply(page).catch(() => ""), { timeout: 15_000 }).toMatch(/^You said: r1 r2/)
    const midway = await lastReply(page)
    expect(expected.startsWith(midway)).toBe(true)
    expect(midway.length).toBeLessThan(expected.length)
    await poll(() => lastReply(page), { timeout: 30_000 }).toBe(expected)
    expect(await page.locator("article.turn").count()).toBe(4)
  }, 90_000)

  it("Stop cancels a running reply; a message can be deleted", async () => {
    pictureOnFailure("t4")
    await sendFromComposer(page, words(300, "c"))
    await poll(async () => /^You said: c1 /.test(await lastReply(page).catch(() => "")) ? (await lastReply(page)).split(" ").length : 0, { timeout: 15_000 }).toBeGreaterThan(5)
    await page.getByRole("button", { name: "Stop" }).click()
    const turn = page.locator("article.turn").last()
    await poll(() => turn.getAttribute("data-status"), { timeout: 15_000 }).toBe("cancelled")
    await poll(() => turn.getByText("Stopped").isVisible()).toBe(true)
    const stopped = await lastReply(page)
    expect(stopped).toMatch(/^You said: c1 c2 c3 c4/)
    expect(stopped.length).toBeLessThan(`You said: ${words(300, "c")}`.length)
    // the composer works again, and the first message can be deleted
    await poll(() => page.getByRole("button", { name: "Stop" }).count()).toBe(0)
    const first = page.locator("article.user").first()
    await first.getByRole("button", { name: "Delete this message" }).click()
    await poll(() => page.locator("article.user", { hasText: "Hello mate" }).count()).toBe(0)
  }, 60_000)

  it("files attached to a message: checked by the server, refused ones say why, the mate reads the accepted ones", async () => {
    pictureOnFailure("t4b")
    const picker = page.getByTestId("file-picker")
    await picker.setInputFiles([
      { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("The secret word is pelican.\n") },
      { name: "drawing.svg", mimeType: "image/svg+xml", buffer: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>') }
    ])
    const list = page.getByRole("list", { name: "Attachments" })
    await poll(() => list.getByRole("listitem").filter({ hasText: "notes.txt" }).innerText(), { timeout: 30_000 }).toMatch(/ready/)
    await poll(() => list.getByRole("listitem").filter({ hasText: "drawing.svg" }).innerText(), { timeout: 30_000 }).toMatch(/refused: .*SVG/)
    await shot(page, "19-attachments", false)
    await list.getByRole("button", { name: "Remove drawing.svg" }).click()
    await sendFromComposer(page, "What does the file say?")
    await poll(() => page.locator("article.user").last().innerText()).toContain("Attached: notes.txt")
    await poll(() => lastReply(page), { timeout: 30_000 }).toMatch(/^You said: What does the file say\?.*pelican/)
    expect(await list.count()).toBe(0)
  }, 90_000)

  it("a share link opens in a second browser and decrypts there, read-only", async () => {
    pictureOnFailure("t5")
    await page.getByRole("button", { name: "Share" }).click()
    let link = ""
    await poll(async () => (link = await page.getByTestId("secret-value").innerText())).not.toBe("")
    expect(link).toMatch(new RegExp(`^${url}/s/c[\\w-]+\\.[\\w-]+#[\\w-]+$`))
    await page.getByRole("button", { name: "Close" }).click()
    const stranger = await newContext()
    const shared = await stranger.newPage()
    await shared.goto(link)
    await poll(() => shared.getByRole("heading", { level: 1 }).innerText(), { timeout: 15_000 }).toBe("Hello mate")
    expect(await shared.getByText("You said: w1 w2 w3").count()).toBe(1)
    expect(await shared.getByLabel(/^Message/).count()).toBe(0)
    await shot(shared, "04-shared")
    // without the fragment the page cannot read it
    await shared.goto(link.split("#")[0]!)
    await poll(() => shared.getByRole("alert").innerText()).toContain("missing its key")
    await stranger.close()
  }, 60_000)

  it("an API key made in the app works from Node with its scopes, and stops when revoked", async () => {
    pictureOnFailure("t6")
    await page.goto(`${url}/settings/keys`)
    await page.getByLabel("Name").fill("backup script")
    await page.getByRole("checkbox", { name: /^Chats/ }).check()
    await page.getByLabel("Spend cap in credits (optional)").fill("50")
    await page.getByRole("button", { name: "Create key" }).click()
    const key = (await page.getByTestId("new-key").getByTestId("secret-value").innerText()).trim()
    expect(key).toMatch(/^trp_/)
    await shot(page, "05-api-key")
    const auth = { authorization: `Bearer ${key}`, "content-type": "application/json" }
    const chats = await fetch(`${url}/v1/chats`, { headers: auth })
    expect(chats.status).toBe(200)
    const chatId = chatUrl.split("/").pop()!
    expect(((await chats.json()) as { chats: Array<{ id: string }> }).chats.map((c) => c.id)).toContain(chatId)
    const posted = await fetch(`${url}/v1/chats/${chatId}/messages`, { method: "POST", headers: auth, body: JSON.stringify({ client_message_id: "from-node-1", text: "from Node" }) })
    expect(posted.status).toBe(202)
    // account management needs a session, not a key
    expect((await fetch(`${url}/v1/api_keys`, { headers: auth })).status).toBe(403)
    await page.reload()
    await page.getByRole("button", { name: "Revoke backup script" }).click()
    await poll(() => page.getByText("No keys yet.").isVisible()).toBe(true)
    const refused = await fetch(`${url}/v1/chats`, { headers: auth })
    expect(refused.status).toBe(401)
  }, 60_000)

  it("a mate with an allowlist of skills from the installed apps", async () => {
    pictureOnFailure("t7")
    await page.goto(`${url}/mates`)
    await page.getByRole("link", { name: "New mate" }).click()
    await page.getByLabel("Name").fill("Researcher")
    await page.getByLabel("Instructions (system prompt)").fill("Answer briefly and cite your sources.")
    expect(await page.locator("fieldset .skills input[type=checkbox]").count()).toBeGreaterThan(1)
    const skillId = "math.calculate"
    await page.getByRole("checkbox", { name: /^math\.calculate/ }).check()
    await shot(page, "06-mate-edit")
    await page.getByRole("button", { name: "Create mate" }).click()
    await page.waitForURL(`${url}/mates`)
    await poll(() => page.getByRole("heading", { name: "Researcher" }).isVisible()).toBe(true)
    const mates = await page.evaluate(() => fetch("/v1/mates").then((r) => r.json())) as { mates: Array<{ id: string; name: string; allowed_skills: string[] }> }
    const researcher = mates.mates.find((m) => m.name === "Researcher")!
    expect(researcher.allowed_skills).toEqual([skillId])
    // chat with it
    await page.goto(`${url}/chats`)
    await page.getByLabel("Mate").selectOption(researcher.id)
    await page.getByLabel("Message", { exact: true }).fill('/math.calculate {"expression": "2^10 / 8"}')
    await page.getByRole("button", { name: "Start chat" }).click()
    await poll(() => page.getByText("with Researcher").isVisible(), { timeout: 15_000 }).toBe(true)
    // the skill call is shown inline, collapsed; opening it shows its input and result
    const call = page.locator("article.turn details.call").first()
    await poll(() => call.locator("summary").innerText(), { timeout: 15_000 }).toMatch(/math\.calculate\s+done/)
    await call.locator("summary").click()
    expect(await call.innerText()).toContain('"expression": "2^10 / 8"')
    expect(await call.innerText()).toContain("128")
    // a skill outside the allowlist is refused
    await sendFromComposer(page, '/web.read {"url": "https://example.com"}')
    await poll(() => page.locator("article.turn").last().innerText(), { timeout: 15_000 }).toMatch(/not allowed|allow|may not/i)
    researcherChatUrl = page.url()
    await shot(page, "07-mate-chat", false)
  }, 60_000)

  it("admin store: browse, trust the key, install; a writing skill asks first (approve, deny); an upgrade's permission diff is approved", async () => {
    pictureOnFailure("t7b")
    // an author publishes a signed app from Node with an API key of scope publish (what `troupe skill publish` does)
    const made = await page.evaluate(async () => {
      const csrf = decodeURIComponent(document.cookie.split("; ").find((c) => c.startsWith("troupe_csrf="))!.split("=")[1]!)
      const res = await fetch("/v1/api_keys", { method: "POST", headers: { "content-type": "application/json", "x-csrf-token": csrf }, body: JSON.stringify({ name: "publish", scopes: ["publish"] }) })
      return (await res.json()) as { key: string }
    })
    const publish = (version: string, hosts: Array<string> = []) =>
      Effect.runPromise(StoreClient.publish({ url, token: made.key }, { manifest: helloManifest(version, hosts), modules: [{ name: "main", bytes: helloWasm() }], privateKey: publisherKey }))
    await publish("1.0.0")

    await page.goto(`${url}/apps`)
    await page.getByRole("link", { name: "Browse the app store" }).click()
    await page.getByLabel("Search the store").fill("assemblyscript")
    await page.getByRole("button", { name: "Search" }).click()
    await poll(() => page.getByRole("status").filter({ hasText: "app matches" }).innerText()).toContain("1 app matches")
    await page.getByRole("link", { name: "Hello" }).click()
    await page.waitForURL(`${url}/apps/store/hello`)
    await poll(() => page.getByText("signed by an untrusted key").isVisible()).toBe(true)
    await page.getByRole("button", { name: "Trust this key" }).click()
    await poll(() => page.getByText("signed by a trusted key").isVisible()).toBe(true)
    await page.getByRole("button", { name: "Install v1.0.0" }).click()
    await poll(() => page.getByRole("status").filter({ hasText: "Installed v1.0.0" }).isVisible(), { timeout: 20_000 }).toBe(true)
    await poll(() => page.getByText("v1.0.0 installed").isVisible()).toBe(true)
    await shot(page, "14-store-app")

    // the Researcher may use it now
    await page.goto(`${url}/mates`)
    await page.getByRole("link", { name: "Edit Researcher" }).click()
    await page.getByRole("checkbox", { name: /^hello\.hello/ }).check()
    await page.getByRole("button", { name: "Save" }).click()
    await page.waitForURL(`${url}/mates`)

    // a skill that changes things waits for the person: Approve runs it, Deny refuses it
    await page.goto(researcherChatUrl)
    await sendFromComposer(page, '/hello.hello {"name": "Ada"}')
    let turn = page.locator("article.turn").last()
    const ask = turn.getByRole("group", { name: "Confirmation needed" })
    await poll(() => ask.isVisible(), { timeout: 15_000 }).toBe(true)
    expect(await ask.innerText()).toContain("wants to run hello.hello")
    await shot(page, "15-confirmation", false)
    await ask.getByRole("button", { name: "Approve" }).click()
    await poll(() => turn.locator("details.call summary").innerText(), { timeout: 15_000 }).toMatch(/hello\.hello\s+done/)
    expect(await ask.getByTestId("confirmation-answer").innerText()).toBe("You approved this.")
    await turn.locator("details.call summary").click()
    expect(await turn.locator("details.call").innerText()).toContain("Hello from AssemblyScript!")
    await poll(() => turn.getAttribute("data-status"), { timeout: 15_000 }).toBe("done")
    await sendFromComposer(page, '/hello.hello {"name": "Bob"}')
    turn = page.locator("article.turn").last()
    await poll(() => turn.getByRole("button", { name: "Deny" }).isVisible(), { timeout: 15_000 }).toBe(true)
    await turn.getByRole("button", { name: "Deny" }).click()
    await poll(() => turn.locator("details.call summary").innerText(), { timeout: 15_000 }).toMatch(/hello\.hello\s+failed/)
    expect(await turn.getByTestId("confirmation-answer").innerText()).toContain("You denied this")
    await turn.locator("details.call summary").click()
    expect(await turn.locator("details.call").innerText()).toContain("confirmation_declined")

    // an upgrade that wants the network waits with its diff until the admin approves it
    await publish("1.1.0", ["api.example.com"])
    await page.goto(`${url}/apps/store/hello`)
    await page.getByRole("button", { name: "Upgrade to v1.1.0" }).click()
    const pending = page.getByRole("region", { name: "Upgrade to v1.1.0 waits for your approval" })
    await poll(() => pending.isVisible(), { timeout: 20_000 }).toBe(true)
    const change = pending.getByRole("row").filter({ hasText: "permissions.allowedHosts" })
    expect(await change.innerText()).toContain("asks for more")
    expect(await change.innerText()).toContain("api.example.com")
    expect(await page.getByText("v1.0.0 installed").isVisible()).toBe(true)
    await shot(page, "16-store-upgrade-diff")
    await pending.getByRole("button", { name: "Approve v1.1.0" }).click()
    await poll(() => page.getByText("v1.1.0 installed").isVisible(), { timeout: 20_000 }).toBe(true)
    expect(await pending.count()).toBe(0)
    const apps = await page.evaluate(() => fetch("/v1/apps/hello").then((r) => r.json())) as { version: string }
    expect(apps.version).toBe("1.1.0")
  }, 90_000)

  it("admin: health, invites, users and grants; a second person signs up with the invite and the mailed code", async () => {
    pictureOnFailure("t8")
    await page.goto(`${url}/admin`)
    await poll(() => page.getByTestId("health-status").innerText(), { timeout: 15_000 }).toBe("healthy")
    await page.getByLabel("Gift credits").fill("10")
    await page.getByRole("button", { name: "Create invite" }).click()
    const invite = (await page.getByTestId("new-invite").getByTestId("secret-value").first().innerText()).trim()
    expect(invite).toMatch(/^inv_/)
    await page.getByRole("button", { name: "Grant credits to root" }).click()
    await page.getByLabel("Credits", { exact: true }).fill("25")
    await page.getByLabel("Reason").fill("welcome")
    await page.getByRole("button", { name: "Grant", exact: true }).click()
    await poll(() => page.getByText(/Granted 25 credits to root/).isVisible()).toBe(true)
    await shot(page, "08-admin")

    const newcomer = await newContext()
    const p = await newcomer.newPage()
    await p.goto(`${url}/signup?invite=${invite}`)
    await p.getByLabel("Email").fill("ada@example.com")
    await p.getByLabel("Username").fill("ada")
    await p.getByLabel("Password").fill(password)
    await p.getByRole("button", { name: "Create account" }).click()
    await p.waitForURL(/\/verify\?email=/)
    // the server could not mail the code: its log names the file that holds it
    let file = ""
    await poll(() => {
      const line = server.logs().find((l) => typeof l.message === "string" && l.message.startsWith("Mail not sent") && (l.context as { to?: string }).to === "ada@example.com")
      file = String((line?.context as { file?: string } | undefined)?.file ?? "")
      return file
    }, { timeout: 10_000 }).not.toBe("")
    const code = /verification code is (\d{6})/.exec(NodeFs.readFileSync(file, "utf8"))![1]!
    await p.getByLabel("Verification code").fill(code)
    await p.getByRole("button", { name: "Verify" }).click()
    await p.waitForURL(`${url}/chats`)
    await p.goto(`${url}/credits`)
    await poll(() => p.getByTestId("available").innerText()).toBe("110")
    expect(await p.getByRole("link", { name: "Admin" }).count()).toBe(0)
    await newcomer.close()
  }, 60_000)

  it("credits: balance, ledger and spend per day", async () => {
    pictureOnFailure("t9")
    await page.goto(`${url}/credits`)
    await poll(() => page.getByTestId("available").isVisible()).toBe(true)
    expect(await page.locator("table tbody tr").count()).toBeGreaterThan(3)
    const chart = await page.getByRole("img", { name: /Credits spent per day/ }).getAttribute("aria-label")
    expect(chart).toMatch(/: [1-9]\d* in all$/)
    await shot(page, "09-credits")
  }, 30_000)

  it("shows a readable error with Retry when the server fails, and recovers", async () => {
    pictureOnFailure("t10")
    await page.route("**/v1/credits", (route) => route.fulfill({ status: 503, contentType: "application/json", body: JSON.stringify({ error: { code: "unavailable", message: "Service unavailable" } }) }))
    await page.goto(`${url}/credits`)
    const alert = page.getByRole("alert")
    await poll(() => alert.innerText()).toContain("The server is busy or restarting")
    expect(await alert.innerText()).not.toContain("{")
    await page.unroute("**/v1/credits")
    await page.route("**/v1/credits", (route) => route.fulfill({ status: 502, contentType: "text/html", body: "<html>Bad gateway</html>" }))
    await alert.getByRole("button", { name: "Retry" }).click()
    await poll(() => alert.innerText()).toContain("(502)")
    await page.unroute("**/v1/credits")
    await alert.getByRole("button", { name: "Retry" }).click()
    await poll(() => page.getByTestId("available").isVisible()).toBe(true)

    // a slow server: the page says it is still trying, then shows the answer
    await page.route("**/v1/credits", async (route) => {
      await new Promise((r) => setTimeout(r, 4_000))
      await route.continue()
    })
    await page.goto(`${url}/credits`)
    await poll(() => page.getByRole("status").filter({ hasText: "slow to answer" }).isVisible()).toBe(true)
    await poll(() => page.getByTestId("available").isVisible(), { timeout: 15_000 }).toBe(true)
    await page.unroute("**/v1/credits")

    // the server unreachable when the app opens: a readable notice with Retry, not a blank page
    await page.route("**/v1/me", (route) => route.abort("connectionrefused"))
    await page.goto(`${url}/chats`)
    const down = page.getByRole("alert")
    await poll(() => down.innerText()).toContain("Cannot reach the server")
    expect(await down.innerText()).toContain("Could not reach the server")
    await shot(page, "17-server-down")
    await page.unroute("**/v1/me")
    await down.getByRole("button", { name: "Retry" }).click()
    await poll(() => page.getByRole("heading", { name: "New chat" }).isVisible()).toBe(true)

    // a form's refusal reads as a sentence next to the form
    await page.goto(`${url}/mates/new`)
    await page.getByLabel("Name").waitFor()
    await page.getByRole("button", { name: "Create mate" }).click()
    const refusal = page.getByRole("alert")
    await poll(() => refusal.innerText()).toMatch(/\w+ \w+/)
    expect(await refusal.innerText()).not.toMatch(/[{}]/)
    expect(await page.locator("main").innerText()).not.toMatch(/"error"|"code"/)
    await shot(page, "18-form-refusal")
  }, 60_000)

  it("turns 2FA on with the QR code and backup codes; signing in then asks for a code", async () => {
    pictureOnFailure("t11")
    await page.goto(`${url}/settings/security`)
    await page.getByRole("button", { name: "Set up two-factor authentication" }).click()
    const qr = page.getByRole("img", { name: /QR code/ })
    await poll(() => qr.evaluate((img) => (img as HTMLImageElement).naturalWidth)).toBeGreaterThan(0)
    await page.getByText("Can't scan it?").click()
    const secret = (await page.getByTestId("secret-value").innerText()).trim()
    const totp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), digits: 6, period: 30, algorithm: "SHA1" })
    await shot(page, "10-2fa-setup")
    await page.getByLabel("Enter the 6-digit code the app shows").fill(totp.generate())
    await page.getByRole("button", { name: "Turn on" }).click()
    await poll(() => page.getByRole("list", { name: "Backup codes" }).locator("li").count()).toBe(10)
    await page.getByRole("button", { name: "I saved them" }).click()
    await poll(() => page.getByText("Signing in asks for a code").isVisible()).toBe(true)

    await page.getByRole("button", { name: "Sign out", exact: true }).click()
    await page.waitForURL(`${url}/login`)
    await page.getByLabel("Email or username").fill("root")
    await page.getByLabel("Password").fill(password)
    await page.getByRole("button", { name: "Sign in", exact: true }).click()
    const codeField = page.getByLabel("Authentication code")
    await poll(() => codeField.isVisible()).toBe(true)
    await codeField.fill("000000")
    await page.getByRole("button", { name: "Sign in", exact: true }).click()
    await poll(() => page.getByRole("alert").innerText()).toContain("That code is not right")
    // the next step's code (the current one was spent turning 2FA on)
    await codeField.fill(totp.generate({ timestamp: Date.now() + 30_000 }))
    await page.getByRole("button", { name: "Sign in", exact: true }).click()
    await page.waitForURL(`${url}/chats`)
  }, 60_000)

  it("works at 375 px: nothing wider than the screen, the menu opens, the chat is usable", async () => {
    pictureOnFailure("t12")
    const phone = await newContext({ viewport: { width: 375, height: 812 }, storageState: await admin.storageState(), isMobile: true, hasTouch: true })
    const p = await phone.newPage()
    const signedOut = await newContext({ viewport: { width: 375, height: 812 }, isMobile: true, hasTouch: true })
    const anon = await signedOut.newPage()
    for (const path of ["/login", "/signup", "/reset"]) {
      await anon.goto(url + path)
      await anon.locator("main h1").first().waitFor()
      expect(await anon.evaluate(() => document.documentElement.scrollWidth), path).toBeLessThanOrEqual(375)
      await shot(anon, `11-phone${path.replace(/\//g, "-")}`)
    }
    await signedOut.close()
    const paths = ["/chats", chatUrl.replace(url, ""), "/mates", "/mates/new", "/apps", "/apps/store", "/apps/store/hello", "/credits", "/settings", "/settings/security", "/settings/keys", "/admin"]
    const pictured = ["/chats", "/apps/store/hello", "/credits", "/settings/keys", "/admin"]
    for (const path of paths) {
      await p.goto(url + path)
      await p.locator("main h1").first().waitFor()
      await p.waitForFunction(() => !/^Loading/.test(document.querySelector("main [role=status]")?.textContent?.trim() ?? ""), undefined, { timeout: 10_000 })
      const width = await p.evaluate(() => document.documentElement.scrollWidth)
      expect(width, path).toBeLessThanOrEqual(375)
      if (path.startsWith("/chats/")) await shot(p, "11-phone-chat", false)
      else if (pictured.includes(path)) await shot(p, `11-phone${path.replace(/\//g, "-")}`)
    }
    await p.goto(chatUrl)
    await p.getByRole("button", { name: "Menu" }).click()
    await poll(() => p.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Credits" }).isVisible()).toBe(true)
    await shot(p, "12-phone-menu", false)
    await p.getByRole("button", { name: "Menu" }).click()
    await sendFromComposer(p, "from my phone")
    await poll(() => lastReply(p), { timeout: 15_000 }).toBe("You said: from my phone")
    await phone.close()
  }, 90_000)

  it("works with the keyboard alone: skip link, sign-in, a chat sent and a dialog opened and closed, focus always visible", async () => {
    pictureOnFailure("t12b")
    const context = (adaContext = await newContext())
    const p = await context.newPage()
    /** Press Tab until the focused element is the one wanted (at most `max` presses); how many it took. */
    const tabTo = async (wanted: (el: { tag: string; name: string }) => boolean, max = 40) => {
      for (let i = 1; i <= max; i++) {
        await p.keyboard.press("Tab")
        const el = await p.evaluate(() => {
          const a = document.activeElement as HTMLElement | null
          const labelled = a?.id ? document.querySelector(`label[for="${a.id}"]`)?.textContent : undefined
          return { tag: a?.tagName.toLowerCase() ?? "", name: (a?.getAttribute("aria-label") ?? labelled ?? a?.textContent ?? "").trim() }
        })
        if (wanted(el)) return i
      }
      throw new Error("not reachable with Tab")
    }
    /** The focused element shows a focus ring. */
    const ringed = () => p.evaluate(() => {
      const style = getComputedStyle(document.activeElement!)
      return style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2
    })
    await p.goto(`${url}/login`)
    await p.locator("main h1").waitFor()
    await tabTo((e) => e.name === "Skip to content")
    expect(await ringed()).toBe(true)
    await tabTo((e) => e.name === "Email or username")
    await p.keyboard.type("ada")
    await p.keyboard.press("Tab")
    await p.keyboard.type(password)
    await p.keyboard.press("Enter")
    await p.waitForURL(`${url}/chats`)
    // a new chat from the keyboard
    await p.getByRole("heading", { name: "New chat" }).waitFor()
    await tabTo((e) => e.tag === "textarea")
    await p.keyboard.type("typed, not clicked")
    await p.keyboard.press("Enter")
    await p.waitForURL(/\/chats\/c/)
    adaChatUrl = p.url()
    await poll(() => lastReply(p), { timeout: 15_000 }).toBe("You said: typed, not clicked")
    // the share dialog: opened with Enter, focus inside it, closed with Escape
    await tabTo((e) => e.name === "Share")
    expect(await ringed()).toBe(true)
    await p.keyboard.press("Enter")
    const dialog = p.getByRole("dialog", { name: "Share this chat" })
    await poll(() => dialog.isVisible()).toBe(true)
    expect(await p.evaluate(() => document.activeElement?.closest("dialog") !== null)).toBe(true)
    await p.keyboard.press("Escape")
    await poll(() => dialog.isVisible()).toBe(false)
    // the menu of every page is reachable: Credits by Tab and Enter
    await p.goto(`${url}/chats`)
    await p.getByRole("heading", { name: "New chat" }).waitFor()
    await tabTo((e) => e.tag === "a" && e.name === "Credits")
    await p.keyboard.press("Enter")
    await p.waitForURL(`${url}/credits`)
  }, 60_000)

  it("settings and chats: a display name, a chat renamed and deleted, signing out everywhere, deleting the account", async () => {
    pictureOnFailure("t12c")
    const p = adaContext.pages()[0]!
    await p.goto(`${url}/settings`)
    await p.getByLabel("Display name").fill("Ada Lovelace")
    await p.getByRole("button", { name: "Save" }).click()
    await poll(() => p.getByRole("navigation", { name: "Main" }).getByText("Ada Lovelace").isVisible()).toBe(true)

    await p.goto(adaChatUrl)
    await p.getByRole("button", { name: "Rename" }).click()
    await p.getByLabel("Chat title").fill("Keyboard notes")
    await p.getByRole("button", { name: "Save" }).click()
    await poll(() => p.getByRole("heading", { level: 1 }).innerText()).toBe("Keyboard notes")
    await poll(() => p.getByRole("link", { name: /Keyboard notes/ }).count()).toBe(1)
    await p.getByRole("button", { name: "Delete", exact: true }).first().click()
    await p.getByRole("dialog", { name: "Delete this chat?" }).getByRole("button", { name: "Delete chat" }).click()
    await p.waitForURL(`${url}/chats`)
    expect(await p.getByRole("link", { name: /Keyboard notes/ }).count()).toBe(0)
    expect((await p.evaluate((u) => fetch(u).then((r) => r.status), adaChatUrl.replace(url, "/v1")))).toBe(404)

    // a second browser, then "Sign out everywhere" from the first signs both out
    const other = await newContext()
    const q = await other.newPage()
    await q.goto(`${url}/login`)
    await q.getByLabel("Email or username").fill("ada")
    await q.getByLabel("Password").fill(password)
    await q.getByRole("button", { name: "Sign in", exact: true }).click()
    await q.waitForURL(`${url}/chats`)
    await p.goto(`${url}/settings/security`)
    const sessions = p.getByRole("table", { name: "Where you are signed in" }).locator("tbody tr")
    await poll(() => sessions.count()).toBeGreaterThanOrEqual(2)
    await p.getByRole("button", { name: "Sign out everywhere" }).click()
    await p.waitForURL(/\/login/)
    await q.goto(`${url}/credits`)
    await q.waitForURL(/\/login/, { timeout: 15_000 })

    // delete the account: signing in again no longer works
    await q.getByLabel("Email or username").fill("ada")
    await q.getByLabel("Password").fill(password)
    await q.getByRole("button", { name: "Sign in", exact: true }).click()
    await q.waitForURL(/\/credits/)
    await q.goto(`${url}/settings`)
    await q.getByRole("button", { name: "Delete my account…" }).click()
    const dialog = q.getByRole("dialog", { name: "Delete your account?" })
    await dialog.getByLabel("Username").fill("ada")
    await dialog.getByRole("button", { name: "Delete account" }).click()
    await q.waitForURL(/\/login/)
    await q.getByLabel("Email or username").fill("ada")
    await q.getByLabel("Password").fill(password)
    await q.getByRole("button", { name: "Sign in", exact: true }).click()
    await poll(() => q.getByRole("alert").innerText()).toContain("Wrong login or password")
    await other.close()
    await adaContext.close()
  }, 60_000)

  it("axe-core finds no serious or critical violation on the main pages, light and dark", async () => {
    pictureOnFailure("t13")
    const signedOut = await newContext()
    const anon = await signedOut.newPage()
    const problems: string[] = []
    for (const path of ["/login", "/signup", "/reset"]) {
      await anon.goto(url + path)
      await anon.locator("main h1").waitFor()
      problems.push(...(await axeViolations(anon)).map((v) => `${path}: ${v}`))
    }
    await signedOut.close()
    // the pages with every kind of control (forms, tables, dialogs' openers, the chat, the store), light and dark
    const paths = ["/chats", chatUrl.replace(url, ""), "/mates/new", "/apps/store/hello", "/credits", "/settings/security", "/settings/keys", "/admin"]
    for (const scheme of ["light", "dark"] as const) {
      const context = await newContext({ colorScheme: scheme, storageState: await admin.storageState() })
      const p = await context.newPage()
      for (const path of scheme === "light" ? paths : [chatUrl.replace(url, ""), "/credits"]) {
        await p.goto(url + path)
        await p.locator("main h1").first().waitFor()
        await p.waitForFunction(() => !/^Loading/.test(document.querySelector("main [role=status]")?.textContent?.trim() ?? ""), undefined, { timeout: 10_000 })
        problems.push(...(await axeViolations(p)).map((v) => `${scheme} ${path}: ${v}`))
      }
      if (scheme === "dark") await shot(p, "13-dark-credits")
      await context.close()
    }
    expect(problems).toEqual([])
  }, 120_000)

  it("the chat page's first load stays under 300 KB of compressed JavaScript", async () => {
    pictureOnFailure("t14")
    const context = await newContext({ storageState: await admin.storageState() })
    const p = await context.newPage()
    const scripts: Array<Promise<number>> = []
    p.on("requestfinished", (request) => {
      if (request.resourceType() === "script") scripts.push(request.sizes().then((s) => s.responseBodySize))
    })
    await p.goto(chatUrl)
    await poll(() => p.locator("article.turn").count()).toBeGreaterThan(0)
    await p.waitForTimeout(1000)
    const sizes = await Promise.all(scripts)
    const total = sizes.reduce((a, b) => a + b, 0)
    process.stdout.write(`web: chat page first load: ${sizes.length} scripts, ${(total / 1024).toFixed(1)} KB compressed JavaScript\n`)
    expect(total).toBeGreaterThan(10_000)
    expect(total).toBeLessThan(300 * 1024)
    await context.close()
  }, 60_000)

  it("ran every page without a CSP violation or an uncaught error", () => {
    expect(cspViolations).toEqual([])
    expect(pageErrors).toEqual([])
  })
})

describe("identity in Chromium: passkeys on a virtual authenticator, a lost password, a new e-mail address", () => {
  const email = "grace@example.com"
  const newPassword = "a brand new password"
  /** Grace's browser, its page and the virtual platform authenticator attached to that page. */
  let grace: BrowserContext
  let g: Page
  let cdp: CDPSession
  let authenticatorId = ""

  /** Call the API from a page with its session (the CSRF header from its cookie), as the app does. */
  const apiFrom = (p: Page, method: string, path: string, body?: unknown) =>
    p.evaluate(async (r) => {
      const csrf = decodeURIComponent(document.cookie.split("; ").find((c) => c.startsWith("troupe_csrf="))?.split("=")[1] ?? "")
      const res = await fetch(r.path, { method: r.method, headers: { "content-type": "application/json", "x-csrf-token": csrf }, ...(r.body === undefined ? {} : { body: JSON.stringify(r.body) }) })
      return { status: res.status, body: (res.status === 204 ? null : await res.json()) as Record<string, string> }
    }, { method, path, body })

  /** The mails to `to` whose subject has `subject` (from the server's outbox: it has no SMTP server), once there are `count`. */
  const mailTo = async (to: string, subject: string, count = 1): Promise<OutboxMail> => {
    let found: ReadonlyArray<OutboxMail> = []
    await poll(async () => (found = (await mailsTo(dataDir, to)).filter((m) => m.subject.includes(subject))).length, { timeout: 30_000 }).toBeGreaterThanOrEqual(count)
    return found[count - 1]!
  }

  const signOut = async (p: Page) => {
    await p.getByRole("button", { name: "Sign out", exact: true }).click()
    await p.waitForURL(`${url}/login`)
  }

  it("signs up with a password, adds a passkey in settings, signs out and signs in with the passkey alone", async () => {
    pictureOnFailure("id1")
    // a plain start offers passkeys: TROUPE_PUBLIC_URL defaults to http://localhost:<port>, the relying party localhost
    const offered = await fetch(`${url}/v1/auth/passkey/options`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })
    expect(offered.status).toBe(200)
    expect(((await offered.json()) as { options: { rpId: string } }).options.rpId).toBe("localhost")

    const invite = await apiFrom(page, "POST", "/v1/admin/invites", { uses: 1 })
    expect(invite.status).toBe(201)
    grace = await newContext()
    g = await grace.newPage()
    cdp = await grace.newCDPSession(g)
    await cdp.send("WebAuthn.enable")
    authenticatorId = (await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true }
    })).authenticatorId

    await g.goto(`${url}/signup?invite=${invite.body.code}`)
    await g.getByLabel("Email").fill(email)
    await g.getByLabel("Username").fill("grace")
    await g.getByLabel("Password").fill(password)
    await g.getByRole("button", { name: "Create account" }).click()
    await g.waitForURL(/\/verify\?email=/)
    const code = /(\d{6})/.exec((await mailTo(email, "verification code")).subject)![1]!
    await g.getByLabel("Verification code").fill(code)
    await g.getByRole("button", { name: "Verify" }).click()
    await g.waitForURL(`${url}/chats`)

    await g.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Settings" }).click()
    await g.getByRole("navigation", { name: "Settings" }).getByRole("link", { name: "Security" }).click()
    await poll(() => g.getByText("No passkeys yet.").isVisible()).toBe(true)
    await g.getByLabel("Name", { exact: true }).fill("Work laptop")
    await g.getByRole("button", { name: "Add a passkey" }).click()
    const listed = g.getByRole("list", { name: "Your passkeys" }).locator("li")
    await poll(() => listed.count()).toBe(1)
    expect(await listed.innerText()).toContain("Work laptop")
    expect(await listed.innerText()).toContain("not used yet")
    // the authenticator holds it as a discoverable credential of localhost
    const held = await cdp.send("WebAuthn.getCredentials", { authenticatorId })
    expect(held.credentials).toHaveLength(1)
    expect(held.credentials[0]).toMatchObject({ isResidentCredential: true, rpId: "localhost" })
    expect(await axeViolations(g)).toEqual([])
    await shot(g, "20-passkeys")

    await signOut(g)
    await g.getByRole("button", { name: "Sign in with a passkey" }).click()
    await g.waitForURL(`${url}/chats`)
    expect(await g.getByRole("navigation", { name: "Main" }).innerText()).toContain("grace")
    expect((await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials[0]!.signCount).toBeGreaterThan(0)
    await g.goto(`${url}/settings/security`)
    await poll(() => listed.innerText()).toContain("last used")
  }, 120_000)

  it("a lost password: Forgot password? mails a link; its page sets a new password, signs out every session, and the new password signs in", async () => {
    pictureOnFailure("id2")
    const other = await newContext()
    const p = await other.newPage()
    await p.goto(`${url}/login`)
    await p.getByRole("link", { name: "Forgot password?" }).click()
    await p.waitForURL(`${url}/reset`)
    await p.getByLabel("Email").fill(email)
    await p.getByRole("button", { name: "Send the link" }).click()
    await poll(() => p.getByRole("status").first().innerText()).toContain("a link to set a new password is on its way")
    const mail = await mailTo(email, "Reset")
    const link = /(http:\/\/\S+\/reset\?token=\S+)/.exec(mail.text)![1]!
    expect(link.startsWith(`${url}/reset?token=`)).toBe(true)

    await p.goto(link)
    await p.getByLabel("New password").fill("short")
    await p.getByRole("button", { name: "Set password" }).click()
    await poll(() => p.getByRole("alert").isVisible()).toBe(true)
    expect(await axeViolations(p)).toEqual([])
    await p.getByLabel("New password").fill(newPassword)
    await p.getByRole("button", { name: "Set password" }).click()
    await p.waitForURL(`${url}/login?reset=1`)
    await poll(() => p.getByRole("status").first().innerText()).toContain("Your new password is set")
    await shot(p, "21-reset-done")
    // the link works once
    await p.goto(link)
    await p.getByLabel("New password").fill("yet another password")
    await p.getByRole("button", { name: "Set password" }).click()
    await poll(() => p.getByRole("alert").innerText()).toContain("used already")
    await other.close()

    // Grace's browser was signed out; the old password no longer works, the new one does
    await g.goto(`${url}/credits`)
    await g.waitForURL(/\/login/, { timeout: 15_000 })
    await g.getByLabel("Email or username").fill("grace")
    await g.getByLabel("Password").fill(password)
    await g.getByRole("button", { name: "Sign in", exact: true }).click()
    await poll(() => g.getByRole("alert").innerText()).toContain("Wrong login or password")
    await g.getByLabel("Password").fill(newPassword)
    await g.getByRole("button", { name: "Sign in", exact: true }).click()
    await g.waitForURL(`${url}/credits`)
  }, 120_000)

  it("changes the e-mail address in settings only with the code mailed to the new address; the old address is told", async () => {
    pictureOnFailure("id3")
    const facts = g.locator("dl.facts")
    await g.goto(`${url}/settings`)
    await g.getByLabel("New email address").fill("grace@new.example.com")
    await g.getByLabel("Your password").fill(newPassword)
    await g.getByRole("button", { name: "Change email" }).click()
    const codeField = g.getByLabel("Confirmation code")
    await poll(() => codeField.isVisible()).toBe(true)
    expect(await facts.innerText()).toContain(email)
    expect(await axeViolations(g)).toEqual([])
    const code = /(\d{6})/.exec((await mailTo("grace@new.example.com", "Confirm your new")).subject)![1]!
    await codeField.fill(code === "000000" ? "111111" : "000000")
    await g.getByRole("button", { name: "Confirm new address" }).click()
    await poll(() => g.getByRole("alert").innerText()).toContain("That code is wrong")
    await codeField.fill(code)
    await g.getByRole("button", { name: "Confirm new address" }).click()
    await poll(() => facts.innerText()).toContain("grace@new.example.com")
    expect(await g.getByRole("status").first().innerText()).toContain("Your email address is now grace@new.example.com")
    expect((await mailTo(email, "was changed")).text).toContain("grace@new.example.com")
  }, 60_000)

  it("a passkey stands in for the code when 2FA is on; a removed passkey signs in no more", async () => {
    pictureOnFailure("id4")
    // 2FA on through the API (its pages are walked above, by the admin)
    const setup = await apiFrom(g, "POST", "/v1/auth/2fa/setup")
    const totp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(setup.body.secret!) })
    expect((await apiFrom(g, "POST", "/v1/auth/2fa/confirm", { code: totp.generate() })).status).toBe(200)
    await signOut(g)
    await g.getByLabel("Email or username").fill("grace")
    await g.getByLabel("Password").fill(newPassword)
    await g.getByRole("button", { name: "Sign in", exact: true }).click()
    await poll(() => g.getByLabel("Authentication code").isVisible()).toBe(true)
    expect(await axeViolations(g)).toEqual([])
    await g.getByRole("button", { name: "Use a passkey instead" }).click()
    await g.waitForURL(`${url}/chats`)

    await g.goto(`${url}/settings/security`)
    await g.getByRole("button", { name: "Remove Work laptop" }).click()
    await poll(() => g.getByText("No passkeys yet.").isVisible()).toBe(true)
    await signOut(g)
    await g.getByRole("button", { name: "Sign in with a passkey" }).click()
    await poll(() => g.getByRole("alert").innerText()).toContain("not registered here")
    expect(g.url()).toBe(`${url}/login`)
    await grace.close()
  }, 60_000)

  it("single sign-on: the provider's button signs in through its pages and back; with SSO only, the sign-in page shows only the providers", async () => {
    pictureOnFailure("id5")
    const context = await newContext()
    const p = await context.newPage()
    await p.goto(`${url}/login?next=${encodeURIComponent("/credits")}`)
    await p.getByRole("link", { name: "Sign in with Acme SSO" }).click()
    // the provider's own pages: any login, then consent
    await p.waitForURL((u) => u.href.startsWith(`${issuer}/interaction/`), { timeout: 15_000 })
    await p.locator("input[name=login]").fill("sam")
    await p.locator("input[name=password]").fill("anything")
    await p.locator("button[type=submit]").click()
    const consent = p.getByRole("button", { name: "Continue" })
    await poll(async () => p.url().startsWith(`${url}/credits`) || (await consent.isVisible().catch(() => false))).toBe(true)
    if (!p.url().startsWith(`${url}/credits`)) await consent.click()
    await p.waitForURL(`${url}/credits`, { timeout: 15_000 })
    await poll(() => p.getByRole("navigation", { name: "Main" }).innerText()).toContain("sam")
    await context.close()

    // TROUPE_SSO_ONLY: the server says so, and the page offers nothing else
    const only = await newContext()
    const q = await only.newPage()
    await q.route("**/v1/auth/oidc/providers", async (route) => {
      const real = (await (await route.fetch()).json()) as { providers: unknown[] }
      await route.fulfill({ json: { ...real, sso_only: true } })
    })
    await q.goto(`${url}/login`)
    await poll(() => q.getByRole("link", { name: "Sign in with Acme SSO" }).isVisible()).toBe(true)
    expect(await q.getByLabel("Email or username").count()).toBe(0)
    expect(await q.getByRole("button", { name: "Sign in with a passkey" }).count()).toBe(0)
    expect(await q.getByRole("link", { name: "Forgot password?" }).count()).toBe(0)
    expect(await q.getByRole("link", { name: "Create an account" }).count()).toBe(0)
    expect(await axeViolations(q)).toEqual([])
    await shot(q, "22-sso-only")
    await only.close()
  }, 60_000)

  it("ran the identity pages without a CSP violation or an uncaught error", () => {
    expect(cspViolations).toEqual([])
    expect(pageErrors).toEqual([])
  })
})
