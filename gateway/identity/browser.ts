/**
 * A browser for the single sign-on tests: a cookie jar (per host and port) and redirects followed
 * by hand, through the pages of oidc-provider's development interactions (a login form that takes
 * any account id, then a consent form), as a person clicking through would.
 */
import { expect } from "vitest"

/** Cookies per origin. */
export class CookieJar {
  private readonly byOrigin = new Map<string, Map<string, string>>()

  header(url: URL): string {
    return [...(this.byOrigin.get(url.host) ?? new Map<string, string>())].map(([k, v]) => `${k}=${v}`).join("; ")
  }

  get(url: URL, name: string): string | undefined {
    return this.byOrigin.get(url.host)?.get(name)
  }

  store(url: URL, response: Response): void {
    const jar = this.byOrigin.get(url.host) ?? new Map<string, string>()
    this.byOrigin.set(url.host, jar)
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(";")
      const eq = pair!.indexOf("=")
      const name = pair!.slice(0, eq).trim()
      const value = pair!.slice(eq + 1).trim()
      const expired = attributes.some((a) => /^\s*max-age=0\s*$/i.test(a)) || value === ""
      if (expired) jar.delete(name)
      else jar.set(name, value)
    }
  }
}

/** One request with the jar's cookies (redirects not followed). */
export const visit = async (jar: CookieJar, url: URL, init: { readonly method?: string; readonly form?: Record<string, string>; readonly headers?: Record<string, string> } = {}) => {
  const headers: Record<string, string> = { cookie: jar.header(url), ...init.headers }
  let body: string | undefined
  if (init.form) {
    headers["content-type"] = "application/x-www-form-urlencoded"
    body = new URLSearchParams(init.form).toString()
  }
  const response = await fetch(url, { method: init.method ?? (body ? "POST" : "GET"), headers, body, redirect: "manual", signal: AbortSignal.timeout(30_000) })
  jar.store(url, response)
  return response
}

/**
 * Follow redirects from `start`, signing in at the provider's pages as `account`, until a URL for
 * which `stop` says so (returned unvisited) or a page that is not a redirect (returned with its response).
 */
export const browse = async (jar: CookieJar, start: URL, account: string, stop: (url: URL) => boolean) => {
  let url = start
  for (let hops = 0; hops < 20; hops++) {
    if (stop(url)) return { url, response: undefined }
    const response = await visit(jar, url)
    if (response.status >= 300 && response.status < 400) {
      url = new URL(response.headers.get("location")!, url)
      continue
    }
    if (response.status === 200 && /\/interaction\/[^/]+$/.test(url.pathname)) {
      const html = await response.text()
      const action = new URL(/action="([^"]+)"/.exec(html)![1]!, url)
      const prompt = /name="prompt" value="(\w+)"/.exec(html)![1]!
      const submitted = await visit(jar, action, { form: prompt === "login" ? { prompt, login: account, password: "any" } : { prompt } })
      expect(submitted.status).toBeGreaterThanOrEqual(300)
      url = new URL(submitted.headers.get("location")!, action)
      continue
    }
    return { url, response }
  }
  throw new Error(`too many redirects from ${start.href}`)
}
