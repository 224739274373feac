/**
 * Reading Server-Sent Events as a client does: the frames of a response body, each as its fields
 * (`id`, `event`, `data` …) and the number of comment lines (`: keep-alive`). No dependencies, so the
 * tests and the benchmark's client worker share it without loading the server.
 */

/** One SSE frame: its fields (the last value of each) and how many comment lines it had. */
export interface SseFrame {
  readonly fields: Readonly<Record<string, string>>
  readonly comments: number
}

const parseFrame = (block: string): SseFrame => {
  const fields: Record<string, string> = {}
  let comments = 0
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) comments++
    const m = /^(\w+): ?(.*)$/.exec(line)
    if (m) fields[m[1]!] = m[2]!
  }
  return { fields, comments }
}

/** The frames of an SSE body, as many as each read completes, as they arrive; ends with the body. */
export async function* sseFrames(body: ReadableStream<Uint8Array>): AsyncGenerator<ReadonlyArray<SseFrame>> {
  const reader = body.getReader()
  const decoder = new TextDecoder()
  let buffer = ""
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    buffer += decoder.decode(value, { stream: true })
    const frames: Array<SseFrame> = []
    let cut: number
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      frames.push(parseFrame(buffer.slice(0, cut)))
      buffer = buffer.slice(cut + 2)
    }
    if (frames.length > 0) yield frames
  }
}
