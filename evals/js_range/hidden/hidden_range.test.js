const test = require("node:test");
const assert = require("node:assert");
const { range } = require("../src/range");

test("range", () => {
  assert.deepStrictEqual(range(2, 5), [2, 3, 4]);
  assert.deepStrictEqual(range(3, 3), []);
});
