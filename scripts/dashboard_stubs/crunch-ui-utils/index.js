export function cn(...parts) {
  return parts.flat(Infinity).filter((p) => typeof p === "string" && p).join(" ");
}
export function generateLink(path, params = {}) {
  return Object.entries(params).reduce((out, [k, v]) => out.replace(`[${k}]`, v).replace(`:${k}`, v), path);
}
