import assert from "node:assert/strict";
import { FlagSet, goQuote, parseGoBool, parseGoInt } from "../../../src/gocompat/flags.ts";
import type { FlagRef } from "../../../src/gocompat/flags.ts";

interface Fixture {
  set: FlagSet;
  addr: FlagRef<string>;
  verbose: FlagRef<boolean>;
  timeout: FlagRef<bigint>;
  count: FlagRef<number>;
  color: FlagRef<string>;
}

function fixture(): Fixture {
  const set = new FlagSet("prog");
  return {
    set,
    addr: set.string("addr", "0.0.0.0:1", "listen address"),
    verbose: set.bool("verbose", false, "talk more"),
    timeout: set.duration("timeout", 5_000_000_000n, "how long to wait"),
    count: set.int("count", 3, "how many", (n) => (n > 0 ? undefined : "must be positive")),
    color: set.value("color", {
      initial: "red",
      format: (v: string) => v.toUpperCase(),
      zeroText: "",
      parse: (text: string) =>
        text === "red" || text === "blue"
          ? { ok: true as const, value: text }
          : { ok: false as const, error: `no such color '${text}'` },
    }, "paint color"),
  };
}

Deno.test("flags: no arguments keeps defaults and marks nothing as set", () => {
  const f = fixture();
  assert.deepEqual(f.set.parse([]), { kind: "ok", rest: [] });
  assert.equal(f.addr.value, "0.0.0.0:1");
  assert.equal(f.verbose.value, false);
  assert.equal(f.timeout.value, 5_000_000_000n);
  assert.equal(f.count.value, 3);
  assert.equal(f.color.value, "red");
  for (const name of ["addr", "verbose", "timeout", "count", "color"]) {
    assert.equal(f.set.isSet(name), false);
  }
});

Deno.test("flags: one and two dashes are the same", () => {
  for (const args of [["-addr", "x:1"], ["--addr", "x:1"], ["-addr=x:1"], ["--addr=x:1"]]) {
    const f = fixture();
    assert.deepEqual(f.set.parse(args), { kind: "ok", rest: [] }, args.join(" "));
    assert.equal(f.addr.value, "x:1");
    assert.equal(f.set.isSet("addr"), true);
  }
});

Deno.test("flags: a non-bool flag takes the next argument even if it starts with a dash", () => {
  const f = fixture();
  assert.deepEqual(f.set.parse(["-addr", "-verbose", "--count", "--7"]), {
    kind: "error",
    message: 'invalid value "--7" for flag -count: parse error',
  });
  assert.equal(f.addr.value, "-verbose");
  assert.equal(f.verbose.value, false);
});

Deno.test("flags: -name= gives an empty value, and only the first = splits", () => {
  const f = fixture();
  assert.deepEqual(f.set.parse(["-addr=", "-color=blue"]), { kind: "ok", rest: [] });
  assert.equal(f.addr.value, "");
  const g = fixture();
  g.set.parse(["--addr=a=b"]);
  assert.equal(g.addr.value, "a=b");
});

Deno.test("flags: typed values are parsed", () => {
  const f = fixture();
  const outcome = f.set.parse(["-timeout", "1h30m", "-count=0x10", "-color", "blue"]);
  assert.deepEqual(outcome, { kind: "ok", rest: [] });
  assert.equal(f.timeout.value, 5_400_000_000_000n);
  assert.equal(f.count.value, 16);
  assert.equal(f.color.value, "blue");
});

Deno.test("flags: bool flag alone means true and never takes the next argument", () => {
  const f = fixture();
  assert.deepEqual(f.set.parse(["-verbose", "false", "-addr=x"]), {
    kind: "ok",
    rest: ["false", "-addr=x"],
  });
  assert.equal(f.verbose.value, true);
  assert.equal(f.addr.value, "0.0.0.0:1");
});

