const test = require("node:test");
const assert = require("node:assert");
const { capitalize } = require("../src/strings");

test("capitalize", () => {
  assert.strictEqual(capitalize("hello"), "Hello");
  assert.strictEqual(capitalize("hELLO"), "HELLO");
  assert.strictEqual(capitalize(""), "");
});
