/** How numbers and times read on the page. */

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" })
const dateOnly = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" })
const number = new Intl.NumberFormat()

export const formatDateTime = (iso: string | null | undefined): string => (iso ? dateTime.format(new Date(iso)) : "—")
export const formatDate = (iso: string | null | undefined): string => (iso ? dateOnly.format(new Date(iso)) : "—")
export const formatNumber = (n: number): string => number.format(n)
export const formatCredits = (n: number): string => `${number.format(n)} ${Math.abs(n) === 1 ? "credit" : "credits"}`

/** "3 minutes ago", "yesterday" … */
export const relativeTime = (iso: string, now: number = Date.now()): string => {
  const seconds = Math.round((new Date(iso).getTime() - now) / 1000)
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" })
  const abs = Math.abs(seconds)
  if (abs < 60) return rtf.format(seconds, "second")
  if (abs < 3600) return rtf.format(Math.round(seconds / 60), "minute")
  if (abs < 86_400) return rtf.format(Math.round(seconds / 3600), "hour")
  if (abs < 30 * 86_400) return rtf.format(Math.round(seconds / 86_400), "day")
  return formatDate(iso)
}

/** A chat's title as shown (an untitled chat gets a neutral name). */
export const chatTitle = (title: string): string => title.trim() || "Untitled chat"

/** A title from the first message of a chat. */
export const titleFrom = (text: string): string => {
  const line = text.trim().split("\n")[0]!.trim()
  return line.length > 60 ? line.slice(0, 57).trimEnd() + "…" : line
}

/** A short readable browser name from a user agent string. */
export const describeAgent = (ua: string): string => {
  if (!ua) return "Unknown client"
  const browser = /Edg\//.test(ua) ? "Edge" : /Chrome\//.test(ua) ? "Chrome" : /Firefox\//.test(ua) ? "Firefox" : /Safari\//.test(ua) ? "Safari" : /node|undici/i.test(ua) ? "Program" : "Browser"
  const os = /Windows/.test(ua) ? "Windows" : /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Mac OS X/.test(ua) ? "macOS" : /Linux/.test(ua) ? "Linux" : ""
  return os ? `${browser} on ${os}` : browser
}