Deno.test("flags: bool flag accepts exactly Go's ParseBool spellings", () => {
  for (const text of ["1", "t", "T", "true", "TRUE", "True"]) {
    const f = fixture();
    assert.deepEqual(f.set.parse([`--verbose=${text}`]), { kind: "ok", rest: [] }, text);
    assert.equal(f.verbose.value, true, text);
  }
  for (const text of ["0", "f", "F", "false", "FALSE", "False"]) {
    const f = fixture();
    f.set.parse(["-verbose", `-verbose=${text}`]);
    assert.equal(f.verbose.value, false, text);
    assert.equal(f.set.isSet("verbose"), true);
  }
});

Deno.test("flags: invalid boolean values are errors in Go's words", () => {
  for (const text of ["maybe", "", "yes", "tRUE", "2", "on"]) {
    const f = fixture();
    assert.deepEqual(f.set.parse([`--verbose=${text}`]), {
      kind: "error",
      message: `invalid boolean value ${JSON.stringify(text)} for -verbose: parse error`,
    });
  }
});

Deno.test("flags: repeated flags, last one wins", () => {
  const f = fixture();
  f.set.parse(["-addr=a", "--addr", "b", "-count=1", "-count=2", "-verbose", "-verbose=false"]);
  assert.equal(f.addr.value, "b");
  assert.equal(f.count.value, 2);
  assert.equal(f.verbose.value, false);
});

Deno.test("flags: parsing stops at the first non-flag argument", () => {
  const f = fixture();
  assert.deepEqual(f.set.parse(["-addr=a", "run", "-count=9"]), {
    kind: "ok",
    rest: ["run", "-count=9"],
  });
  assert.equal(f.count.value, 3);
  assert.equal(f.set.isSet("count"), false);
});

Deno.test("flags: a lone dash is a non-flag argument", () => {
  const f = fixture();
  assert.deepEqual(f.set.parse(["-", "-addr=a"]), { kind: "ok", rest: ["-", "-addr=a"] });
  assert.equal(f.addr.value, "0.0.0.0:1");
});

Deno.test("flags: -- ends the flags and is consumed", () => {
  const f = fixture();
  assert.deepEqual(f.set.parse(["-verbose", "--", "-addr=a", "--"]), {
    kind: "ok",
    rest: ["-addr=a", "--"],
  });
  assert.equal(f.verbose.value, true);
  assert.equal(f.addr.value, "0.0.0.0:1");
});

Deno.test("flags: undefined flag", () => {
  for (const arg of ["-nope", "--nope", "--nope=1", "-Addr"]) {
    const name = arg.replace(/^-+/, "").split("=")[0];
    assert.deepEqual(fixture().set.parse([arg]), {
      kind: "error",
      message: `flag provided but not defined: -${name}`,
    });
  }
});

Deno.test("flags: missing argument", () => {
  assert.deepEqual(fixture().set.parse(["-verbose", "--addr"]), {
    kind: "error",
    message: "flag needs an argument: -addr",
  });
  assert.deepEqual(fixture().set.parse(["-timeout"]), {
    kind: "error",
    message: "flag needs an argument: -timeout",
  });
});

Deno.test("flags: bad flag syntax", () => {
  for (const arg of ["---x", "-=x", "--=x", "---", "-="]) {
    assert.deepEqual(fixture().set.parse([arg]), {
      kind: "error",
      message: `bad flag syntax: ${arg}`,
    });
  }
});

Deno.test("flags: invalid duration, int and custom values", () => {
  const cases: ReadonlyArray<readonly [string, string]> = [
    ["-timeout=abc", 'invalid value "abc" for flag -timeout: parse error'],
    ["-timeout=300", 'invalid value "300" for flag -timeout: parse error'],
    ["-count=abc", 'invalid value "abc" for flag -count: parse error'],
    ["-count=1.5", 'invalid value "1.5" for flag -count: parse error'],
    [
      "-count=9223372036854775808",
      'invalid value "9223372036854775808" for flag -count: value out of range',
    ],
    ["-count=0", 'invalid value "0" for flag -count: must be positive'],
    ["-color=green", "invalid value \"green\" for flag -color: no such color 'green'"],
    ["-color=a\tb", "invalid value \"a\\tb\" for flag -color: no such color 'a\tb'"],
  ];
  for (const [arg, message] of cases) {
    assert.deepEqual(fixture().set.parse([arg]), { kind: "error", message }, arg);
  }
});

