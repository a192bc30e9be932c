const test = require("node:test");
const assert = require("node:assert");
const { greet } = require("../src/greet");
const { DEFAULT_GREETING } = require("../src/config");

test("greet", () => {
  assert.strictEqual(DEFAULT_GREETING, "Hello");
  assert.strictEqual(greet("Ada"), "Hello, Ada!");
});
