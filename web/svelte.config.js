import adapter from "@sveltejs/adapter-static"

/**
 * A single-page app: every route renders in the browser (ssr off in +layout.ts); the gateway
 * serves build/index.html for client routes and build/_app/immutable/* with immutable caching.
 * The gateway sets the Content-Security-Policy header itself (it hashes the page's one inline
 * bootstrap script), so nothing here needs 'unsafe-inline'.
 */
/** @type {import('@sveltejs/kit').Config} */
const config = {
  kit: {
    adapter: adapter({ pages: "build", assets: "build", fallback: "index.html", precompress: true, strict: true }),
    output: { preloadStrategy: "modulepreload" },
    version: { pollInterval: 0 }
  }
}

export default config
