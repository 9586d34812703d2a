// Text placed inside SVG/XML markup (chart titles, grid labels, file names).

/** `text` with the five XML special characters escaped, safe inside elements and attributes. */
export function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);
}
