const test = require("node:test");
const assert = require("node:assert");
const { sum } = require("../src/sum");

test("sum", () => {
  assert.strictEqual(sum([5]), 5);
  assert.strictEqual(sum([]), 0);
  assert.strictEqual(sum([10, -2, 3]), 11);
});
