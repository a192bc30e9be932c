const test = require("node:test");
const assert = require("node:assert");
const { lower } = require("../src/strings");

test("lower", () => {
  assert.strictEqual(lower("AB"), "ab");
});
