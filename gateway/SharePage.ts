/**
 * The page of a share link, `/s/<token>#<key>`: it fetches the encrypted snapshot from
 * `/v1/shares/<token>` and decrypts it in the browser with the key from the URL fragment
 * (never sent to the server). The snapshot is base64url of `nonce (12 bytes) ‖ AES-256-GCM(JSON)`.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as NodeCrypto from "node:crypto"

const page = (nonce: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>Shared chat · Troupe</title>
<style nonce="${nonce}">body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}
.m{margin:1rem 0;padding:.75rem 1rem;border-radius:.5rem;background:#f3f3f5;white-space:pre-wrap}.mate{background:#eef5ff}.who{font-size:.8rem;color:#666}</style></head>
<body><h1>Shared chat</h1><div id="out">Decrypting…</div>
<script nonce="${nonce}">
(async () => {
  const out = document.getElementById("out");
  const b64 = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4)), (c) => c.charCodeAt(0));
  try {
    const token = location.pathname.split("/").pop();
    const key = location.hash.slice(1);
    if (!key) throw new Error("This link has no key (the part after #).");
    const res = await fetch("/v1/shares/" + encodeURIComponent(token));
    if (!res.ok) throw new Error(res.status === 404 ? "This share does not exist or was deleted." : "Could not load the share (" + res.status + ").");
    const { ciphertext } = await res.json();
    const bytes = b64(ciphertext);
    const k = await crypto.subtle.importKey("raw", b64(key), "AES-GCM", false, ["decrypt"]);
    const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: bytes.slice(0, 12) }, k, bytes.slice(12));
    const data = JSON.parse(new TextDecoder().decode(plain));
    out.textContent = "";
    const messages = Array.isArray(data) ? data : (data.messages || []);
    if (data.title) { const h = document.createElement("h2"); h.textContent = data.title; out.append(h); }
    for (const m of messages) {
      const div = document.createElement("div");
      div.className = "m " + (m.role === "mate" ? "mate" : "user");
      const who = document.createElement("div"); who.className = "who"; who.textContent = m.role || "";
      const text = document.createElement("div"); text.textContent = m.text ?? JSON.stringify(m);
      div.append(who, text); out.append(div);
    }
    if (messages.length === 0) { const pre = document.createElement("pre"); pre.textContent = JSON.stringify(data, null, 2); out.append(pre); }
  } catch (e) { out.textContent = e.message || "Could not decrypt this share."; }
})();
</script></body></html>`

/** `GET /s/:token`. */
export const handler = Effect.map(HttpRouter.params, () => {
  const nonce = NodeCrypto.randomBytes(16).toString("base64")
  return HttpServerResponse.html(page(nonce)).pipe(
    HttpServerResponse.setHeaders({
      "content-security-policy": `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'`,
      "cache-control": "no-store"
    })
  )
})
