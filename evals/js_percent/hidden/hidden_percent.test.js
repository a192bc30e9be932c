const test = require("node:test");
const assert = require("node:assert");
const { clampPercent } = require("../src/percent");

test("clampPercent", () => {
  assert.strictEqual(clampPercent(42.4), 42);
  assert.strictEqual(clampPercent(-3), 0);
  assert.strictEqual(clampPercent(150), 100);
  assert.throws(() => clampPercent("5"), TypeError);
  assert.throws(() => clampPercent(null), TypeError);
});
