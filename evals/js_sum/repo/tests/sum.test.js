const test = require("node:test");
const assert = require("node:assert");
const { sum } = require("../src/sum");

test("sum adds every value", () => {
  assert.strictEqual(sum([1, 2, 3]), 6);
});
