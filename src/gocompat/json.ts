// JSON text as Go's encoding/json writes it, so bodies match the reference
// byte for byte: `<`, `>`, `&`, U+2028 and U+2029 are \u-escaped, and control
// characters other than \n \r \t use \u00XX (Go 1.19 has no \b or \f).

const SAFE = /^[\x20\x21\x23-\x25\x27-\x3b\x3d\x3f-\x5b\x5d-\x7e]*$/;

export function goJsonString(text: string): string {
  if (SAFE.test(text)) return `"${text}"`;
  let out = '"';
  for (const char of text) {
    const code = char.codePointAt(0)!;
    if (char === '"') out += '\\"';
    else if (char === "\\") out += "\\\\";
    else if (char === "\n") out += "\\n";
    else if (char === "\r") out += "\\r";
    else if (char === "\t") out += "\\t";
    else if (
      code < 0x20 || char === "<" || char === ">" || char === "&" || code === 0x2028 ||
      code === 0x2029
    ) {
      out += "\\u" + code.toString(16).padStart(4, "0");
    } else out += char;
  }
  return out + '"';
}

export function goJsonStringArray(items: readonly string[]): string {
  return "[" + items.map(goJsonString).join(",") + "]";
}
