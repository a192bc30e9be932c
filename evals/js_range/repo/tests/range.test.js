const test = require("node:test");
const assert = require("node:assert");
const { range } = require("../src/range");

test("range excludes end", () => {
  assert.deepStrictEqual(range(0, 3), [0, 1, 2]);
});