Deno.test("flags: the first error stops parsing and the bad flag is not marked set", () => {
  const f = fixture();
  const outcome = f.set.parse(["-addr=a", "-count=x", "-verbose"]);
  assert.equal(outcome.kind, "error");
  assert.equal(f.addr.value, "a");
  assert.equal(f.set.isSet("count"), false);
  assert.equal(f.verbose.value, false);
});

Deno.test("flags: -h, -help and --help ask for help when not defined", () => {
  for (const arg of ["-h", "-help", "--help", "--h", "-help=x"]) {
    assert.deepEqual(fixture().set.parse(["-verbose", arg, "-nope"]), { kind: "help" }, arg);
  }
  // After the flags end, a help flag is just an argument.
  assert.deepEqual(fixture().set.parse(["x", "-h"]), { kind: "ok", rest: ["x", "-h"] });
  assert.deepEqual(fixture().set.parse(["-nope", "-h"]), {
    kind: "error",
    message: "flag provided but not defined: -nope",
  });
});

Deno.test("flags: a defined -help flag is an ordinary flag", () => {
  const set = new FlagSet("prog");
  const help = set.bool("help", false, "show help");
  assert.deepEqual(set.parse(["--help"]), { kind: "ok", rest: [] });
  assert.equal(help.value, true);
  assert.deepEqual(set.parse(["-h"]), { kind: "help" });
});

Deno.test("flags: a flag given with its default value still counts as set", () => {
  const f = fixture();
  f.set.parse(["-addr=0.0.0.0:1", "-verbose=false"]);
  assert.equal(f.set.isSet("addr"), true);
  assert.equal(f.set.isSet("verbose"), true);
  assert.equal(f.set.isSet("timeout"), false);
});

Deno.test("flags: redefining a flag throws", () => {
  const set = new FlagSet("prog");
  set.string("a", "", "");
  assert.throws(() => set.bool("a", false, ""), /flag redefined: a/);
});

Deno.test("flags: lookup exposes Go's DefValue", () => {
  const f = fixture();
  f.set.parse(["-timeout=1s"]);
  assert.equal(f.set.lookup("timeout")?.defValue, "5s");
  assert.equal(f.set.lookup("color")?.defValue, "RED");
  assert.equal(f.set.lookup("missing"), undefined);
});

Deno.test("flags: usage text has Go's PrintDefaults layout", () => {
  assert.equal(
    fixture().set.usage(),
    "Usage of prog:\n" +
      '  -addr string\n    \tlisten address (default "0.0.0.0:1")\n' +
      "  -color value\n    \tpaint color (default RED)\n" +
      "  -count int\n    \thow many (default 3)\n" +
      "  -timeout duration\n    \thow long to wait (default 5s)\n" +
      "  -verbose\n    \ttalk more\n",
  );
});

Deno.test("flags: usage omits zero defaults and quotes strings with %q", () => {
  const set = new FlagSet("p");
  set.string("empty", "", "nothing");
  set.string("quoted", 'say "hi"\n', "text");
  set.bool("on", true, "defaults to true");
  set.int("zero", 0, "an int");
  set.duration("never", 0n, "a duration");
  set.duration("tiny", 1500n, "a short one");
  assert.equal(
    set.defaults(),
    "  -empty string\n    \tnothing\n" +
      "  -never duration\n    \ta duration\n" +
      "  -on\n    \tdefaults to true (default true)\n" +
      '  -quoted string\n    \ttext (default "say \\"hi\\"\\n")\n' +
      "  -tiny duration\n    \ta short one (default 1.5\u00b5s)\n" +
      "  -zero int\n    \tan int\n",
  );
});

Deno.test("flags: short names of at most four columns keep usage on the same line", () => {
  const set = new FlagSet("p");
  set.bool("x", false, "one letter bool");
  set.bool("xy", false, "two letters");
  set.string("s", "", "one letter string");
  assert.equal(
    set.defaults(),
    "  -s string\n    \tone letter string\n" +
      "  -x\tone letter bool\n" +
      "  -xy\n    \ttwo letters\n",
  );
});

Deno.test("flags: a back-quoted word in the usage names the argument", () => {
  const set = new FlagSet("p");
  set.string("dir", "/tmp", "search `directory` for files");
  set.string("odd", "", "only one ` quote");
  set.bool("b", false, "a `when` flag");
  assert.equal(
    set.defaults(),
    "  -b when\n    \ta when flag\n" +
      '  -dir directory\n    \tsearch directory for files (default "/tmp")\n' +
      "  -odd string\n    \tonly one ` quote\n",
  );
});

Deno.test("flags: multi-line usage is indented the Go way", () => {
  const set = new FlagSet("p");
  set.string("m", "", "line one\nline two");
  assert.equal(set.defaults(), "  -m string\n    \tline one\n    \tline two\n");
});

Deno.test("parseGoBool", () => {
  for (const t of ["1", "t", "T", "true", "TRUE", "True"]) {
    assert.deepEqual(parseGoBool(t), { ok: true, value: true });
  }
  for (const t of ["0", "f", "F", "false", "FALSE", "False"]) {
    assert.deepEqual(parseGoBool(t), { ok: true, value: false });
  }
  for (const t of ["", "yes", "no", "tRue", " true", "01"]) assert.equal(parseGoBool(t).ok, false);
});

Deno.test("parseGoInt: Go's base-0 ParseInt", () => {
  const cases: ReadonlyArray<readonly [string, bigint | "syntax" | "range"]> = [
    ["0", 0n],
    ["-0", 0n],
    ["+5", 5n],
    ["-5", -5n],
    ["65536", 65536n],
    ["0x10", 16n],
    ["0X1f", 31n],
    ["0o17", 15n],
    ["017", 15n],
    ["0b101", 5n],
    ["1_000", 1000n],
    ["0x_1f", 31n],
    ["0_17", 15n],
    ["9223372036854775807", 9223372036854775807n],
    ["-9223372036854775808", -9223372036854775808n],
    ["9223372036854775808", "range"],
    ["-9223372036854775809", "range"],
    ["18446744073709551616", "range"],
    ["99999999999999999999x", "range"],
    ["", "syntax"],
    ["-", "syntax"],
    ["+", "syntax"],
    ["abc", "syntax"],
    ["1.5", "syntax"],
    ["1e3", "syntax"],
    ["08", "syntax"],
    ["0x", "syntax"],
    ["0b2", "syntax"],
    ["_1", "syntax"],
    ["1_", "syntax"],
    ["1__0", "syntax"],
    [" 1", "syntax"],
    ["--1", "syntax"],
    ["\u0661", "syntax"],
  ];
  for (const [text, want] of cases) {
    const expected = typeof want === "bigint"
      ? { ok: true, value: want }
      : { ok: false, error: want };
    assert.deepEqual(parseGoInt(text), expected, JSON.stringify(text));
  }
});

Deno.test("goQuote: Go's %q", () => {
  const cases: ReadonlyArray<readonly [string, string]> = [
    ["", '""'],
    ["abc", '"abc"'],
    ['a"b\\c', '"a\\"b\\\\c"'],
    ["\x07\b\f\n\r\t\v", '"\\a\\b\\f\\n\\r\\t\\v"'],
    ["\x00\x1b\x7f", '"\\x00\\x1b\\x7f"'],
    ["h\u00e9llo \u00b5s", '"h\u00e9llo \u00b5s"'],
    ["\u0085", '"\\u0085"'],
    ["\u200b", '"\\u200b"'],
    ["\u00a0", '"\\u00a0"'],
    ["\ue000", '"\\ue000"'],
    ["\u{f0000}", '"\\U000f0000"'],
    ["\u{1f600}", '"\u{1f600}"'],
    ["[nsqlookupd] ", '"[nsqlookupd] "'],
  ];
  for (const [text, want] of cases) assert.equal(goQuote(text), want, JSON.stringify(text));
});
